"""Hostile: connect to loopback services of the host (the server's port among them).

Only the loopback targets the test passes; never any other address."""

import socket


def attempt(action):
    try:
        return {"ok": True, "value": action()}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _tcp(host, port):
    with socket.create_connection((host, port), timeout=5) as connection:
        connection.sendall(b"GET /api/version HTTP/1.0\r\n\r\n")
        return connection.recv(100).decode(errors="replace")


def _abstract(name):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(5)
        connection.connect("\0" + name)
        return "connected"


def main(backend, user_messenger, targets, abstract=None, **kwargs):
    report = {
        f"tcp {host}:{port}": attempt(lambda h=host, p=port: _tcp(h, p)) for host, port in targets
    }
    if abstract:
        report["abstract unix"] = attempt(lambda: _abstract(abstract))
    report["interfaces"] = attempt(socket.if_nameindex)
    return report
