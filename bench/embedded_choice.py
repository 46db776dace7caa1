"""The embedded runtime's choice for built-ins: in-process execution vs a warm worker process.

200 one-PUB Bell jobs (1,000 shots, distinct seeds), alternated three times in one process: straight
through ``execute_builtin`` (with the encode/decode a job pays), and through a ``LocalExecutor`` with
one warm worker (store writes included). Run: ``.venv/bin/python bench/embedded_choice.py``.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from qrt_apply.engine.executor import LocalExecutor
from qrt_apply.engine.primitives import execute_builtin
from qrt_apply.engine.service import RuntimeService
from qrt_apply.engine.store import Store
from qrt_apply.runtime import encoding

BELL = (Path(__file__).parents[1] / "circuits" / "bell.qasm").read_text()
JOBS = 200


def params(seed: int) -> dict[str, object]:
    return {"pubs": [[BELL]], "options": {"default_shots": 1000, "seed_simulator": seed}}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "runtime.db")
        owner = store.ensure_user("bench")
        executor = LocalExecutor(store, workers=1, prewarm=True)
        service = RuntimeService(store, executor)
        executor.start()
        service.run(owner, "sampler", json.dumps(params(0)))  # the worker is warm after this
        executor.wait_idle()
        execute_builtin("sampler", params(0), "aer_simulator")  # and so is this process
        in_process, worker = [], []
        for _ in range(3):
            started = time.perf_counter()
            for seed in range(JOBS):
                decoded = encoding.loads(encoding.dumps(params(seed)))
                encoding.dumps(execute_builtin("sampler", decoded, "aer_simulator"))
            in_process.append(time.perf_counter() - started)
            started = time.perf_counter()
            for seed in range(JOBS):
                service.run(owner, "sampler", json.dumps(params(seed)))
            executor.wait_idle()
            worker.append(time.perf_counter() - started)
        service.close()
        store.close()
    inside, outside = statistics.median(in_process), statistics.median(worker)
    print(
        f"{JOBS} Bell jobs: in-process {inside:.2f} s, warm worker {outside:.2f} s "
        f"(store included); worker / in-process {outside / inside:.2f}x (medians of 3)"
    )


if __name__ == "__main__":
    main()
