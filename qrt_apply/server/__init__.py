"""The local Qiskit Runtime: SQLite store, runtime service, job executor and the HTTP app of ``qrt serve``.

Import the submodules you need; this package imports nothing heavy on its own.
"""

__all__: list[str] = []
