"""Where the real qiskit-ibm-runtime 0.11/0.12 client lives, for the compatibility tests.

``QRT_OLDCLIENT_PYTHON`` (set by ``make test`` to ``.venv-oldclient/bin/python``), else
``/tmp/oldrt/bin/python``. An interpreter counts only if it really imports the client. When none
does, ``require_old_python()`` skips the test and says how to install it.
"""

from __future__ import annotations

import functools
import os

import pytest

from support.clients import first_client_python

__all__ = ["DEFAULT_OLD_PYTHON", "INSTALL", "old_python", "require_old_python"]

DEFAULT_OLD_PYTHON = "/tmp/oldrt/bin/python"
INSTALL = (
    "python3 -m venv .venv-oldclient && .venv-oldclient/bin/pip install "
    "'qiskit-ibm-runtime==0.11.3' 'qiskit-ibm-provider==0.6.3' 'qiskit-terra==0.25.1' "
    "'numpy<2' 'websocket-client<1.9' (or just `make test`)"
)


@functools.cache
def old_python() -> str | None:
    """The first candidate interpreter that imports qiskit_ibm_runtime 0.11 or 0.12, else None."""
    candidates = (os.environ.get("QRT_OLDCLIENT_PYTHON"), DEFAULT_OLD_PYTHON)
    return first_client_python(candidates, lambda version: version.startswith(("0.11.", "0.12.")))


def require_old_python() -> str:
    interpreter = old_python()
    if interpreter is None:
        pytest.skip(
            "the old qiskit-ibm-runtime 0.11.3 client is not installed: set QRT_OLDCLIENT_PYTHON "
            f"to its interpreter, or install it with: {INSTALL}"
        )
    return interpreter
