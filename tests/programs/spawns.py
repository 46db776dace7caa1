"""Test program: starts a long-lived grandchild process named by ``token``, publishes, then sleeps."""

import subprocess
import sys
import time


def main(backend, user_messenger, token, seconds=60):
    # the token in its command line lets a test find the grandchild from the host
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", token])
    user_messenger.publish({"spawned": child.pid})
    time.sleep(seconds)
    return child.pid
