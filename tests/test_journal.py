"""The lockfile journal: steps appended, qrt.lock written at flushes, a dead apply's journal replayed
byte-identically; durable steps fsynced before the runtime sees them; file modes from the umask."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from qrt_apply import apply as apply_module
from qrt_apply.apply import Applier
from qrt_apply.lockfile import JOURNAL_NAME, ApplyLock, Lockfile
from qrt_apply.manifests import load_desired_state
from qrt_apply.plan import make_plan, observe
from qrt_apply.render.console import NullConsole
from qrt_apply.runtime.base import SUBMIT_TAG_PREFIX, Target

from fakes import FakeRuntime, WitnessRuntime
from projects import REPO, small_project

TESTS = Path(__file__).resolve().parent


class Clock:
    """An injected clock: time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def journal_of(root: Path) -> Path:
    return root / ".qrt" / JOURNAL_NAME


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def job(n: int, status: str = "QUEUED") -> dict:
    return {"id": f"job{n}", "status": status, "digest": f"d{n}"}


def test_a_step_is_journaled_and_reaches_qrt_lock_only_at_a_flush(tmp_path: Path) -> None:
    clock = Clock()
    path, journal = tmp_path / "qrt.lock", journal_of(tmp_path)
    lock = Lockfile.load(path, journal=journal, flush_interval=2.0, clock=clock)
    lock.set_target(Target("fake", "memory"))
    lock.set_job("job.b/one", job(1))
    assert not path.exists()
    assert [e["section"] for e in lines(journal)] == ["target", "jobs"]
    assert lines(journal)[1] == {"section": "jobs", "address": "job.b/one", "record": job(1)}
    clock.now += 1.9
    lock.update_job("job.b/one", status="RUNNING")
    lock.save_if_due()
    assert not path.exists()  # 1.9 s: not due yet
    clock.now += 0.1
    lock.save_if_due()
    assert json.loads(path.read_text())["jobs"]["job.b/one"]["status"] == "RUNNING"
    assert journal.read_bytes() == b""  # qrt.lock holds it all now
    written = path.read_bytes()
    clock.now += 5
    lock.save_if_due()  # nothing new: nothing written
    assert path.read_bytes() == written
    lock.set_job("job.b/two", job(2))  # due: a step writes qrt.lock itself
    assert "job.b/two" in json.loads(path.read_text())["jobs"]
    lock.set_job("job.b/three", job(3))
    assert "job.b/three" not in json.loads(path.read_text())["jobs"]
    lock.set_job("job.b/four", job(4))
    lock.close()
    assert "job.b/four" in json.loads(path.read_text())["jobs"]
    assert not journal.exists()
    assert path.read_text() == lock.render()


def test_without_a_journal_every_step_writes_qrt_lock(tmp_path: Path) -> None:
    path = tmp_path / "qrt.lock"
    lock = Lockfile.load(path)
    lock.set_job("job.b/one", job(1))
    assert json.loads(path.read_text())["jobs"]["job.b/one"] == job(1)
    assert not (tmp_path / ".qrt").exists()


def test_a_journal_left_behind_is_replayed_by_the_next_load(tmp_path: Path) -> None:
    path, journal = tmp_path / "qrt.lock", journal_of(tmp_path)
    first = Lockfile.load(path, journal=journal)
    first.set_job("job.b/one", job(1))
    first.save()  # qrt.lock as an earlier flush left it
    first.set_target(Target("fake", "memory"))
    first.set_program("program.p", {"id": "p-1", "name": "p"}, durable=True)
    first.update_job("job.b/one", status="COMPLETED", result={"counts": {"00": 3}})
    first.set_job("job.b/two", job(2))
    first.set_job("job.b/two", None)
    expected = first.render()
    assert path.read_text() != expected
    # ... and the process dies here: no close()
    again = Lockfile.load(path, journal=journal)
    assert path.read_text() == expected
    assert again.render() == expected
    assert not journal.exists()
    replayed_once = path.read_bytes()
    assert Lockfile.load(path, journal=journal).render().encode() == replayed_once


