"""Drive the real qiskit-ibm-runtime 0.11.3 client through the program API of a ``qrt serve``.

Run with the OLD client's interpreter (not qrt's)::

    /tmp/oldrt/bin/python tests/oldclient/program_flow.py URL TOKEN

URL is the server's auth base (``http://127.0.0.1:PORT/api``). Prints one JSON object of
observations on stdout (``tests/test_server_oldclient.py`` asserts on it); any unexpected error
is a traceback and a non-zero exit.
"""

import json
import sys
import time

import numpy as np
from qiskit import QuantumCircuit
from qiskit_ibm_runtime import QiskitRuntimeService
from qiskit_ibm_runtime.exceptions import (
    RuntimeDuplicateProgramError,
    RuntimeJobFailureError,
    RuntimeJobNotFound,
    RuntimeProgramNotFound,
)

SOURCE = """
def main(backend, user_messenger, **kwargs):
    iterations = kwargs.get("iterations", 1)
    for it in range(iterations):
        user_messenger.publish({"iteration": it})
    print("ran", iterations, "iterations")
    arr = kwargs.get("arr")
    return {"iterations": iterations, "doubled": None if arr is None else arr * 2, "version": 1}
"""

SOURCE_V2 = SOURCE.replace('"version": 1', '"version": 2')

FAILING = """
def main(backend, user_messenger, **kwargs):
    raise ValueError("this program always fails")
"""

SPEC = {
    "backend_requirements": {"min_num_qubits": 1},
    "parameters": {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "properties": {"iterations": {"type": "integer", "minimum": 1, "description": "loops"}},
        "required": ["iterations"],
    },
    "return_values": {},
    "interim_results": {},
}

BACKEND = "ibmq_qasm_simulator"


