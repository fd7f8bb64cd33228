"""Containers of a machine's engine, as the dashboard follows them: a container's log stream.

Everything here is bounded, because the other end is a container's output (anyone who can
run a container can print anything): a line is cut at LINE_LIMIT bytes, the engine is read
in pieces of READ_SIZE bytes, the lines waiting for a socket are at most QUEUE_LINES (and
QUEUE_BYTES), and one user follows at most STREAMS_PER_USER logs per process. What is cut or
dropped is said so, on a line of its own.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import struct

from machines.engine.streams.base import DockerStream, LoopQueue, PerUserSlots, slots
from machines.models import Container

log = logging.getLogger(__name__)

# A container's log panel starts with this many of its last lines.
LOG_TAIL = 200
# Longer lines are cut (a line without a newline would otherwise grow without limit).
LINE_LIMIT = 16 * 1024
READ_SIZE = 64 * 1024
# Lines waiting for a socket (the panel itself keeps 1,000): past this, lines are dropped.
QUEUE_LINES = 1000
QUEUE_BYTES = 2 * 1024 * 1024
# Log streams one user may have open in one process (each is a thread and an engine stream).
STREAMS_PER_USER = 8
TOO_MANY_STREAMS = (
    f"Not following: you have {STREAMS_PER_USER} container logs open already. "
    "Close one of them, then open this log again."
)


def cut_marker(limit: int) -> str:
    return f" … [line cut at {limit} bytes]"


def dropped_marker(count: int) -> str:
    return f"… {count} line{'s' if count != 1 else ''} dropped: the browser could not keep up"


class LineCutter:
    """Bytes in, complete lines out; a line longer than `limit` bytes is cut there, marked,
    and the rest of it skipped up to its newline. Holds at most `limit` bytes."""

    def __init__(self, limit: int = LINE_LIMIT) -> None:
        self.limit = limit
        self.partial = bytearray()
        self.skipping = False

    def feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        *complete, rest = data.split(b"\n")
        for piece in complete:
            self._add(piece, lines, ended=True)
        self._add(rest, lines, ended=False)
        return lines

    def end(self) -> list[str]:
        """What is left when the stream ends: a last line without a newline."""
        return [self._text(self.partial)] if self.partial else []

    def _add(self, piece: bytes, lines: list[str], *, ended: bool) -> None:
        if self.skipping:
            self.skipping = not ended
            return
        room = self.limit - len(self.partial)
        if len(piece) > room:
            self.partial += piece[:room]
            lines.append(self._text(self.partial) + cut_marker(self.limit))
            self.partial.clear()
            self.skipping = not ended
            return
        self.partial += piece
        if ended:
            lines.append(self._text(self.partial))
            self.partial.clear()

    @staticmethod
    def _text(raw: bytearray) -> str:
        return raw.decode(errors="replace").rstrip("\r")


class Demux:
    """Docker's multiplexed stream (a container without a TTY): frames of an 8-byte header
    (stream, three zero bytes, big-endian length) and a payload, taken apart as the bytes
    come, so that a frame is never held whole (its length is the engine's to say)."""

    def __init__(self) -> None:
        self.header = b""
        self.left = 0

    def feed(self, data: bytes) -> list[bytes]:
        payload: list[bytes] = []
        while data:
            if not self.left:
                need = 8 - len(self.header)
                self.header, data = self.header + data[:need], data[need:]
                if len(self.header) == 8:
                    self.left = struct.unpack(">BxxxL", self.header)[1]
                    self.header = b""
                continue
            piece, data = data[: self.left], data[self.left :]
            self.left -= len(piece)
            payload.append(piece)
        return payload


class _Dropped:
    def __init__(self) -> None:
        self.count = 0


class LineQueue(LoopQueue):
    """Lines from a follower thread to its socket's task, bounded; never blocks the thread.

    When the socket falls behind, new lines are dropped and counted, and the socket gets a
    line saying how many, in their place.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, lines: int = QUEUE_LINES) -> None:
        super().__init__(loop)
        self.max_lines = lines
        self.max_bytes = QUEUE_BYTES
        self.items: collections.deque[str | _Dropped] = collections.deque()
        self.size = 0
        self.dropped = 0  # in all, for whoever wants to know
        self.error: str | None = None

    def put(self, lines: list[str]) -> None:
        with self.lock:
            for line in lines:
                if len(self.items) < self.max_lines and self.size + len(line) <= self.max_bytes:
                    self.items.append(line)
                    self.size += len(line)
                    continue
                if not (self.items and isinstance(self.items[-1], _Dropped)):
                    self.items.append(_Dropped())
                self.items[-1].count += 1
                self.dropped += 1
        self._wake()

    def end(self, error: str | None = None) -> None:
        self._end(error=error)

    def take(self, most: int) -> tuple[list[str], bool]:
        """Up to `most` lines (a drop counted as one), and whether the stream has ended and
        everything has been taken."""
        texts: list[str] = []
        with self.lock:
            while self.items and len(texts) < most:
                item = self.items.popleft()
                if isinstance(item, _Dropped):
                    texts.append(dropped_marker(item.count))
                else:
                    self.size -= len(item)
                    texts.append(item)
            self._settle(not self.items)
            return texts, self.ended and not self.items


class LogFollower(DockerStream):
    """Reads `docker logs --follow --tail N` in a thread and hands lines to a LineQueue."""

    def __init__(self, container: Container, tail: int, queue: LineQueue) -> None:
        super().__init__(None, f"logs-{container.container_id[:12]}")
        self.container = container
        self.tail = tail
        self.queue = queue
        self.cutter = LineCutter()
        self.end_reason = "The container is not running: the log ends here."

    def engine_machine(self):
        return self.container.machine

    def follow(self) -> None:
        info = self.client.api.inspect_container(self.container.container_id)
        if info["State"].get("Running"):
            self.end_reason = "The container stopped: the log ends here."
        self._follow(tty=bool(info["Config"].get("Tty")))
        if not self.stopping.is_set():
            self.queue.end()

    def open_log(self, params: dict):
        return self.open(self.container.container_id, "logs", params, (10, None))

    def failed(self, error: Exception) -> None:
        log.info("Following the log of %s failed: %s", self.container, error)
        self.queue.end(getattr(error, "explanation", None) or error.__class__.__name__)

    def _follow(self, *, tty: bool) -> None:
        import docker.errors
        import requests

        params = {"stdout": 1, "stderr": 1, "follow": 1, "tail": self.tail}
        # A quiet container may say nothing for hours: no read timeout on the stream.
        if self.open_log(params) is None:
            return
        try:
            self.response.raise_for_status()
        except requests.HTTPError as e:
            docker.errors.create_api_error_from_http_exception(e)
        demux = None if tty else Demux()
        # Read as the engine sends (each HTTP chunk at once), never more than READ_SIZE.
        for chunk in self.response.iter_content(READ_SIZE):
            if self.stopping.is_set():
                return
            for data in [chunk] if demux is None else demux.feed(chunk):
                if lines := self.cutter.feed(data):
                    self.queue.put(lines)
        if last := self.cutter.end():
            self.queue.put(last)


def log_streams() -> PerUserSlots:
    return slots("logs", STREAMS_PER_USER)