def test_replaying_the_same_journal_twice_changes_nothing(tmp_path: Path) -> None:
    path, journal = tmp_path / "qrt.lock", journal_of(tmp_path)
    lock = Lockfile.load(path, journal=journal)
    for n in range(3):
        lock.set_job(f"job.b/{n}", job(n))
        lock.update_job(f"job.b/{n}", status="COMPLETED")
    saved = journal.read_bytes()
    lock.save()  # qrt.lock has everything; a crash before the journal is emptied...
    journal.write_bytes(saved)  # ... leaves the whole journal behind
    expected = path.read_bytes()
    Lockfile.load(path, journal=journal)
    assert path.read_bytes() == expected


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path, journal = tmp_path / "qrt.lock", journal_of(tmp_path)
    whole = [
        {"section": "jobs", "address": "job.b/one", "record": job(1)},
        {"section": "jobs", "address": "job.b/two", "record": job(2)},
    ]
    torn = json.dumps({"section": "jobs", "address": "job.b/three", "record": job(3)})[:25]
    journal.parent.mkdir()
    journal.write_text("".join(json.dumps(e) + "\n" for e in whole) + torn)
    lock = Lockfile.load(path, journal=journal)
    assert set(lock.jobs()) == {"job.b/one", "job.b/two"}
    assert set(json.loads(path.read_text())["jobs"]) == {"job.b/one", "job.b/two"}
    assert not journal.exists()


def test_a_damaged_line_ends_the_replay(tmp_path: Path) -> None:
    # A machine crash can lose the unsynced tail in any shape (zeros, a torn line, then more):
    # only the intact prefix is a state qrt was in.
    path, journal = tmp_path / "qrt.lock", journal_of(tmp_path)
    journal.parent.mkdir()
    good = json.dumps({"section": "jobs", "address": "job.b/one", "record": job(1)})
    later = json.dumps({"section": "jobs", "address": "job.b/two", "record": job(2)})
    journal.write_bytes(f"{good}\n".encode() + b"\0" * 40 + b"\n" + f"{later}\n".encode())
    assert set(Lockfile.load(path, journal=journal).jobs()) == {"job.b/one"}


CRASHING_APPLY = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from fakes import WitnessRuntime
from qrt_apply.apply import Applier
from qrt_apply.lockfile import Lockfile
from qrt_apply.manifests import load_desired_state
from qrt_apply.plan import make_plan, observe
from qrt_apply.render.console import NullConsole

root = Path(sys.argv[1])
seen = []

def before_run(tags):
    seen.append(tags)
    if len(seen) == 3:
        # what a clean write of qrt.lock would hold at this moment, then a death with no cleanup
        (root / "expected.lock").write_text(lock.render())
        os.kill(os.getpid(), signal.SIGKILL)

runtime = WitnessRuntime(before_run)
desired = load_desired_state(root, root / "manifests")
lock = Lockfile.load(root / "qrt.lock", journal=root / ".qrt" / "lock.journal")
plan = make_plan(desired, lock.snapshot(), observe(runtime, lock.snapshot(), names=desired.programs))
Applier(runtime, lock, desired, NullConsole(), parallelism=1, sleep=lambda _: None).apply(plan)
"""


def test_an_apply_killed_mid_way_leaves_a_journal_the_next_load_replays(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_APPLY, str(root), str(TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    expected = (root / "expected.lock").read_text()
    assert journal_of(root).exists()
    records = list(json.loads(expected)["jobs"].values())
    # two POSTs answered; the third in flight and the rest journaled ahead of their POSTs (intents
    # are journaled a window at a time), each with the tag the next apply looks up
    assert len([r for r in records if r.get("id")]) == 2
    submitting = [r for r in records if r["status"] == "SUBMITTING"]
    assert len(submitting) == len(records) - 2 >= 1
    assert all(r["submission_tag"] for r in submitting)
    assert not (root / "qrt.lock").exists() or (root / "qrt.lock").read_text() != expected
    lock = Lockfile.load(root / "qrt.lock", journal=journal_of(root))
    assert (root / "qrt.lock").read_text() == expected  # byte-identical to a clean write
    assert lock.render() == expected
    assert not journal_of(root).exists()


@pytest.fixture
def fsynced_sizes(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[int, int]]:
    """inode -> the file's size at its latest fsync, for every fsync made in this process."""
    sizes: dict[int, int] = {}
    real = os.fsync

    def spy(fd: int) -> None:
        real(fd)
        info = os.fstat(fd)
        sizes[info.st_ino] = info.st_size

    monkeypatch.setattr(os, "fsync", spy)
    yield sizes


