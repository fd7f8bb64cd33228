"""A terminal session: a process with a TTY (a `docker exec`, or a root shell over SSH) joined
to a websocket. Backends are in exec.py and machines/hostshell.py; this is what they share.

One thread per session does all of its I/O: it waits on the backend's socket and on a wake-up
socket with select(), writes keystrokes and resizes as the websocket hands them over, and
reads output into a bounded OutputBuffer. One thread rather than a reader and a writer,
because a TLS socket (an engine reached with client certificates) must not be read and
written by two threads at once. When the socket falls behind, the buffer fills and the
thread stops reading: the process in the container then blocks on its terminal, as it
would on a slow ssh connection, and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import select
import shlex
import socket
import threading
from collections.abc import Callable
from typing import Protocol

from django.db import close_old_connections

from machines.engine.streams.base import LoopQueue, PerUserSlots, slots

log = logging.getLogger(__name__)

# Output waiting for the websocket, at most (then the process waits for the reader).
OUTPUT_LIMIT = 256 * 1024
READ_SIZE = 64 * 1024
# Terminals one user may have open in one process.
TERMINALS_PER_USER = 8
TOO_MANY_TERMINALS = (
    f"You have {TERMINALS_PER_USER} terminals open already: close one of them first."
)
COMMAND_LIMIT = 1000


class TerminalError(Exception):
    """The terminal could not start; the message says why, in words."""


class Backend(Protocol):
    """A process with a TTY, as the session thread drives it."""

    def fileno(self) -> int: ...

    def recv(self, size: int) -> bytes: ...  # b"" when the process's output has ended

    def pending(self) -> bool: ...  # bytes already read from the network, not yet taken

    def send(self, data: bytes) -> None: ...

    def resize(self, cols: int, rows: int) -> None: ...

    def close(self) -> None: ...

    def end_reason(self) -> str: ...  # why it ended (after recv gave b"")


def parse_command(text: str) -> list[str]:
    """A command line typed by the user, as the argument list it means (no shell runs it:
    exec gets the words). Empty means the container's shell."""
    text = text.strip()
    if len(text) > COMMAND_LIMIT:
        raise TerminalError(f"The command is longer than {COMMAND_LIMIT} characters.")
    if any(ord(c) < 32 for c in text):
        raise TerminalError("The command may not contain control characters.")
    try:
        return shlex.split(text)
    except ValueError as e:
        raise TerminalError(f"This is not a command line: {e}.") from None


def clamp_size(cols: object, rows: object) -> tuple[int, int]:
    def number(value: object, default: int, top: int) -> int:
        try:
            return min(max(int(value), 1), top)
        except (TypeError, ValueError):
            return default

    return number(cols, 80, 500), number(rows, 24, 200)


class OutputBuffer(LoopQueue):
    """Output bytes from the session thread to the socket's task, at most OUTPUT_LIMIT."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_room: Callable[[], None]) -> None:
        super().__init__(loop)
        self.on_room = on_room
        self.data = bytearray()
        self.reason = ""

    def has_room(self) -> bool:
        with self.lock:
            return len(self.data) < OUTPUT_LIMIT

    def put(self, data: bytes) -> None:
        with self.lock:
            self.data += data
        self._wake()

    def end(self, reason: str) -> None:
        self._end(reason=reason)

    def take(self) -> tuple[bytes, bool]:
        """Everything waiting, and whether the session has ended (and all was taken)."""
        with self.lock:
            data, was_full = bytes(self.data), len(self.data) >= OUTPUT_LIMIT
            self.data.clear()
            ended = self.ended
            self._settle(True)
        if was_full:
            self.on_room()
        return data, ended


class TerminalSession(threading.Thread):
    """Opens a backend and joins it to an OutputBuffer until either side ends."""

    def __init__(self, name: str, opener: Callable[[], Backend], loop) -> None:
        super().__init__(daemon=True, name=f"terminal-{name}")
        self.opener = opener
        self.output = OutputBuffer(loop, self._wake)
        self.inbox: collections.deque[tuple[str, object]] = collections.deque()
        self.waker, self.wakeup = socket.socketpair()
        self.waker.setblocking(False)
        self.stopping = threading.Event()

    def write(self, data: bytes) -> None:
        self.inbox.append(("data", data))
        self._wake()

    def resize(self, cols: int, rows: int) -> None:
        self.inbox.append(("resize", (cols, rows)))
        self._wake()

    def stop(self) -> None:
        self.stopping.set()
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self.waker.send(b"x")

    def run(self) -> None:
        backend = None
        reason = "The terminal was closed."
        try:
            backend = self.opener()
            reason = self._pump(backend)
        except TerminalError as e:
            reason = str(e)
        except Exception as e:
            log.exception("Terminal %s failed", self.name)
            reason = f"The terminal failed: {e.__class__.__name__}: {e}"
        finally:
            if backend is not None:
                with contextlib.suppress(Exception):
                    backend.close()
            self.output.end(reason)
            self.waker.close()
            self.wakeup.close()
            close_old_connections()

    def _pump(self, backend: Backend) -> str:
        while not self.stopping.is_set():
            self._deliver(backend)
            if backend.pending() and self.output.has_room():
                if not self._read(backend):
                    return backend.end_reason()
                continue
            watched = [self.wakeup, backend] if self.output.has_room() else [self.wakeup]
            ready, _, _ = select.select(watched, [], [], 30)
            if self.wakeup in ready:
                with contextlib.suppress(BlockingIOError):
                    self.wakeup.recv(4096)
            if backend in ready and not self._read(backend):
                return backend.end_reason()
        return "The terminal was closed."

    def _read(self, backend: Backend) -> bool:
        data = backend.recv(READ_SIZE)
        if not data:
            return False
        self.output.put(data)
        return True

    def _deliver(self, backend: Backend) -> None:
        while self.inbox:
            kind, value = self.inbox.popleft()
            if kind == "data":
                backend.send(value)
            else:
                backend.resize(*value)


def terminal_slots() -> PerUserSlots:
    return slots("terminals", TERMINALS_PER_USER)
