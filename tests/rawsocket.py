"""A websocket opened over a plain TCP socket, as a browser opens one against `manage.py
serve`: the handshake with the user's session cookie, then the server's first text frame.
Every read has a deadline, so a frozen server fails the test instead of hanging it."""

from __future__ import annotations

import base64
import os
import socket
from urllib.parse import urlsplit


def first_frame(base_url: str, path: str, cookie: str, timeout: float) -> str:
    """The first text frame of the socket at `path`, or TimeoutError/ConnectionError."""
    url = urlsplit(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {base_url}\r\nCookie: {cookie}\r\n\r\n"
        )
        sock.sendall(request.encode())
        reader = sock.makefile("rb")
        status = reader.readline().decode()
        if " 101 " not in status:
            raise ConnectionError(f"the socket was refused: {status.strip()}")
        while reader.readline() not in (b"\r\n", b""):
            pass
        return _text_frame(reader)


def _text_frame(reader) -> str:
    head = reader.read(2)
    if len(head) < 2:
        raise ConnectionError("the server closed the socket")
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        length = int.from_bytes(reader.read(2), "big")
    elif length == 127:
        length = int.from_bytes(reader.read(8), "big")
    payload = reader.read(length)
    if opcode == 8:
        raise ConnectionError(f"the server closed the socket ({payload[:2].hex()})")
    return payload.decode()
