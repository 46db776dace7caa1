"""The real, current qiskit-ibm-runtime client against a ``qrt serve``, configured as
docs/serve.md shows: IAM_URL, GLOBAL_SEARCH_URL and GLOBAL_CATALOG_URL in the environment (set by
the test) and an ``experimental`` API URL.

Run with the NEW client's interpreter (not qrt's)::

    .venv-newclient/bin/python tests/newclient/flow.py http://127.0.0.1:PORT TOKEN CRN BACKEND

Prints one JSON object of observations on stdout for ``tests/test_server_newclient.py``.
"""

import json
import sys

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import Batch, EstimatorV2, QiskitRuntimeService, SamplerV2, Session


def bell(measure: bool) -> QuantumCircuit:
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    if measure:
        circuit.measure_all()
    return circuit


def two_registers() -> QuantumCircuit:
    """GHZ on 3 qubits measured into two registers: shot by shot they must agree."""
    from qiskit import ClassicalRegister, QuantumRegister

    q = QuantumRegister(3)
    a, b = ClassicalRegister(1, "a"), ClassicalRegister(2, "b")
    circuit = QuantumCircuit(q, a, b)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    circuit.measure(0, a[0])
    circuit.measure([1, 2], b)
    return circuit


def counts(result, register: str = "meas") -> dict:
    return dict(getattr(result[0].data, register).get_counts())


def main(base: str, token: str, crn: str, backend_name: str) -> dict:
    service = QiskitRuntimeService(
        channel="ibm_quantum_platform", token=token, instance=crn, url=f"{base}/experimental/api/v1"
    )
    out: dict = {"backends": sorted(b.name for b in service.backends())}
    # with no instance the client finds the user's one through Global Search and Catalog
    found = QiskitRuntimeService(
        channel="ibm_quantum_platform", token=token, url=f"{base}/experimental/api/v1"
    )
    out["instances"] = [item["crn"] for item in found.instances()]
    out["found_backends"] = sorted(b.name for b in found.backends())
    backend = service.backend(backend_name)
    out["backend"] = {"name": backend.name, "num_qubits": backend.num_qubits}
    pm = generate_preset_pass_manager(backend=backend, optimization_level=1)
    isa = pm.run(bell(True))
    isa_plain = pm.run(bell(False))
    zz = SparsePauliOp("ZZ").apply_layout(isa_plain.layout)

    job = SamplerV2(mode=backend).run([isa], shots=200)
    result = job.result()
    out["sampler"] = {"counts": counts(result), "job_id": job.job_id(), "status": job.status()}

    joint = SamplerV2(mode=backend).run([pm.run(two_registers())], shots=100).result()
    a = joint[0].data.a.get_bitstrings()
    b = joint[0].data.b.get_bitstrings()
    out["registers_agree"] = all(x * 2 == y for x, y in zip(a, b, strict=True)) and len(a) == 100

    job = EstimatorV2(mode=backend).run([(isa_plain, zz)])
    evs = job.result()[0].data.evs
    out["estimator"] = {"zz": float(evs), "job_id": job.job_id()}

    # parameter sweeps: arrays of bindings come back as arrays of results, in binding order
    theta = Parameter("theta")
    rotation = QuantumCircuit(1)
    rotation.ry(theta, 0)
    isa_rotation = pm.run(rotation)
    measured = rotation.copy()
    measured.measure_all()
    angles = np.array([[0.0], [np.pi], [np.pi / 2]])
    z = SparsePauliOp("Z").apply_layout(isa_rotation.layout)
    swept = EstimatorV2(mode=backend).run([(isa_rotation, z, angles)]).result()[0].data.evs
    bits = SamplerV2(mode=backend).run([(pm.run(measured), angles)], shots=100).result()[0]
    out["sweep"] = {
        "evs": [float(v) for v in swept],
        "shape": list(bits.data.meas.shape),
        "counts": [dict(bits.data.meas.get_counts(loc=i)) for i in range(3)],
    }

    with Batch(backend=backend) as batch:
        job = SamplerV2(mode=batch).run([isa], shots=50)
        out["batch"] = {
            "counts": counts(job.result()),
            "same_session": job.session_id == batch.session_id,
            "mode": batch.details()["mode"],
        }
    out["batch"]["status_after"] = batch.status()

    with Session(backend=backend) as session:
        sampled = SamplerV2(mode=session).run([isa], shots=50)
        estimated = EstimatorV2(mode=session).run([(isa_plain, zz)])
        out["session"] = {
            "counts": counts(sampled.result()),
            "zz": float(estimated.result()[0].data.evs),
            "same_session": sampled.session_id == estimated.session_id == session.session_id,
            "mode": session.details()["mode"],
        }

    listed = service.jobs(limit=5)
    out["jobs"] = [j.job_id() for j in listed]
    every = service.jobs(limit=None)
    out["jobs_total"] = len(every)  # 8 with the two sweeps
    out["jobs_by_program"] = len(service.jobs(limit=None, program_id="estimator"))
    fetched = service.job(out["sampler"]["job_id"])
    out["job"] = {
        "status": fetched.status(),
        "counts": counts(fetched.result()),
        "primitive_id": fetched.primitive_id,
        "backend": fetched.backend().name,
        "metrics_keys": sorted(fetched.metrics()),
        "logs_type": type(fetched.logs()).__name__,
    }
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5]), default=str))
