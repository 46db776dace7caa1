"""A runtime program: prepares GHZ states of growing size and reports each as it goes.

Inputs: iterations (how many sizes, starting at 2 qubits), shots (per circuit).
Interim results: one per size, {"iteration", "num_qubits", "counts"}.
Returns: {"fidelities": {num_qubits: P(all zeros) + P(all ones)}, "shots": shots}.
"""

from qiskit import QuantumCircuit, transpile


def ghz(num_qubits):
    circuit = QuantumCircuit(num_qubits, num_qubits)
    circuit.h(0)
    for qubit in range(1, num_qubits):
        circuit.cx(qubit - 1, qubit)
    circuit.measure(range(num_qubits), range(num_qubits))
    return circuit


def main(backend, user_messenger, iterations, shots=1024):
    fidelities = {}
    for iteration in range(iterations):
        num_qubits = iteration + 2
        circuit = transpile(ghz(num_qubits), backend, seed_transpiler=7)
        counts = backend.run(circuit, shots=shots, seed_simulator=11).result().get_counts()
        good = counts.get("0" * num_qubits, 0) + counts.get("1" * num_qubits, 0)
        fidelities[str(num_qubits)] = good / shots
        user_messenger.publish({"iteration": iteration, "num_qubits": num_qubits, "counts": counts})
        print(f"GHZ({num_qubits}): {good}/{shots} in the ideal outcomes")
    return {"fidelities": fidelities, "shots": shots}
