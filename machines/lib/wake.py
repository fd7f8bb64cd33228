"""Wake-ups between dockerdash processes on one host, so that nobody waits out a poll.

A process waiting for something (a runner for new operations, `machine create` for its
operation's log) binds a unix datagram socket named after it in a folder of the data dir;
whoever changes that thing sends one byte to every socket of that name. A wake-up carries
nothing: the woken process reads the database as it would have after its poll, which stays
as the fallback (runners on other hosts, a full socket buffer, a folder it cannot use).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
from pathlib import Path

# sun_path holds 108 bytes; a longer folder gets no wake-ups (the poll still works).
MAX_PATH = 100


class Listener:
    def __init__(self, folder: Path, topic: str) -> None:
        self.sock: socket.socket | None = None
        path = folder / f"{topic}.{os.getpid()}.sock"
        if len(str(path)) > MAX_PATH:
            return
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # a process of our pid that died before removing it
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(str(path))
            sock.setblocking(False)
        except OSError:
            return
        self.sock, self.path = sock, path

    def fileno(self) -> int:
        return self.sock.fileno() if self.sock else -1

    def wait(self, timeout: float) -> bool:
        """Until woken (True) or `timeout` seconds passed (False)."""
        if self.sock is None:
            select.select([], [], [], timeout)
            return False
        ready, _, _ = select.select([self.sock], [], [], timeout)
        self.drain()
        return bool(ready)

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while self.sock and self.sock.recv(16):
                pass

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.sock = None

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def notify(folder: Path, topic: str) -> None:
    """Wake every process listening on `topic` (best effort, never blocks or raises)."""
    try:
        paths = list(folder.glob(f"{topic}.*.sock"))
    except OSError:
        return
    if not paths:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for path in paths:
            try:
                sock.sendto(b"!", str(path))
            except ConnectionRefusedError:
                # Its process died without removing it.
                with contextlib.suppress(OSError):
                    path.unlink()
            except OSError:
                pass  # a full buffer already holds a wake-up
