"""The execution engine shared by the embedded runtime and ``qrt serve``.

``store``/``records`` (SQLite state), ``service`` (the runtime API of one user), ``executor`` (runs
queued jobs: built-ins on warm trusted workers, uploaded programs in pre-warmed sandboxes),
``worker`` and ``sandbox`` (those two kinds of process), and the built-in primitives on qiskit-aer
(``primitives``, ``primitives_v1``, ``aer_exec``, ``circuits``, ``backends``). Import the submodules
you need; this package imports nothing heavy on its own.
"""

__all__: list[str] = []
