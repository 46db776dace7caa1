"""The raw-Aer side of bench/engine.py figures 1 and 2, timed as a whole process by the caller.

`python bench/aer_baseline.py CIRCUIT.qasm JOBS SHOTS`: one process imports qiskit and qiskit-aer and
runs JOBS one-PUB sampler jobs on the circuit, one at a time, as a user would without qrt: parse the
OpenQASM, `qiskit_aer.primitives.SamplerV2(seed=i).run([(circuit,)], shots=SHOTS).result()`, counts.
Job i uses seed i, as the benchmark's manifest does (`seed_simulator: "${i}"`). Nothing but qiskit,
qiskit-aer and the standard library is imported, so the process pays exactly a user's start-up.
Prints `{"import_s", "loop_s", "loop_cpu_s"}` (JSON) for callers that want the loop alone.
"""

from __future__ import annotations

import time

START = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from qiskit import qasm2  # noqa: E402
from qiskit_aer.primitives import SamplerV2  # noqa: E402


def main() -> int:
    imported = time.perf_counter()
    cpu = time.process_time()
    path, jobs, shots = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    text = path.read_text()
    total = 0
    for seed in range(jobs):
        circuit = qasm2.loads(text)
        result = SamplerV2(seed=seed).run([(circuit,)], shots=shots).result()
        data = result[0].data
        counts = getattr(data, next(iter(data.keys()))).get_counts()
        total += sum(counts.values())
    if total != jobs * shots:
        print(f"expected {jobs * shots} shots in all, counted {total}", file=sys.stderr)
        return 1
    loop = time.perf_counter() - imported
    cpu = time.process_time() - cpu
    print(json.dumps({"import_s": imported - START, "loop_s": loop, "loop_cpu_s": cpu}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
