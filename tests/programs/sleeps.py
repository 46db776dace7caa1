"""Test program: publishes, then sleeps ``seconds`` (long by default), then returns."""

import time


def main(backend, user_messenger, seconds=60, **kwargs):
    print("going to sleep", flush=True)
    user_messenger.publish({"sleeping": seconds})
    time.sleep(seconds)
    return "woke up"
