"""Test program: publishes once, then raises."""


def helper(value):
    raise ValueError(f"bad value {value}")


def main(backend, user_messenger, **kwargs):
    user_messenger.publish("about to fail")
    helper(kwargs.get("value", 42))
