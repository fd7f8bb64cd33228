"""What every stream from an engine or a host to a browser shares (container logs, stats,
terminal exec, the host's shell):

- `LoopQueue`: a bounded hand-over from a reading thread to one asyncio task; the thread
  never blocks, and at most one wake-up waits on the loop at a time, so a flood cannot pile
  up callbacks there;
- `DockerStream`: a thread that reads one Docker API stream of a machine's engine until it
  ends or `stop()` (which wakes a read blocked on a quiet stream);
- `PerUserSlots`: how many streams of one kind each user holds in this process.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import weakref
from urllib.parse import quote

log = logging.getLogger(__name__)


class LoopQueue:
    """The hand-over's plumbing; subclasses say what is queued (lines, bytes) and its bound."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.ended = False
        self.ready = asyncio.Event()
        self.woken = False

    def _end(self, **why) -> None:
        with self.lock:
            self.ended = True
            for name, value in why.items():
                setattr(self, name, value)
        self._wake()

    def _wake(self) -> None:
        with self.lock:
            if self.woken:
                return
            self.woken = True
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
            self.loop.call_soon_threadsafe(self.ready.set)

    async def wait(self) -> None:
        await self.ready.wait()

    def _settle(self, empty: bool) -> None:
        """After a take, under the lock: with nothing left, the next put wakes the task."""
        if empty and not self.ended:
            self.ready.clear()
            self.woken = False


class DockerStream(threading.Thread):
    """Reads one stream of the Docker API (`follow()`) in a thread until stopped or it ends.

    A quiet stream blocks its read for as long as it likes: `stop()` shuts the response's
    socket down (over ssh:// that is refused, and closing the client ends it instead)."""

    def __init__(self, machine, name: str) -> None:
        super().__init__(daemon=True, name=name)
        self.machine = machine
        self.stopping = threading.Event()
        self.response = None
        self.client = None

    def stop(self) -> None:
        from docker.types import CancellableStream

        self.stopping.set()
        closers = []
        if self.response is not None:
            closers.append(CancellableStream(iter(()), self.response).close)
        if self.client is not None:
            closers.append(self.client.close)
        for close in closers:
            with contextlib.suppress(Exception):
                close()

    def run(self) -> None:
        from django.db import close_old_connections

        from machines.engine.clients import client_for_machine

        try:
            self.client = client_for_machine(self.engine_machine(), timeout=10)
            self.follow()
        except Exception as e:
            if not self.stopping.is_set():
                self.failed(e)
        finally:
            if self.client is not None:
                with contextlib.suppress(Exception):
                    self.client.close()
            close_old_connections()

    def engine_machine(self):
        """The machine whose engine to read (asked in the thread: it may need a query)."""
        return self.machine

    def follow(self) -> None:
        raise NotImplementedError

    def failed(self, error: Exception) -> None:
        log.info("%s stopped: %s", self.name, error)

    def open(self, container_id: str, what: str, params: dict, timeout: tuple, kind="containers"):
        """GET /containers/<id>/<what> (or /services/...) as a stream; None when stopped
        while connecting (stop() may have missed the response)."""
        api = self.client.api
        url = f"{api.base_url}/v{api.api_version}/{kind}/"
        url += f"{quote(container_id, safe='')}/{what}"
        self.response = api.get(url, params=params, stream=True, timeout=timeout)
        return None if self.stopping.is_set() else self.response


class PerUserSlots:
    """How many streams of one kind (logs, terminals) each user holds in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.by_user: dict[int, set[object]] = collections.defaultdict(set)

    def claim(self, user_id: int, owner: object) -> bool:
        held = self.by_user[user_id]
        if owner not in held and len(held) >= self.limit:
            return False
        held.add(owner)
        return True

    def release(self, user_id: int, owner: object) -> None:
        self.by_user[user_id].discard(owner)
        if not self.by_user[user_id]:
            del self.by_user[user_id]


# One set of counters per event loop (tests run several), per kind of stream.
_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def slots(kind: str, limit: int) -> PerUserSlots:
    per_loop = _slots.setdefault(asyncio.get_running_loop(), {})
    if kind not in per_loop:
        per_loop[kind] = PerUserSlots(limit)
    return per_loop[kind]
