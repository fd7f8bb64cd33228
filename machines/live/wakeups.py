"""Wake-ups (machines.lib.wake) for operations: a runner waiting for work is woken when one
is requested, and `machine create` following an operation when its log or status changes,
instead of each waiting out its poll. Sent from publish.py, with the live pushes."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from django.conf import settings

from machines.lib.wake import Listener, notify

RUNNERS = "runners"


def _folder() -> Path:
    return Path(settings.DATA_DIR) / "wake"


def _operation(operation_id: int) -> str:
    return f"op-{operation_id}"


def operation_requested() -> None:
    notify(_folder(), RUNNERS)


def operation_progressed(operation_id: int) -> None:
    notify(_folder(), _operation(operation_id))


def listen_for_operations() -> Listener:
    return Listener(_folder(), RUNNERS)


def listen_to_operation(operation_id: int) -> Listener:
    return Listener(_folder(), _operation(operation_id))


class OperationsBell:
    """A runner's loop waits on this: rung when an operation is requested on this host."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()
        self.listener = listen_for_operations()
        if self.listener.sock is not None:
            loop.add_reader(self.listener.fileno(), self._rung)

    def _rung(self) -> None:
        self.listener.drain()  # the reader fires again while a datagram is unread
        self.event.set()

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), seconds)
        self.event.clear()

    def close(self) -> None:
        if self.listener.sock is not None:
            self.loop.remove_reader(self.listener.fileno())
        self.listener.close()
