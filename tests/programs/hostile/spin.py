"""Hostile: a pure CPU spin that ignores the signals it can ignore."""

import signal


def main(backend, user_messenger, **kwargs):
    for sig in (signal.SIGXCPU, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    count = 0
    while True:
        count += 1
