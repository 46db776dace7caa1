"""`qrt` with timers and what-ifs, for bench/engine.py's breakdown of figures 1 and 2.

`python bench/apply_probe.py QRT-ARGS...` runs the qrt CLI in this process with wrappers around
`Lockfile.save` (count, seconds), the applier's submit and wait phases and its poll sleeps, and
writes what they saw as JSON to the file named by `QRT_BENCH_PROBE_OUT` when the process exits.

What-ifs (not fixes; they show what a cost is worth):
- `QRT_BENCH_DEFER_SAVES=1`: every lockfile save but the last one is skipped, as if qrt.lock were
  not rewritten after each step (the final qrt.lock is the same);
- `QRT_BENCH_POLL_MAX=S`: the applier polls its jobs every S seconds at most (instead of 0.25 s
  growing to 2 s).

Nothing in qrt_apply is changed; the wrappers live in this process only.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import sys
import time
from typing import Any

START = time.perf_counter()


def main() -> None:
    from qrt_apply import apply as applier
    from qrt_apply import lockfile
    from qrt_apply.cli import main as qrt_main

    defer = os.environ.get("QRT_BENCH_DEFER_SAVES") == "1"
    seen: dict[str, Any] = {"saves": 0, "save_s": 0.0, "skipped_saves": 0, "polls": 0}
    final = [False]
    save = lockfile.Lockfile.save

    def timed_save(self: Any) -> None:
        if defer and not final[0]:
            seen["skipped_saves"] += 1
            return
        began = time.perf_counter()
        save(self)
        seen["saves"] += 1
        seen["save_s"] += time.perf_counter() - began

    lockfile.Lockfile.save = timed_save  # type: ignore[method-assign]

    # Seconds inside the lockfile's work: steps (journal append, periodic saves, the fsync of a
    # durable step), journal fsyncs, loading (journal replay included) and the closing save.
    # ``lockfile_s`` counts the outermost call only, so nested calls are not counted twice.
    import threading

    from qrt_apply import journal

    depth = threading.local()
    seen["lockfile_s"] = seen["lockfile_cpu_s"] = 0.0

    def timed(key: str, original: Any) -> Any:
        seen[f"{key}_s"] = 0.0
        seen[key] = 0

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            outer = getattr(depth, "n", 0) == 0
            depth.n = getattr(depth, "n", 0) + 1
            began, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.perf_counter() - began
                depth.n -= 1
                seen[f"{key}_s"] += spent
                seen[key] += 1
                if outer:
                    seen["lockfile_s"] += spent
                    seen["lockfile_cpu_s"] += time.thread_time() - cpu

        return wrapped

    lockfile.Lockfile._step = timed("steps", lockfile.Lockfile._step)  # type: ignore[method-assign]
    lockfile.Lockfile.close = timed("close", lockfile.Lockfile.close)  # type: ignore[method-assign]
    lockfile.Lockfile.save = timed("saves_outer", lockfile.Lockfile.save)  # type: ignore[method-assign]
    journal.Journal.sync = timed("sync", journal.Journal.sync)  # type: ignore[method-assign]
    load = timed("load", lockfile.Lockfile.load.__func__)  # type: ignore[attr-defined]
    lockfile.Lockfile.load = classmethod(load)  # type: ignore[assignment,method-assign]

    # Every HTTP request the runtime client sends, by method and path shape (ids as {id}), and
    # how many were pages of a listing (a GET with ``limit``).
    import re

    import httpx

    send = httpx.Client.send
    seen.update(requests=0, list_pages=0, by_path={})
    ident = re.compile(r"/[0-9a-f]{8,}[0-9a-z_-]*|/[a-z0-9-]+-[0-9a-f]{6,}")

    def counted_send(self: Any, request: httpx.Request, *args: Any, **kwargs: Any) -> Any:
        seen["requests"] += 1
        if request.method == "GET" and "limit" in request.url.params:
            seen["list_pages"] += 1
        shape = f"{request.method} {ident.sub('/{id}', request.url.path)}"
        seen["by_path"][shape] = seen["by_path"].get(shape, 0) + 1
        return send(self, request, *args, **kwargs)

    httpx.Client.send = counted_send  # type: ignore[method-assign]

    def phase(name: str) -> None:
        original = getattr(applier.Applier, name)

        def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
            seen[f"{name}_start_s"] = time.perf_counter() - START
            try:
                return original(self, *args, **kwargs)
            finally:
                seen[f"{name}_end_s"] = time.perf_counter() - START
                if name == "apply" and defer:
                    final[0] = True
                    self.lock.save()

        setattr(applier.Applier, name, wrapped)

    for name in ("apply", "_submit_jobs", "_wait_all"):
        phase(name)

    init = applier.Applier.__init__

    poll_max = os.environ.get("QRT_BENCH_POLL_MAX")

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if poll_max:
            self.max_poll_interval = float(poll_max)
            self.poll_interval = min(self.poll_interval, float(poll_max))
        sleep = self.sleep

        def counted(seconds: float) -> None:
            seen["polls"] += 1
            sleep(seconds)

        self.sleep = counted

    applier.Applier.__init__ = counting_init  # type: ignore[method-assign]

    def report() -> None:
        seen["exit_s"] = time.perf_counter() - START
        seen["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = os.environ.get("QRT_BENCH_PROBE_OUT")
        if out:
            with open(out, "w", encoding="utf-8") as stream:
                json.dump(seen, stream)

    atexit.register(report)
    sys.argv = ["qrt", *sys.argv[1:]]
    qrt_main()


if __name__ == "__main__":
    main()
