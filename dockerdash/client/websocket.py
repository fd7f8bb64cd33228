"""A small RFC 6455 websocket client over the standard library, for `dockerdash ssh`:
the opening handshake (with the API token in its Authorization header), masked frames out,
text and binary frames in (fragments joined), ping answered, close both ways. No extensions,
no subprotocols: the dashboard's terminal socket needs none."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import ssl
import struct
from urllib.parse import urlsplit

from dockerdash.client.api import ClientError

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0
MAX_FRAME = 16 * 1024 * 1024


class WebSocket:
    def __init__(self, url: str, headers: dict[str, str], timeout: float = 30) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ClientError(f"{url!r} is not a websocket URL.")
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        try:
            sock = socket.create_connection((parts.hostname, port), timeout=timeout)
            if parts.scheme == "wss":
                sock = ssl.create_default_context().wrap_socket(
                    sock, server_hostname=parts.hostname
                )
        except OSError as e:
            raise ClientError(f"Cannot reach {parts.hostname}:{port}: {e}") from None
        self.sock = sock
        self.buffer = b""
        self.closed = False
        self._message: list[bytes] = []
        self._opcode = 0
        self._handshake(parts, headers)
        sock.settimeout(None)

    def _handshake(self, parts, headers: dict[str, str]) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [
            f"GET {target} HTTP/1.1",
            f"Host: {parts.netloc}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin1"))
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise ClientError(
                    "The server closed the connection during the websocket handshake."
                )
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status, *fields = head.decode("latin1").split("\r\n")
        answer = {k.strip().lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
        code = status.split(" ", 2)[1] if status.count(" ") else status
        if code != "101":
            raise ClientError(f"The server refused the websocket ({status.partition(' ')[2]}).")
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()  # noqa: S324
        if answer.get("sec-websocket-accept") != accept:
            raise ClientError("The server's websocket handshake is not valid (wrong accept key).")

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def fileno(self) -> int:
        return self.sock.fileno()

    def pending(self) -> bool:
        """Bytes already read (or decrypted) that select() on the socket would not report."""
        tls = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
        return bool(tls) or bool(self.buffer)

    def send(self, payload: bytes, opcode: int = TEXT) -> None:
        mask = os.urandom(4)
        size = len(payload)
        head = bytes([0x80 | opcode])
        if size < 126:
            head += bytes([0x80 | size])
        elif size < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", size)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send_text(self, text: str) -> None:
        self.send(text.encode())

    def read(self) -> list[tuple[int, bytes]]:
        """Read once from the socket; the whole messages that completed ((opcode, payload);
        CLOSE last, with its payload). An empty read means the connection ended."""
        if not self._frames_ready() and not self._fill():
            self.closed = True
            return [(CLOSE, b"")]
        messages = []
        while (frame := self._frame()) is not None:
            fin, opcode, payload = frame
            if opcode == PING:
                self.send(payload, PONG)
            elif opcode == CLOSE:
                if not self.closed:
                    self.close(payload[:2] or b"\x03\xe8")
                messages.append((CLOSE, payload))
                return messages
            elif opcode in (TEXT, BINARY, CONTINUATION):
                self._opcode = opcode or self._opcode
                self._message.append(payload)
                if fin:
                    messages.append((self._opcode, b"".join(self._message)))
                    self._message = []
        return messages

    def _frames_ready(self) -> bool:
        return self._header() is not None and len(self.buffer) >= sum(self._header()[2:])

    def _header(self) -> tuple[int, int, int, int] | None:
        """(first byte, mask bit, header length, payload length) if the header is all here."""
        if len(self.buffer) < 2:
            return None
        first, second = self.buffer[0], self.buffer[1]
        size, start = second & 0x7F, 2
        if size == 126:
            if len(self.buffer) < 4:
                return None
            size, start = struct.unpack("!H", self.buffer[2:4])[0], 4
        elif size == 127:
            if len(self.buffer) < 10:
                return None
            size, start = struct.unpack("!Q", self.buffer[2:10])[0], 10
        if size > MAX_FRAME:
            raise ClientError("The server sent a websocket frame too large to take.")
        masked = second & 0x80
        return first, masked, start + (4 if masked else 0), size

    def _frame(self) -> tuple[bool, int, bytes] | None:
        header = self._header()
        if header is None or len(self.buffer) < header[2] + header[3]:
            return None
        first, masked, start, size = header
        payload = self.buffer[start : start + size]
        if masked:  # a server must not mask, but unmasking costs nothing
            key = self.buffer[start - 4 : start]
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        self.buffer = self.buffer[start + size :]
        return bool(first & 0x80), first & 0x0F, payload

    def close(self, payload: bytes = b"\x03\xe8") -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            self.send(payload, CLOSE)

    def shutdown(self) -> None:
        self.close()
        self.sock.close()
