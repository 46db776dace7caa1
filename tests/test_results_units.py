"""Readable results, summaries, drift and sweeps as pure logic (real qiskit/numpy values, real
RuntimeEncoder text; the end-to-end runs are in test_results.py)."""

from __future__ import annotations

import datetime
import json
import math
from typing import Any

import numpy as np
import pytest
from qiskit.primitives.containers import BitArray
from qiskit.quantum_info import SparsePauliOp

from qrt_apply.engine.primitives import execute_builtin
from qrt_apply.render.results_view import render_drift, render_summary, render_sweep
from qrt_apply.results.canonical import readable, readable_text
from qrt_apply.results.drift import DEFAULT_TOLERANCE, compare_results, tolerance_of
from qrt_apply.results.summary import summarize
from qrt_apply.results.sweep import SweepJob, sweep_of
from qrt_apply.runtime import encoding

from support.results import blobs

BELL = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;\n'


def wire(value: Any) -> str:
    """``value`` as a runtime sends it: RuntimeEncoder text."""
    return encoding.dumps(value)


def test_v1_estimator_values_become_plain_numbers() -> None:
    raw = execute_builtin(
        "estimator",
        {
            "circuits": [BELL],
            "observables": [[["ZZ", 1.0]], [["XX", 0.5], ["II", 1.0]]],
            "observable_indices": [0, 1],
            "circuit_indices": [0, 0],
            "run_options": {"shots": 2000, "seed_simulator": 7},
        },
        "aer_simulator",
    )
    text = wire(raw)
    assert '"__type__": "ndarray"' in text  # what the runtime sends: a compressed blob
    result = readable_text(text)
    assert blobs(result) == []
    assert result["values"] == [pytest.approx(1.0), pytest.approx(1.5)]
    summary = summarize(result)
    assert [e.label for e in summary.expectations] == ["circuit 0", "circuit 1"]
    assert all(e.std is not None and e.std >= 0 for e in summary.expectations)


def test_v1_sampler_quasi_dists_read_as_bitstrings() -> None:
    raw = execute_builtin(
        "sampler",
        {"circuits": [BELL], "run_options": {"shots": 500, "seed_simulator": 3}},
        "aer_simulator",
    )
    result = readable_text(wire(raw))
    assert blobs(result) == []
    assert set(result["quasi_dists"][0]) == {"0x0", "0x3"}  # the V1 format, kept
    (dist,) = summarize(result).distributions
    assert dist.quasi and dist.shots == 500 and set(dist.values) == {"00", "11"}
    assert math.isclose(sum(dist.probabilities().values()), 1.0)
    assert "quasi-probabilities" in "\n".join(render_summary(summarize(result), result))


def primitive_result_text(arrays: dict[str, BitArray], shape: tuple[int, ...] = ()) -> str:
    """The sampler result of qiskit-ibm-runtime (reference: iqp-rest-api.md, "Result text")."""
    fields = {
        name: {
            "__type__": "BitArray",
            "__value__": {"array": bits.array, "num_bits": bits.num_bits},
        }
        for name, bits in arrays.items()
    }
    pub = {
        "__type__": "SamplerPubResult",
        "__value__": {
            "data": {
                "__type__": "DataBin",
                "__value__": {"field_names": list(arrays), "shape": list(shape), "fields": fields},
            },
            "metadata": {"shots": 100, "circuit_metadata": {}},
        },
    }
    return wire(
        {
            "__type__": "PrimitiveResult",
            "__value__": {"pub_results": [pub], "metadata": {"version": 2}},
        }
    )


def test_ibm_sampler_result_becomes_counts_per_register() -> None:
    rng = np.random.default_rng(5)
    wide = BitArray.from_samples([int(x) for x in rng.integers(0, 2**10, 300)], num_bits=10)
    small = BitArray.from_samples(["01", "10", "10"] * 10, num_bits=2)
    result = readable_text(primitive_result_text({"meas": wide, "flag": small}))
    assert blobs(result) == []
    data = result["results"][0]["data"]
    assert data["meas"]["counts"] == dict(sorted(wide.get_counts().items()))
    assert data["flag"]["counts"] == {"01": 10, "10": 20}
    assert data["meas"]["num_shots"] == 300 and data["meas"]["num_bits"] == 10
    labels = [d.label for d in summarize(result).distributions]
    assert labels == ["pub 0 meas", "pub 0 flag"]


def test_ibm_sampler_result_with_a_shape_counts_each_index() -> None:
    samples = np.array([[[0b01], [0b01]], [[0b11], [0b00]]], dtype=np.uint8)  # shape (2,), 2 shots
    bits = BitArray(samples, num_bits=2)
    result = readable_text(primitive_result_text({"c": bits}, shape=(2,)))
    counts = result["results"][0]["data"]["c"]["counts"]
    assert counts == [bits.get_counts(0), dict(sorted(bits.get_counts(1).items()))]
    assert [d.label for d in summarize(result).distributions] == ["pub 0 c [0]", "pub 0 c [1]"]


