"""Hostile: take 4 GiB of memory, and raise the address-space limit first if it can."""

import resource


def attempt(action):
    try:
        return {"ok": True, "value": action()}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _grab(gib):
    block = bytearray(gib << 30)
    block[:: 1 << 20] = b"\x01" * len(range(0, len(block), 1 << 20))
    return len(block)


def main(backend, user_messenger, gib=4, **kwargs):
    unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    return {
        "RLIMIT_AS": resource.getrlimit(resource.RLIMIT_AS),
        "allocate": attempt(lambda: _grab(gib)),
        "raise_limit": attempt(lambda: resource.setrlimit(resource.RLIMIT_AS, unlimited)),
        "allocate_again": attempt(lambda: _grab(gib)),
    }
