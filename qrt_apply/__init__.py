"""qrt: GitOps for Qiskit Runtime."""

__all__ = ["__version__"]

__version__ = "0.1.0"
