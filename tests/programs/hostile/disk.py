"""Hostile: fill the host's disk through the job directory (the working directory: /job in a
sandbox), one file at the size limit after another."""

import os


def main(backend, user_messenger, files=17, mib=64, **kwargs):
    chunk = b"\0" * (1 << 20)
    written, error = 0, None
    try:
        for index in range(files):
            with open(os.path.join(os.getcwd(), f"fill-{index}"), "wb") as stream:
                for _ in range(mib):
                    stream.write(chunk)
                    written += 1
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    return {"written_mib": written, "error": error}
