"""The QiskitRuntimeService documentation's sample workflow (qiskit-ibm-runtime 0.11.3), unchanged
but for the account, against a ``qrt serve``.

Run with the OLD client's interpreter (not qrt's)::

    /tmp/oldrt/bin/python tests/oldclient/sample_workflow.py URL TOKEN

Prints one JSON object of observations on stdout for ``tests/test_server_oldclient.py``.
"""

import json
import sys
import time

from qiskit import QuantumCircuit
from qiskit.circuit.library import RealAmplitudes
from qiskit.quantum_info import SparsePauliOp
from qiskit_ibm_runtime import Estimator, Options, QiskitRuntimeService, Sampler, Session


def bell_circuit() -> QuantumCircuit:
    try:  # what the documentation uses (qiskit-terra 0.25)
        from qiskit.test.reference_circuits import ReferenceCircuits

        return ReferenceCircuits.bell()
    except ImportError:  # pragma: no cover - same circuit by hand
        circuit = QuantumCircuit(2, 2, name="bell")
        circuit.h(0)
        circuit.cx(0, 1)
        circuit.measure([0, 1], [0, 1])
        return circuit


def main(url: str, token: str) -> dict:
    started = time.monotonic()
    service = QiskitRuntimeService(channel="ibm_quantum", url=url, token=token)
    options = Options(optimization_level=1)

    # Prepare inputs.
    bell = bell_circuit()
    psi = RealAmplitudes(num_qubits=2, reps=2)
    H1 = SparsePauliOp.from_list([("II", 1), ("IZ", 2), ("XI", 3)])
    theta = [0, 1, 1, 2, 3, 5]

    with Session(service=service, backend="ibmq_qasm_simulator") as session:
        # Submit a request to the Sampler primitive within the session.
        sampler = Sampler(session=session, options=options)
        sampler_job = sampler.run(circuits=bell)
        sampler_result = sampler_job.result()
        print(f"Sampler results: {sampler_result}", file=sys.stderr)

        # Submit a request to the Estimator primitive within the session.
        estimator = Estimator(session=session, options=options)
        estimator_job = estimator.run(circuits=[psi], observables=[H1], parameter_values=[theta])
        estimator_result = estimator_job.result()
        print(f"Estimator results: {estimator_result}", file=sys.stderr)
        session_id = session.session_id

    quasi = sampler_result.quasi_dists[0]
    return {
        "sampler": {
            "type": type(sampler_result).__name__,
            "quasi_dist": {str(k): float(v) for k, v in quasi.items()},
            "shots": sampler_result.metadata[0].get("shots"),
            "job_session_id": sampler_job.session_id,
            "program_id": sampler_job.program_id,
            "backend": sampler_job.backend().name,
        },
        "estimator": {
            "type": type(estimator_result).__name__,
            "values": [float(v) for v in estimator_result.values],
            "metadata": estimator_result.metadata,
            "job_session_id": estimator_job.session_id,
            "program_id": estimator_job.program_id,
        },
        "session_id": session_id,
        "sampler_job_id": sampler_job.job_id(),
        "seconds": round(time.monotonic() - started, 3),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2]), default=str))
