"""Hostile: report the CPU-time limit the job runs under, and try to lift it."""

import resource


def attempt(action):
    try:
        return {"ok": True, "value": action()}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def main(backend, user_messenger, **kwargs):
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    return {
        "soft": soft,
        "hard": hard,
        "used": usage.ru_utime + usage.ru_stime,
        "raise_hard": attempt(lambda: resource.setrlimit(resource.RLIMIT_CPU, unlimited)),
        "after": resource.getrlimit(resource.RLIMIT_CPU),
    }
