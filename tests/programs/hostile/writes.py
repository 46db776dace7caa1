"""Hostile: write outside /job: new files in system and Python directories, and the launcher.

Every attempt is harmless if it succeeds (a new, uniquely named file; an open for writing
that writes nothing; a chmod to the same mode), so a hole is reported without damage."""

import os
import site
import sys

import qrt_apply


def attempt(action):
    try:
        return {"ok": True, "value": action()}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _create(path):
    with open(path, "x") as stream:
        stream.write("written by a hostile job\n")
    return path


def _open_for_writing(path, flags):
    os.close(os.open(path, os.O_WRONLY | flags))
    return "opened for writing"


def main(backend, user_messenger, name, extra_dirs=(), **kwargs):
    package = os.path.dirname(qrt_apply.__file__)
    dirs = [
        "/",
        "/usr",
        "/usr/lib",
        "/usr/local",
        "/etc",
        "/root",
        sys.prefix,
        sys.base_prefix,
        os.path.dirname(sys.executable),
        *site.getsitepackages(),
        package,
        os.path.join(package, "engine"),
        *extra_dirs,
    ]
    launcher = os.path.join(package, "engine", "sandboxed.py")
    mode = os.stat(launcher).st_mode & 0o7777
    return {
        "create": {
            path: attempt(lambda path=path: _create(os.path.join(path, name))) for path in dirs
        },
        "mkdir": attempt(lambda: os.mkdir(os.path.join("/usr", name))),
        "open_launcher": attempt(lambda: _open_for_writing(launcher, 0)),
        "append_launcher": attempt(lambda: _open_for_writing(launcher, os.O_APPEND)),
        "chmod_launcher": attempt(lambda: os.chmod(launcher, mode)),
        "open_python": attempt(lambda: _open_for_writing(sys.executable, os.O_APPEND)),
        "job": attempt(lambda: _create(os.path.join(os.getcwd(), name))),  # /job: allowed
    }