def main(url: str, token: str) -> dict:
    out: dict = {}
    timings: dict = {}
    started = time.monotonic()
    service = QiskitRuntimeService(channel="ibm_quantum", url=url, token=token)
    timings["connect"] = time.monotonic() - started
    out["backends"] = sorted(b.name for b in service.backends())

    name = f"qrt-oldclient-{int(time.time() * 1000)}"
    metadata = {
        "name": name,
        "max_execution_time": 300,
        "description": "old client flow",
        "spec": SPEC,
    }
    program_id = service.upload_program(data=SOURCE, metadata=metadata)
    out["program_id"] = program_id
    try:
        service.upload_program(data=SOURCE, metadata=metadata)
        out["duplicate_error"] = None
    except RuntimeDuplicateProgramError as exc:
        out["duplicate_error"] = type(exc).__name__

    out["listed"] = program_id in [p.program_id for p in service.programs(refresh=True)]
    program = service.program(program_id, refresh=True)
    out["data_roundtrip"] = program.data == SOURCE
    out["parameters_required"] = list(program.parameters().metadata.get("required", []))

    # data first (PUT .../data with Content-Type: application/octet-stream), then the metadata
    # PATCH -- which the client sends with that stale Content-Type too
    service.update_program(
        program_id,
        data=SOURCE_V2,
        description="updated description",
        max_execution_time=120,
    )
    program = service.program(program_id, refresh=True)
    out["updated"] = {
        "data_v2": program.data == SOURCE_V2,
        "description": program.description,
        "max_execution_time": program.max_execution_time,
    }

    service.set_program_visibility(program_id, True)
    out["public_after_set"] = service.program(program_id, refresh=True).is_public
    service.set_program_visibility(program_id, False)
    out["public_after_unset"] = service.program(program_id, refresh=True).is_public

    # a program run with numpy in and out (this POST /jobs still carries the stale Content-Type)
    started = time.monotonic()
    job = service.run(
        program_id,
        inputs={"iterations": 3, "arr": np.arange(4)},
        options={"backend": BACKEND},
    )
    result = job.result(timeout=120)
    timings["program_job"] = time.monotonic() - started
    out["program_result"] = {
        "iterations": result["iterations"],
        "doubled": result["doubled"].tolist(),
        "doubled_is_ndarray": isinstance(result["doubled"], np.ndarray),
        "version": result["version"],
    }
    out["program_job_status"] = job.status().name
    out["interim_results"] = job.interim_results()
    out["logs"] = job.logs()
    metrics = job.metrics()
    out["metrics_keys"] = sorted(metrics)
    job.update_tags(["first", "second"])
    out["tags"] = sorted(job.tags)

    # a failing program: RuntimeJobFailureError carrying the traceback text
    failing_id = service.upload_program(
        data=FAILING,
        metadata={"name": name + "-fails", "max_execution_time": 60, "description": "fails"},
    )
    failing = service.run(failing_id, inputs={}, options={"backend": BACKEND})
    try:
        failing.result(timeout=120)
        out["failure"] = None
    except RuntimeJobFailureError as exc:
        out["failure"] = {"status": failing.status().name, "message": str(exc)}

    # the built-in sampler, called through run() with the V1 inputs the Sampler primitive sends
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    started = time.monotonic()
    sampler_job = service.run(
        "sampler",
        inputs={
            "circuits": [bell],
            "circuit_indices": [0],
            "parameters": [[]],
            "parameter_values": [[]],
            "run_options": {"shots": 1000},
            "transpilation_settings": {"optimization_settings": {"level": 1}},
            "resilience_settings": {"level": 0},
        },
        options={"backend": BACKEND},
    )
    sampler_result = sampler_job.result(timeout=120)
    timings["sampler_job"] = time.monotonic() - started
    quasi = sampler_result.quasi_dists[0]
    out["sampler"] = {
        "type": type(sampler_result).__name__,
        "keys": sorted(int(k) for k in quasi),
        "total": float(sum(quasi.values())),
        "shots": sampler_result.metadata[0].get("shots"),
    }

    listed = service.jobs(limit=None)
    out["jobs_listed"] = sorted(j.job_id() for j in listed)
    out["job_ids"] = {
        "program": job.job_id(),
        "failing": failing.job_id(),
        "sampler": sampler_job.job_id(),
    }
    out["jobs_by_program"] = [j.job_id() for j in service.jobs(program_id=program_id)]
    out["jobs_pending"] = [j.job_id() for j in service.jobs(pending=True)]
    newest_first = [j.job_id() for j in service.jobs(limit=3)]
    oldest_first = [j.job_id() for j in service.jobs(limit=3, descending=False)]
    out["jobs_order"] = {"desc": newest_first, "asc": oldest_first}
    out["jobs_paged"] = [j.job_id() for j in service.jobs(limit=2, skip=1)]
    out["jobs_tagged"] = [j.job_id() for j in service.jobs(job_tags=["first", "second"])]

    fetched = service.job(job.job_id())
    out["job_fetch"] = {
        "id": fetched.job_id(),
        "status": fetched.status().name,
        "program_id": fetched.program_id,
        "backend": fetched.backend().name,
        "inputs_iterations": fetched.inputs.get("iterations"),
        "has_creation_date": fetched.creation_date is not None,
    }

    service.delete_job(job.job_id())
    try:
        service.job(job.job_id())
        out["deleted_job_error"] = None
    except RuntimeJobNotFound as exc:
        out["deleted_job_error"] = type(exc).__name__

    service.delete_program(program_id)
    service.delete_program(failing_id)
    try:
        service.program(program_id, refresh=True)
        out["deleted_program_error"] = None
    except RuntimeProgramNotFound as exc:
        out["deleted_program_error"] = type(exc).__name__
    try:
        service.run(program_id, inputs={"iterations": 1}, options={"backend": BACKEND})
        out["run_deleted_error"] = None
    except RuntimeProgramNotFound as exc:
        out["run_deleted_error"] = type(exc).__name__
    try:
        service.delete_program(program_id)
        out["delete_deleted_error"] = None
    except RuntimeProgramNotFound as exc:
        out["delete_deleted_error"] = type(exc).__name__

    out["timings"] = {k: round(v, 3) for k, v in timings.items()}
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
