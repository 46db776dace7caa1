"""Where the current qiskit-ibm-runtime client lives, for the IBM Quantum Platform v1 tests.

``QRT_NEWCLIENT_PYTHON`` (set by ``make test`` to ``.venv-newclient/bin/python``), else the
``.venv-newclient`` of this checkout. An interpreter counts only if it really imports the client
at the tested version. When none does, ``require_new_python()`` skips the test and says how to
install it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from support.clients import first_client_python

__all__ = ["INSTALL", "TESTED_VERSION", "new_python", "require_new_python"]

TESTED_VERSION = "0.51.0"
_DEFAULT = Path(__file__).resolve().parents[2] / ".venv-newclient" / "bin" / "python"
INSTALL = (
    "make .venv-newclient/.installed (python3 -m venv .venv-newclient && "
    f".venv-newclient/bin/pip install 'qiskit-ibm-runtime=={TESTED_VERSION}'), "
    "or set QRT_NEWCLIENT_PYTHON to such an interpreter"
)


@functools.cache
def new_python() -> str | None:
    """The first candidate interpreter that imports qiskit_ibm_runtime 0.51.0, else None."""
    candidates = (os.environ.get("QRT_NEWCLIENT_PYTHON"), str(_DEFAULT))
    return first_client_python(candidates, lambda version: version == TESTED_VERSION)


def require_new_python() -> str:
    interpreter = new_python()
    if interpreter is None:
        pytest.skip(
            f"qiskit-ibm-runtime {TESTED_VERSION} is not installed for the current-client tests; "
            f"install it with: {INSTALL}"
        )
    return interpreter
