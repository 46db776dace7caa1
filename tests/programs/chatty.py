"""Test program: writes ``lines`` numbered lines to stdout and a last line to stderr."""

import sys


def main(backend, user_messenger, lines=10000):
    for i in range(lines):
        print(f"line {i:06d}")
    print("the end", file=sys.stderr)
    return lines