def test_ibm_estimator_result_becomes_numbers() -> None:
    pub = {
        "__type__": "PubResult",
        "__value__": {
            "data": {
                "__type__": "DataBin",
                "__value__": {
                    "field_names": ["evs", "stds"],
                    "shape": [3],
                    "fields": {
                        "evs": np.array([0.5, -1.0, 2.0]),
                        "stds": np.array([0.1, 0.2, 0.0]),
                    },
                },
            },
            "metadata": {"target_precision": 0.1},
        },
    }
    text = wire({"__type__": "PrimitiveResult", "__value__": {"pub_results": [pub]}})
    result = readable_text(text)
    assert result["results"][0]["data"] == {
        "evs": [0.5, -1.0, 2.0],
        "stds": [0.1, 0.2, 0.0],
        "shape": [3],
    }
    expectations = summarize(result).expectations
    assert [(e.label, e.value, e.std) for e in expectations] == [
        ("pub 0 [0]", 0.5, 0.1),
        ("pub 0 [1]", -1.0, 0.2),
        ("pub 0 [2]", 2.0, 0.0),
    ]


def test_program_return_values_are_plain_json() -> None:
    value = {
        "amplitudes": np.array([1 + 2j, 0.5 - 1j]),
        "matrix": np.arange(6, dtype=np.int64).reshape(2, 3),
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5),
        "seen": {3, 1, 2},
        "z": 2 - 1j,
        "operator": SparsePauliOp.from_list([("ZZ", 1.0), ("XI", -0.5)]),
        "by_index": {1: "a", 2: "b"},
    }
    result = readable_text(wire(value))
    assert blobs(result) == []
    assert result["amplitudes"] == [[1.0, 2.0], [0.5, -1.0]]
    assert result["matrix"] == [[0, 1, 2], [3, 4, 5]]
    assert result["when"] == "2026-01-02T03:04:05"
    assert result["seen"] == [1, 2, 3]
    assert result["z"] == [2.0, -1.0]
    assert result["operator"]["type"] == "SparsePauliOp"
    assert "__int_keys__" not in json.dumps(result)
    assert summarize(result).empty  # shown as JSON by qrt results
    assert readable(result) == result  # idempotent: recorded results pass through unchanged


def test_unknown_encodings_keep_their_wrapper_and_text_stays_text() -> None:
    odd = {"__type__": "Mystery", "__value__": {"x": {"__type__": "complex", "__value__": [1, 0]}}}
    assert readable(odd) == {"__type__": "Mystery", "__value__": {"x": [1.0, 0.0]}}
    assert readable_text("not json at all") == "not json at all"
    broken = {"__type__": "ndarray", "__value__": "!!!not base64"}
    assert readable(broken) == broken  # undecodable stays as it was, nothing raised


def counts(pairs: dict[str, int], register: str = "c") -> dict[str, Any]:
    shots = sum(pairs.values())
    data = {register: {"counts": pairs, "num_shots": shots, "num_bits": 2, "shape": []}}
    return {"results": [{"data": data, "metadata": {}}]}


def estimate(evs: float | list[float], stds: float | list[float]) -> dict[str, Any]:
    shape = [len(evs)] if isinstance(evs, list) else []
    return {"results": [{"data": {"evs": evs, "stds": stds, "shape": shape}, "metadata": {}}]}


def test_total_variation_distance_of_counts() -> None:
    drift = compare_results(counts({"00": 50, "11": 50}), counts({"00": 30, "11": 60, "01": 10}))
    # p = (.5, .5, 0), q = (.3, .6, .1): ½(.2 + .1 + .1) = 0.2
    assert drift.worst("tvd") == pytest.approx(0.2)
    assert drift.exceeds({"tvd": 0.25}) == []
    assert [e.label for e in drift.exceeds({"tvd": 0.1})] == ["pub 0 c"]
    same = compare_results(counts({"00": 5, "11": 5}), counts({"00": 50, "11": 50}))
    assert same.worst("tvd") == 0.0
    disjoint = compare_results(counts({"00": 5}), counts({"11": 7}))
    assert disjoint.worst("tvd") == pytest.approx(1.0)


def test_z_score_of_expectation_values() -> None:
    drift = compare_results(estimate([1.0, 0.0], [0.03, 0.1]), estimate([1.1, 0.0], [0.04, 0.1]))
    # |1.1 - 1.0| / sqrt(.03² + .04²) = 0.1 / 0.05 = 2
    assert drift.worst("z") == pytest.approx(2.0)
    assert drift.exceeds({"z": 1.5})[0].label == "pub 0 [0]"
    assert drift.exceeds({}) == []  # the default z tolerance
    exact = compare_results(estimate(1.0, 0.0), estimate(1.5, 0.0))
    assert math.isinf(exact.worst("z") or 0) and exact.record("j1")["z"] == "inf"
    assert compare_results(estimate(1.0, 0.0), estimate(1.0, 0.0)).worst("z") == 0.0


def test_changed_structure_is_unmatched_not_compared() -> None:
    drift = compare_results(counts({"00": 1}, "c"), counts({"00": 1}, "meas"))
    assert not drift.comparable and drift.unmatched == ("pub 0 c", "pub 0 meas")
    assert drift.record("old") == {"against": "old", "unmatched": ["pub 0 c", "pub 0 meas"]}
    assert "not comparable" in render_drift("job.a/b", drift, tolerance_of(None))[0]
    assert not compare_results({"value": 1}, {"value": 2}).comparable  # program results


