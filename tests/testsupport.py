"""Small helpers shared by test modules across rooms (import as ``from testsupport import ...``)."""

from __future__ import annotations

import socket


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port nobody holds right now (TCP by default; pass socket.SOCK_DGRAM for UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AuthedClient:
    """Flask test client that adds a bearer token to every request."""

    def __init__(self, client, token: str) -> None:  # type: ignore[no-untyped-def]
        self.client = client
        self.token = token

    def __getattr__(self, method: str):  # type: ignore[no-untyped-def]
        call = getattr(self.client, method)

        def send(path: str, **kwargs):  # type: ignore[no-untyped-def]
            headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
            return call(path, headers=headers, **kwargs)

        return send
