"""The Engine API over asyncio streams: a few GETs and the `/events` stream, for unix sockets
and TLS (tcp://). Enough HTTP/1.1 for what the Docker Engine answers (Content-Length or
chunked bodies); no dependency, and thousands of engines cost sockets, not threads.

TLS contexts come from `clients.tls_context`: built once per (CA, client certificate) and
shared by every engine signed by that CA. ssh:// engines are not handled here (the SDK's
paramiko transport is blocking): see watching.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from machines.engine.clients import API_VERSION, EngineError, tls_context
from machines.validation import parse_engine_url

# Longest header block we accept from an engine (a hostile one must not grow our memory).
MAX_HEADER = 64 * 1024
# Longest single response we read into memory (image lists of big engines are a few MB).
MAX_BODY = 64 * 1024 * 1024


class NotFound(EngineError):
    """The engine answered 404."""


@dataclass(frozen=True)
class Endpoint:
    """Where an engine listens and how to speak to it; hashable, built from EngineAccess."""

    url: str
    ca: str = ""
    cert: str = ""
    key: str = ""

    @property
    def is_async(self) -> bool:
        return self.url.startswith(("unix://", "tcp://", "https://"))

    def context(self) -> ssl.SSLContext | None:
        if self.url.startswith("unix://"):
            return None
        if not (self.ca and self.cert and self.key):
            raise EngineError(f"{self.url}: engines over TCP are reached only with TLS")
        return tls_context(self.ca, self.cert, self.key)


async def connect(
    endpoint: Endpoint, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the engine (TCP + TLS handshake, or a unix socket) within `timeout`."""
    url = endpoint.url
    if url.startswith("unix://"):
        opening = asyncio.open_unix_connection(url[len("unix://") :], limit=MAX_HEADER)
    elif url.startswith(("tcp://", "https://")):
        target = parse_engine_url(url.replace("https://", "tcp://", 1))
        host = target.host.strip("[]")
        opening = asyncio.open_connection(
            host,
            target.port,
            ssl=endpoint.context(),
            server_hostname=host,
            ssl_handshake_timeout=timeout,
            limit=MAX_HEADER,
        )
    else:
        raise EngineError(f"Unsupported engine URL {url!r} for asyncio streams")
    return await asyncio.wait_for(opening, timeout)


def _path(path: str, params: dict | None) -> str:
    query = {}
    for key, value in (params or {}).items():
        if isinstance(value, dict):
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = "1" if value else "0"
        query[key] = value
    return f"/v{API_VERSION}{path}" + (f"?{urlencode(query, quote_via=quote)}" if query else "")


async def _send(writer: asyncio.StreamWriter, path: str) -> None:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: dockerdash\r\n\r\n".encode())
    await writer.drain()


async def _head(reader: asyncio.StreamReader) -> tuple[int, str, dict[str, str]]:
    block = await reader.readuntil(b"\r\n\r\n")
    lines = block.decode("latin-1").split("\r\n")
    _version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(code), reason, headers


async def _chunks(reader: asyncio.StreamReader, headers: dict) -> AsyncIterator[bytes]:
    """The body as it arrives."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                return
            if size > MAX_BODY:
                raise EngineError("the engine sent a chunk too large to read")
            yield await reader.readexactly(size)
            await reader.readexactly(2)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if length > MAX_BODY:
            raise EngineError("the engine sent a response too large to read")
        yield await reader.readexactly(length)
    else:
        while chunk := await reader.read(65536):
            yield chunk


async def _check(reader, code: int, reason: str, headers: dict, path: str) -> None:
    if code == 200:
        return
    body = b""
    async for chunk in _chunks(reader, headers):
        body += chunk
        if len(body) > 4096:
            break
    message = ""
    with contextlib.suppress(ValueError, AttributeError):
        message = json.loads(body).get("message", "")
    cls = NotFound if code == 404 else EngineError
    raise cls(f"the engine answered {code} {reason} to {path.split('?')[0]}: {message}".strip())


async def get_json(endpoint: Endpoint, path: str, params=None, *, timeout: float = 10):
    """One GET on its own connection, its JSON body."""

    async def fetch():
        reader, writer = await connect(endpoint, timeout)
        try:
            full = _path(path, params)
            await _send(writer, full)
            code, reason, headers = await _head(reader)
            await _check(reader, code, reason, headers, full)
            body = b"".join([chunk async for chunk in _chunks(reader, headers)])
            return json.loads(body)
        finally:
            writer.close()

    return await asyncio.wait_for(fetch(), timeout)


class EventStream:
    """`GET /events`: open() connects and reads the response head (so a caller knows the
    subscription holds before it lists anything), then iterate for decoded events."""

    def __init__(self, endpoint: Endpoint, filters: dict, timeout: float) -> None:
        self.endpoint, self.filters, self.timeout = endpoint, filters, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.headers: dict = {}

    async def open(self) -> None:
        async def opening():
            self.reader, self.writer = await connect(self.endpoint, self.timeout)
            full = _path("/events", {"filters": self.filters})
            await _send(self.writer, full)
            code, reason, self.headers = await _head(self.reader)
            await _check(self.reader, code, reason, self.headers, full)

        try:
            await asyncio.wait_for(opening(), self.timeout)
        except BaseException:
            self.close()
            raise

    async def __aiter__(self) -> AsyncIterator[dict]:
        buffer = b""
        async for chunk in _chunks(self.reader, self.headers):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    yield json.loads(line)
            if len(buffer) > MAX_HEADER:
                raise EngineError("the engine sent an event too large to read")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
