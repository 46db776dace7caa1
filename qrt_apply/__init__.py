"""qrt: GitOps for Qiskit Runtime.

The Python API (:mod:`qrt_apply.api`) is importable from here: ``qrt_apply.Project.load(path)``.
It is imported on first use, so ``import qrt_apply`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qrt_apply.api import (
        ApplyResult,
        Interrupted,
        JobResult,
        Project,
        RefreshResult,
        Validation,
    )

__all__ = [
    "ApplyResult",
    "Interrupted",
    "JobResult",
    "Project",
    "RefreshResult",
    "Validation",
    "__version__",
]

__version__ = "0.1.0"

_API = frozenset(__all__) - {"__version__"}  # imported from qrt_apply.api on first use


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module("qrt_apply.api"), name)
    raise AttributeError(f"module 'qrt_apply' has no attribute {name!r}")
