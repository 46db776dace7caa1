"""Hostile: the address-space limit is per process, so take memory in several processes at once.

Each child touches ``mib`` MiB and holds it until all children have; the report says how many
succeeded and the children's resident sizes at that moment."""

import os
import signal
import time


def _rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as stream:
            for line in stream:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _child(write_end, mib):
    try:
        block = bytearray(mib << 20)
        block[::4096] = b"\x01" * len(range(0, len(block), 4096))
        os.write(write_end, b"ok")
    except BaseException as exc:
        os.write(write_end, type(exc).__name__.encode())
    time.sleep(60)


def main(backend, user_messenger, children=3, mib=1024, **kwargs):
    pids, outcomes = [], []
    try:
        for _ in range(children):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(read_end)
                    _child(write_end, mib)
                finally:
                    os._exit(0)
            os.close(write_end)
            pids.append(pid)
            outcomes.append(os.read(read_end, 100).decode() or "died")
            os.close(read_end)
        rss = {str(pid): _rss_kib(pid) for pid in pids}
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    held = sum(outcome == "ok" for outcome in outcomes)
    return {
        "outcomes": outcomes,
        "held_mib": held * mib,
        "children_rss_mib": sum(rss.values()) // 1024,
        "rss_kib": rss,
    }
