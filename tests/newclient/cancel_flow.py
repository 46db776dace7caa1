"""The current client's ``job.cancel()``, ``service.delete_job()`` and ``session.cancel()`` against
a ``qrt serve`` whose only worker the test keeps busy, so the jobs submitted here are certainly
still queued.

    .venv-newclient/bin/python tests/newclient/cancel_flow.py http://127.0.0.1:PORT TOKEN CRN BACKEND

Prints one JSON object of observations on stdout for ``tests/test_server_newclient.py``.
"""

import json
import sys

from qiskit import QuantumCircuit
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2, Session
from qiskit_ibm_runtime.exceptions import RuntimeInvalidStateError, RuntimeJobNotFound


def main(base: str, token: str, crn: str, backend_name: str) -> dict:
    service = QiskitRuntimeService(
        channel="ibm_quantum_platform", token=token, instance=crn, url=f"{base}/experimental/api/v1"
    )
    backend = service.backend(backend_name)
    circuit = QuantumCircuit(1)
    circuit.x(0)
    circuit.measure_all()
    isa = generate_preset_pass_manager(backend=backend, optimization_level=1).run(circuit)
    job = SamplerV2(mode=backend).run([isa], shots=10)
    out: dict = {"before": job.status()}
    job.cancel()
    out["after"] = job.status()
    try:
        job.cancel()
        out["second_cancel"] = "accepted"
    except RuntimeInvalidStateError:
        out["second_cancel"] = "RuntimeInvalidStateError"
    out["listed"] = job.job_id() in [j.job_id() for j in service.jobs(limit=None)]
    service.delete_job(job.job_id())
    try:
        service.job(job.job_id())
        out["after_delete"] = "found"
    except RuntimeJobNotFound:
        out["after_delete"] = "RuntimeJobNotFound"
    out["listed_after_delete"] = job.job_id() in [j.job_id() for j in service.jobs(limit=None)]

    session = Session(backend=backend)
    queued = SamplerV2(mode=session).run([isa], shots=10)
    out["session_job_before"] = queued.status()
    out["session_status_queued"] = session.status()
    session.close()  # no new jobs; the queued one stays
    out["session_status_closing"] = session.status()
    session.cancel()  # closes the session and cancels its queued jobs
    out["session_job_after"] = queued.status()
    out["session_status"] = session.status()
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5]), default=str))
