"""The lockfile's text: what ``locktext`` renders and parses is exactly the canonical JSON text
(``json.dumps(sort_keys=True, indent=2, ensure_ascii=False)``), whatever the data, and an entry's
kept text never outlives a change of the entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from qrt_apply.lockfile import Lockfile
from qrt_apply.locktext import EntryTexts, parse


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
# addresses with quotes, backslashes, newlines and non-ASCII; records of any shape, empty included
entries = st.dictionaries(st.text(), st.dictionaries(st.text(), values, max_size=5), max_size=5)
lockfiles = st.fixed_dictionaries(
    {"version": st.just(1), "target": values, "programs": entries, "jobs": entries},
    optional={"extra": values},
)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(lockfiles)
def test_render_and_parse_are_the_canonical_text(data: dict[str, Any]) -> None:
    text = EntryTexts().render(data)
    assert text == canonical(data)
    parsed, texts = parse(text)
    assert parsed == data
    assert texts.render(parsed) == text  # from the kept texts: byte-identical


@settings(max_examples=100, derandomize=True, deadline=None)
@given(values)
def test_anything_else_is_parsed_whole(data: Any) -> None:
    text = canonical(data)
    parsed, texts = parse(text)
    assert parsed == data and texts.render(parsed) == text


def job(n: int) -> dict[str, Any]:
    return {"id": f"j{n}", "status": "COMPLETED", "result": {"c": {"00": n, "11": 10 - n}}}


def test_a_changed_or_removed_entry_is_rendered_anew(tmp_path: Path) -> None:
    path = tmp_path / "qrt.lock"
    lock = Lockfile(path)
    for n in range(5):
        lock.set_job(f"job.b/j{n}", job(n))
    lock.save()
    again = Lockfile.load(path)
    expected = json.loads(path.read_text())
    again.update_job("job.b/j2", status="FAILED")
    again.set_job("job.b/j3", None)
    again.set_job("job.b/j9", job(9))
    expected["jobs"]["job.b/j2"]["status"] = "FAILED"
    del expected["jobs"]["job.b/j3"]
    expected["jobs"]["job.b/j9"] = job(9)
    assert again.render() == canonical(expected) == path.read_text()


def test_a_hand_formatted_lockfile_loads_with_the_same_data(tmp_path: Path) -> None:
    path = tmp_path / "qrt.lock"
    data = {"version": 1, "target": None, "programs": {}, "jobs": {"job.b/x": job(1)}}
    for text in (json.dumps(data), json.dumps(data, indent=4), canonical(data).replace("  ", "\t")):
        path.write_text(text)
        lock = Lockfile.load(path)
        assert lock.jobs() == data["jobs"]
        assert lock.render() == canonical(data)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(lockfiles, st.data())
def test_a_reindented_lockfile_is_never_written_back_wrong(data: dict[str, Any], draw: Any) -> None:
    """Hand-edited indentation (any line moved left or right) parses to what the JSON says, and
    after records change the text written holds exactly the new data, whatever was kept."""
    lines = canonical(data).split("\n")
    for i in draw.draw(st.lists(st.integers(0, len(lines) - 1), max_size=6)):
        stripped = lines[i].lstrip(" ")
        lines[i] = " " * draw.draw(st.integers(0, 8)) + stripped
    text = "\n".join(lines)
    parsed, texts = parse(text)
    assert parsed == json.loads(text)
    changed = {**parsed}
    for section in ("programs", "jobs"):
        entries = dict(parsed[section])
        if entries:
            first = sorted(entries)[0]
            entries[first] = {"changed": True}
            entries.pop(sorted(entries)[-1])
        entries["job.new/entry"] = {"added": 1}
        changed[section] = entries
    assert json.loads(texts.render(changed)) == changed
