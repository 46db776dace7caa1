"""Execution of primitive PUBs on a simulated backend: transpile, run, make results JSON-able.

:class:`AerExecution` is built once per job from the backend name and the job's run settings. It
transpiles circuits for the backend (observables follow the layout) and runs the PUBs on:

* the noiseless ``aer_simulator``: qiskit-aer's ``SamplerV2`` and ``EstimatorV2`` (exact expectation
  values plus Gaussian noise of standard deviation ``precision``, as qiskit-aer defines it);
* a noisy device, or the simulator with a user noise model: qiskit's ``BackendSamplerV2`` and
  ``BackendEstimatorV2`` over the noisy ``AerSimulator`` (shot-based estimates).

Server-side execution module: qiskit is imported inside the functions.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qrt_apply.engine import backends
from qrt_apply.engine.circuits import bad_input

__all__ = ["AerExecution", "RunSettings", "jsonable", "nested"]

MAX_SHOTS = backends.MAX_SHOTS


@dataclass(frozen=True)
class RunSettings:
    """How one job runs: seeds, transpiler settings and an optional user noise model."""

    seed: int | None = None
    optimization_level: int = 1
    transpile_options: Mapping[str, Any] = field(default_factory=dict)
    noise_model: Any = None


class AerExecution:
    """Runs sampler and estimator PUBs for one job on backend ``backend_name``."""

    def __init__(self, backend_name: str, settings: RunSettings) -> None:
        try:
            self.canonical = backends.canonical_name(backend_name)
        except KeyError as exc:
            raise bad_input(str(exc.args[0])) from None
        self.name = backend_name
        self.settings = settings
        self.max_qubits = backends.backend_info(backend_name).num_qubits
        if settings.noise_model is not None:
            from qiskit_aer import AerSimulator

            if backends.backend_info(backend_name).noisy:
                raise bad_input(f"{backend_name} has its own noise; a noise_model is not accepted")
            self.backend: Any = AerSimulator(noise_model=settings.noise_model)
            self.shot_based = True
        else:
            self.backend = _shared_backend(self.canonical)
            self.shot_based = backends.backend_info(backend_name).noisy
        self._pass_manager: Any = None

    def transpile(self, circuit: Any, where: str) -> Any:
        """``circuit`` rewritten for the backend (its basis gates and coupling map)."""
        if self._pass_manager is None:
            settings = self.settings
            # The transpiler's seed matters only where layout and routing have choices: on a
            # device's coupling map. On the all-to-all simulator one pass manager serves every
            # seed, so a sweep over seed_simulator does not build one per job (about 3 ms each).
            device = backends.backend_info(self.name).noisy or settings.noise_model is not None
            seed = settings.seed if settings.seed is not None and device else 0
            options = dict(settings.transpile_options)
            try:
                key = json.dumps(options, sort_keys=True)
            except (TypeError, ValueError):
                key = None  # not plain JSON (decoded arrays): built for this job only
            try:
                if settings.noise_model is None and key is not None:
                    self._pass_manager = _shared_pass_manager(
                        self.canonical, self.name, settings.optimization_level, seed, key
                    )
                else:
                    self._pass_manager = _make_pass_manager(
                        self.backend, self.name, settings.optimization_level, seed, options
                    )
            except Exception as exc:  # bad layout/routing method names, bad initial layout
                raise bad_input(f"invalid transpilation settings: {exc}") from None
        try:
            return self._pass_manager.run(circuit)
        except Exception as exc:  # e.g. an initial_layout that does not fit the circuit
            raise bad_input(
                f"{where}: cannot transpile the circuit for {self.name}: {exc}"
            ) from None

    @staticmethod
    def follow_layout(observables: Any, isa_circuit: Any) -> Any:
        """Observables (a SparsePauliOp or nested lists) mapped onto the transpiled qubits."""
        layout = isa_circuit.layout
        if isinstance(observables, list):
            return [AerExecution.follow_layout(o, isa_circuit) for o in observables]
        return observables if layout is None else observables.apply_layout(layout)

    def run_sampler(self, pubs: Sequence[tuple[Any, Any, int]]) -> Any:
        """Run ``(isa_circuit, parameter_values | None, shots)`` PUBs; the PrimitiveResult."""
        seed = self.settings.seed
        if self.shot_based:
            from qiskit.primitives import BackendSamplerV2

            sampler: Any = BackendSamplerV2(backend=self.backend, options={"seed_simulator": seed})
        else:
            from qiskit_aer.primitives import SamplerV2

            sampler = SamplerV2(seed=seed)
        return _run(sampler, list(pubs))

    def run_estimator(
        self, pubs: Sequence[tuple[Any, Any, Any, float]], *, shot_based: bool = False
    ) -> Any:
        """Run ``(isa_circuit, observables, parameter_values | None, precision)`` PUBs.

        ``shot_based=True`` measures even on the noiseless simulator (V1 semantics)."""
        seed = self.settings.seed
        if self.shot_based or shot_based:
            from qiskit.primitives import BackendEstimatorV2

            estimator: Any = BackendEstimatorV2(
                backend=self.backend, options={"seed_simulator": seed}
            )
        else:
            from qiskit_aer.primitives import EstimatorV2

            estimator = EstimatorV2(options={"run_options": {"seed_simulator": seed}})
        return _run(estimator, list(pubs))


# A warm worker runs many jobs: building a backend and its preset pass manager costs tens of
# milliseconds (AerSimulator rebuilds its Target on every access), more than a small job itself.
# Both are reused, keyed by everything that shapes them; neither is changed by a run.
@functools.lru_cache(maxsize=16)
def _shared_backend(canonical: str) -> Any:
    return backends.make_backend(canonical)


@functools.lru_cache(maxsize=64)
def _shared_pass_manager(
    canonical: str, name: str, optimization_level: int, seed: int, options_json: str
) -> Any:
    options = json.loads(options_json)
    return _make_pass_manager(_shared_backend(canonical), name, optimization_level, seed, options)


def _make_pass_manager(
    backend: Any, name: str, optimization_level: int, seed: int, options: dict[str, Any]
) -> Any:
    from qiskit.transpiler import generate_preset_pass_manager

    if "coupling_map" in options or "basis_gates" in options:
        # simulated device constraints (V1 simulator options) replace the backend's target
        options.setdefault("basis_gates", backends.configuration(name)["basis_gates"])
    else:
        options["target"] = backend.target  # read once: each access rebuilds it
    return generate_preset_pass_manager(
        optimization_level=optimization_level, seed_transpiler=seed, **options
    )


def _run(primitive: Any, pubs: list[Any]) -> Any:
    try:
        return primitive.run(pubs).result()
    except (ValueError, TypeError) as exc:  # qiskit's PUB validation: shapes, broadcasting
        raise bad_input(f"invalid PUB: {exc}") from None


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as plain JSON data (numpy scalars/arrays converted, anything else as text)."""
    if depth > 20:
        return str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return jsonable(value.tolist(), depth + 1)
    return str(value)


def nested(shape: tuple[int, ...], cell: Callable[[tuple[int, ...]], Any]) -> Any:
    """``cell(index)`` for every index of ``shape``, as nested lists (a bare cell for shape ())."""

    def build(prefix: tuple[int, ...]) -> Any:
        if len(prefix) == len(shape):
            return cell(prefix)
        return [build((*prefix, i)) for i in range(shape[len(prefix)])]

    return build(())