def test_durable_steps_are_fsynced_before_the_runtime_is_called(
    tmp_path: Path, fsynced_sizes: dict[int, int]
) -> None:
    root = small_project(tmp_path)
    journal = journal_of(root)
    checked: list[str] = []

    def before_run(tags: Sequence[str]) -> None:
        tag = next(t for t in tags if t.startswith(SUBMIT_TAG_PREFIX))
        text = journal.read_text("utf-8")  # from disk: what another process would read
        line = next(x for x in text.splitlines() if tag in x)
        entry = json.loads(line)
        assert entry["record"]["status"] == "SUBMITTING"
        assert entry["record"]["submission_tag"] == tag
        end = text.index(line) + len(line) + 1
        assert fsynced_sizes.get(journal.stat().st_ino, 0) >= end, "not fsynced before run"
        checked.append(entry["address"])

    runtime = WitnessRuntime(before_run)
    desired = load_desired_state(root, root / "manifests")
    # flush_interval: no flush during the apply, so only durable steps can have fsynced it
    lock = Lockfile.load(root / "qrt.lock", journal=journal, flush_interval=1e9)
    plan = make_plan(
        desired, lock.snapshot(), observe(runtime, lock.snapshot(), names=desired.programs)
    )
    Applier(runtime, lock, desired, NullConsole(), wait=False, sleep=lambda _: None).apply(plan)
    assert sorted(checked) == sorted(a.address for a in plan.actions if a.kind == "run")
    lock.close()


def test_steps_other_than_submissions_are_not_fsynced(
    tmp_path: Path, fsynced_sizes: dict[int, int]
) -> None:
    path, journal = tmp_path / "qrt.lock", journal_of(tmp_path)
    lock = Lockfile.load(path, journal=journal, flush_interval=1e9)
    lock.set_job("job.b/one", job(1))
    lock.update_job("job.b/one", status="COMPLETED", result={"counts": {"11": 1}})
    assert fsynced_sizes == {}
    lock.set_job("job.b/two", {"status": "SUBMITTING", "submission_tag": "t"}, durable=True)
    assert fsynced_sizes.get(journal.stat().st_ino) == journal.stat().st_size


def test_concurrent_steps_each_land_as_one_whole_line(tmp_path: Path) -> None:
    path, journal = tmp_path / "qrt.lock", journal_of(tmp_path)
    lock = Lockfile.load(path, journal=journal, flush_interval=1e9)
    start = threading.Barrier(8)

    def worker(t: int) -> None:
        start.wait()
        for n in range(50):
            address = f"job.t{t}/{n}"
            lock.set_job(address, {"status": "SUBMITTING", "submission_tag": address}, durable=True)
            lock.update_job(address, id=f"{t}-{n}", status="QUEUED")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(lines(journal)) == 8 * 50 * 2
    expected = lock.render()
    assert Lockfile.load(path, journal=journal).render() == expected
    assert path.read_text() == expected


