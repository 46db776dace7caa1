"""What the tests of the real qiskit-ibm-runtime clients share: finding an interpreter that imports
the client at a version they accept, and running one of their scripts against a ``qrt serve``.

The old (0.11) and the current (0.51) client each live in their own virtualenv
(``support.oldclient``, ``support.newclient``); their scripts print JSON observations, the last
line of their output, which the tests assert on.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from support.serve import ServerHandle

__all__ = ["first_client_python", "run_client_script"]


def first_client_python(
    candidates: Iterable[str | None], accepts: Callable[[str], bool]
) -> str | None:
    """The first candidate interpreter that imports qiskit_ibm_runtime at a version ``accepts``
    (given ``__version__``), else None."""
    for candidate in candidates:
        if not candidate or not Path(candidate).exists():
            continue
        probe = subprocess.run(
            [candidate, "-c", "import qiskit_ibm_runtime as q; print(q.__version__)"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if probe.returncode == 0 and accepts(probe.stdout.strip()):
            return candidate
    return None


def run_client_script(
    python: str,
    server: ServerHandle,
    script: Path,
    user: str,
    args: Sequence[str],
    *,
    drop_env: tuple[str, ...] = ("QISKIT_", "PYTHON", "VIRTUAL_ENV"),
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``python script ARGS...`` as ``user`` (its own ``HOME``, no proxy for loopback, none of
    the caller's variables starting with ``drop_env``, plus ``env``); the JSON object it printed
    last. A failing script fails the test with its stderr and the server's log."""
    home = server.data_dir.parent / f"home-{user}"  # the client may create ~/.qiskit
    home.mkdir(exist_ok=True)
    child_env = {key: value for key, value in os.environ.items() if not key.startswith(drop_env)}
    child_env.update(HOME=str(home), NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    child_env.update(env or {})
    done = subprocess.run(
        [python, str(script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=child_env,
        check=False,
    )
    assert done.returncode == 0, (
        f"{script.name} failed ({done.returncode}):\n{done.stderr[-6000:]}\n"
        f"--- server log ---\n{server.log()[-3000:]}"
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
