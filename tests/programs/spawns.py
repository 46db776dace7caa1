"""Test program: starts a long-lived grandchild process, writes its pid, then sleeps."""

import subprocess
import sys
import time


def main(backend, user_messenger, pid_file, seconds=60):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(pid_file, "w") as stream:
        stream.write(str(child.pid))
    time.sleep(seconds)
    return child.pid
