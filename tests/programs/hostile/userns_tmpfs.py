"""Hostile: make a user namespace of its own (full capabilities inside it), mount a tmpfs there and
fill it: tmpfs pages are the host's memory, and no address-space limit counts them.

A fresh process does it (an exec makes it dumpable again, so it may write its own uid_map); it
prints one line, "ok <MiB written>" or the error that stopped it, then holds the memory until
it is killed."""

import subprocess
import sys

HELPER = """
import ctypes, os, sys, time

CLONE_NEWUSER, CLONE_NEWNS, MS_REC, MS_PRIVATE = 0x10000000, 0x20000, 0x4000, 0x40000
mib = int(sys.argv[1])
uid, gid = os.getuid(), os.getgid()
libc = ctypes.CDLL(None, use_errno=True)


def check(result, what):
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


written = 0
try:
    check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as stream:
            stream.write(text)
    check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "private mounts")
    size = f"size={mib + 64}m".encode()
    check(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, size), "mount tmpfs")
    chunk = bytes([1]) * (1 << 20)
    for index in range(mib // 64):
        with open(f"/tmp/fill-{index}", "wb") as stream:
            for _ in range(64):
                stream.write(chunk)
                written += 1
    print(f"ok {written}", flush=True)
except BaseException as exc:
    print(f"{type(exc).__name__} after {written} MiB: {exc}", flush=True)
time.sleep(120)
"""


def _shmem():
    with open("/proc/meminfo") as stream:
        return next((line.split()[1] for line in stream if line.startswith("Shmem:")), None)


def main(backend, user_messenger, mib=1024, **kwargs):
    before = _shmem()
    child = subprocess.Popen([sys.executable, "-c", HELPER, str(mib)], stdout=subprocess.PIPE)
    try:
        outcome = child.stdout.readline().decode().strip() or "died"
        during = _shmem()
    finally:
        child.kill()
        child.wait()
    return {"outcome": outcome, "shmem_kib_before": before, "shmem_kib_during": during}