def test_tolerance_defaults_and_overrides() -> None:
    assert tolerance_of(None) == DEFAULT_TOLERANCE
    assert tolerance_of({"tvd": 0.01}) == {"tvd": 0.01, "z": DEFAULT_TOLERANCE["z"]}
    drift = compare_results(counts({"00": 50, "11": 50}), counts({"00": 45, "11": 55}))
    lines = render_drift("job.b/x", drift, tolerance_of({"tvd": 0.01}))
    assert "PAST TOLERANCE" in lines[1] and "0.05" in lines[1]


def test_summary_table_sorts_counts_and_shows_probabilities() -> None:
    result = counts({"00": 30, "11": 60, "01": 10})
    lines = render_summary(summarize(result), result)
    assert lines[0] == "pub 0 c (100 shots)"
    rows = [line.split() for line in lines[2:]]
    assert rows == [["11", "60", "0.6000"], ["00", "30", "0.3000"], ["01", "10", "0.1000"]]
    result = estimate([1.25, -0.5], [0.01, 0.02])
    text = "\n".join(render_summary(summarize(result), result))
    assert "pub 0 [0]" in text and "1.25" in text and "± 0.01" in text and "± 0.02" in text


def test_sweep_follows_the_matrix_variable() -> None:
    jobs = [
        SweepJob("p-0p2", {"p": 0.2, "q": "a"}, estimate(0.4, 0.01)),
        SweepJob("p-0p1", {"p": 0.1, "q": "a"}, estimate(0.2, 0.01)),
        SweepJob("p-0p3", {"p": 0.3, "q": "a"}, estimate(0.6, 0.01)),
        SweepJob("plain", {}, estimate(9.0, 0.01)),
    ]
    sweep = sweep_of(jobs)
    assert sweep.variable == "p" and sweep.numeric and sweep.left_out == ("plain",)
    (series,) = sweep.series.values()  # q does not vary: no extra series
    assert [(p.x, p.value) for p in series] == [(0.1, 0.2), (0.2, 0.4), (0.3, 0.6)]
    lines = render_sweep(sweep)
    assert [line.split()[0] for line in lines[1:4]] == ["p-0p1", "p-0p2", "p-0p3"]
    assert "left out" in lines[-1]


def test_sweep_of_counts_has_one_series_per_outcome_and_per_other_variable() -> None:
    jobs = [
        SweepJob(f"j-{s}-{b}", {"shots": s, "basis": b}, counts({"00": s - 10, "11": 10}))
        for s in (20, 40, 80)
        for b in ("x", "z")
    ]
    sweep = sweep_of(jobs)
    assert sweep.variable == "shots"
    assert sorted(sweep.series) == [
        "pub 0 c: P(00) (basis=x)",
        "pub 0 c: P(00) (basis=z)",
        "pub 0 c: P(11) (basis=x)",
        "pub 0 c: P(11) (basis=z)",
    ]
    values = [p.value for p in sweep.series["pub 0 c: P(11) (basis=x)"]]
    assert values == pytest.approx([0.5, 0.25, 0.125])


def test_results_recorded_as_blobs_by_older_versions_read_plainly(tmp_path) -> None:
    from qrt_apply.lockfile import Lockfile
    from qrt_apply.results.report import compare_job, completed_result

    old_blob = json.loads(wire({"values": np.array([0.5, 0.25]), "metadata": [{}, {}]}))
    assert blobs(old_blob)  # what qrt.lock used to hold for a V1 estimator
    lock = Lockfile(tmp_path / "qrt.lock")
    lock.set_job(
        "job.e/v1",
        {
            "id": "new",
            "status": "COMPLETED",
            "result": {"values": [0.5, 0.75], "metadata": [{}, {}]},
            "history": [{"id": "old", "status": "COMPLETED", "result": old_blob}],
        },
    )
    record, result = completed_result(lock, "job.e/v1")
    assert result["values"] == [0.5, 0.75] and record["id"] == "new"
    comparison = compare_job(lock, "job.e/v1")
    assert comparison.previous_id == "old"
    changed = [e for e in comparison.drift.entries if e.value > 0]
    assert [(e.label, e.old, e.new) for e in changed] == [("circuit 1", 0.25, 0.75)]


def test_histogram_of_a_wide_register_keeps_the_most_frequent_outcomes(tmp_path) -> None:
    from qrt_apply.results.plot import MAX_BARS, plot_summary

    pairs = {format(i, "08b"): 1000 - i for i in range(200)}  # 200 outcomes, "00000000" the most
    path = tmp_path / "wide.svg"
    plot_summary(summarize(counts(pairs)), path, "job.w/x")
    text = path.read_text()
    assert f"the {MAX_BARS} most frequent of 200 outcomes" in text
    assert ">00000000<" in text and f">{format(MAX_BARS - 1, '08b')}<" in text
    assert f">{format(MAX_BARS, '08b')}<" not in text
