"""A long job that leaves a marker file in its own job directory (the working directory: /job in
a sandbox) for another job to look for."""

import os
import time


def main(backend, user_messenger, marker, content, seconds=120, **kwargs):
    with open(os.path.join(os.getcwd(), marker), "w") as stream:
        stream.write(content)
    user_messenger.publish("marked")
    time.sleep(seconds)
    return {"slept": seconds}