def test_a_journal_under_a_live_apply_is_read_not_taken(tmp_path: Path) -> None:
    path, journal = tmp_path / "qrt.lock", journal_of(tmp_path)
    running = Lockfile.load(path, journal=journal)
    running.set_job("job.b/one", job(1))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from qrt_apply.lockfile import ApplyLock\n"
            "with ApplyLock(Path(sys.argv[1])).hold():\n"
            "    print('held', flush=True); sys.stdin.read()",
            str(journal.parent),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        view = Lockfile.load(path, journal=journal)
        assert view.job("job.b/one") == job(1)  # the live apply's progress is shown...
        assert journal.exists() and not path.exists()  # ... but its files are left alone
    finally:
        holder.communicate("", timeout=30)
    assert ApplyLock(journal.parent).held_by_live_process() is False


def test_a_whole_apply_writes_the_same_bytes_with_and_without_a_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def deterministic_apply(root: Path, journal: Path | None) -> bytes:
        monkeypatch.setattr(apply_module, "_now", lambda: "2026-01-01T00:00:00Z")
        runtime = FakeRuntime(outcomes={"sampler": "COMPLETED"})
        desired = load_desired_state(root, root / "manifests")
        lock = Lockfile.load(root / "qrt.lock", journal=journal)
        plan = make_plan(
            desired, lock.snapshot(), observe(runtime, lock.snapshot(), names=desired.programs)
        )
        Applier(runtime, lock, desired, NullConsole(), parallelism=1, sleep=lambda _: None).apply(
            plan
        )
        lock.close()
        return (root / "qrt.lock").read_bytes()

    plain = deterministic_apply(small_project(tmp_path / "a"), None)
    root = small_project(tmp_path / "b")
    journaled = deterministic_apply(root, journal_of(root))
    assert journaled == plain
    assert not journal_of(root).exists()


MODES = """
import json, os, stat, sys
from pathlib import Path
from qrt_apply.lockfile import Lockfile, atomic_write
from qrt_apply.plan.model import Plan
from qrt_apply.plan.saved import save_plan_file

root = Path(sys.argv[1])
os.umask(int(sys.argv[2], 8))  # after the import: the umask is read at each write
lock = Lockfile.load(root / "qrt.lock", journal=root / ".qrt" / "lock.journal")
lock.set_job("job.b/one", {"status": "COMPLETED"})
journal_mode = (root / ".qrt" / "lock.journal").stat().st_mode
lock.store_result({"big": "x" * 70000})
lock.close()
save_plan_file(root / "plan.json", Plan(actions=()), "digest")
atomic_write(root / "other.txt", "text")
modes = {p.relative_to(root).as_posix(): stat.S_IMODE(p.stat().st_mode)
         for p in root.rglob("*") if p.is_file()}
modes["journal"] = stat.S_IMODE(journal_mode)
print(json.dumps(modes))
"""


@pytest.mark.parametrize("umask, mode", [("022", 0o644), ("027", 0o640)])
def test_files_get_the_mode_the_umask_gives(tmp_path: Path, umask: str, mode: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", MODES, str(tmp_path), umask],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=True,
    )
    modes = json.loads(done.stdout)
    results = [name for name in modes if name.startswith("qrt-results/")]
    assert len(results) == 1
    for name in ("qrt.lock", "plan.json", "other.txt", "journal", results[0]):
        assert modes[name] == mode, (name, oct(modes[name]))


def test_the_account_file_stays_private_whatever_the_umask(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import os, sys
        os.umask(0o022)
        from qrt_apply.runtime.accounts import Account, save_account
        account = Account(channel="ibm_quantum", token="secret")
        save_account(account, name="x", filename=sys.argv[1])
        """
    )
    target = tmp_path / "accounts.json"
    subprocess.run([sys.executable, "-c", code, str(target)], cwd=REPO, check=True, timeout=60)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "secret" in target.read_text()


def test_an_empty_journal_is_removed_and_writes_no_lockfile(tmp_path: Path) -> None:
    # qrt died after creating the journal, before its first line was whole
    path, journal = tmp_path / "qrt.lock", journal_of(tmp_path)
    journal.parent.mkdir()
    journal.write_bytes(b'{"section": "jo')
    lock = Lockfile.load(path, journal=journal)
    assert lock.jobs() == {} and not path.exists() and not journal.exists()
