"""Test program in the qiskit-ibmq-provider style: the result is published with ``final=True``."""

import json


def main(backend, user_messenger, **kwargs):
    user_messenger.publish({"step": 1}, encoder=json.JSONEncoder)
    user_messenger.publish({"answer": 42}, final=True)
