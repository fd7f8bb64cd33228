"""Watching many engines with a bounded number of threads: every engine's `docker events`
stream is a task on one asyncio loop, in one thread of its own (so a failing fleet never
holds up the web server's loop), speaking the Engine API over asyncio streams (http.py).

Threads, whatever the number of engines: the loop's; `DB_THREADS` that store snapshots and
publish (an engine's events are handled in order, several engines at once); the observation
writer; and at most WATCH_SSH_THREADS for ssh:// engines, whose SDK transport blocks.
Connection attempts are paced: per engine, a jittered exponential backoff up to
WATCH_BACKOFF_MAX seconds (reset once a stream held for a while, or by `wake` when a health
check finds the engine back); at most WATCH_CONNECT_CONCURRENCY attempts in flight; each
bounded by HEALTH_CHECK_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
import weakref
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from machines.engine import objects as engine_objects
from machines.engine import watch
from machines.engine.health import engine_access, unreachable_words
from machines.engine.http import Endpoint, EventStream, get_json
from machines.engine.observations import ObservationWriter
from machines.engine.syncapi import SyncApi
from machines.lib.errorwords import describe, detail, target_of
from machines.models import Machine

log = logging.getLogger(__name__)

DB_THREADS = 4
# A stream that held this long was healthy: its next failure starts the backoff again.
HELD_FOR = 30.0
# How often a failing engine's machine is read again between attempts.
RELOAD_EVERY = 60.0


class Watching:
    """The engines this process watches (`sync`), their streams and their observations."""

    def __init__(self, writer: ObservationWriter | None = None) -> None:
        self.writer = writer or ObservationWriter()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="engine-watch", daemon=True)
        self.db = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="watch-db")
        self.tasks: dict[int, asyncio.Task] = {}
        self.wakers: dict[int, asyncio.Event] = {}
        self.connected: set[int] = set()
        self.started = False
        self.stopped = False
        # What other threads wait on: cancelled at stop, so that none waits on a loop that
        # no longer runs (a health cycle in flight when the runner stopped hung its thread).
        self._waited: weakref.WeakSet[Future] = weakref.WeakSet()
        self._lock = threading.Lock()

    # -- from any thread -----------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if not self.started:
                self.started = True
                self.writer.start()
                self.thread.start()

    def submit(self, coro) -> Future:
        """Run a coroutine on the watching loop (health checks' pings use it too); once
        stopped, the future is cancelled (its waiter gets CancelledError, never a hang)."""
        self.start()
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        self._waited.add(future)
        if self.stopped:
            future.cancel()
        return future

    def sync(self, machine_ids: set[int]) -> None:
        """Watch exactly these machines' engines."""
        self.submit(self._sync(set(machine_ids))).result(30)

    def wake(self, machine_id: int) -> None:
        """Try this engine now (a health check saw it answer): skip the rest of its backoff."""
        if waker := self.wakers.get(machine_id):
            self.loop.call_soon_threadsafe(waker.set)

    def disconnect(self, machine_id: int) -> None:
        """Drop this engine's stream and connect again (a health check saw it not answer: a
        host gone without a word leaves a stream that would wait forever)."""
        if machine_id in self.tasks:
            self.submit(self._restart(machine_id))

    def stop(self, timeout: float = 3) -> None:
        """Close every stream, stop the loop and the threads (within `timeout`)."""
        if not self.started:
            return
        deadline = time.monotonic() + timeout
        with contextlib.suppress(Exception):
            self.submit(self._sync(set())).result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(max(0.1, deadline - time.monotonic()))
        self.stopped = True
        for future in list(self._waited):
            future.cancel()
        self.db.shutdown(wait=False, cancel_futures=True)
        self.writer.stop(max(0.1, deadline - time.monotonic()))

    # -- on the loop ---------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        # Stopped: what still ran here (a health cycle's probe of an engine that does not
        # answer) is cancelled and unwinds, closing its connection, instead of being
        # destroyed pending with the loop.
        pending = [task for task in asyncio.all_tasks(self.loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.wait(pending, timeout=1))

    async def _sync(self, wanted: set[int]) -> None:
        gone = [pk for pk in self.tasks if pk not in wanted or self.tasks[pk].done()]
        for pk in gone:
            self.wakers.pop(pk, None)
        await _cancel([self.tasks.pop(pk) for pk in gone])
        for pk in wanted - set(self.tasks):
            self._start_one(pk)

    async def _restart(self, pk: int) -> None:
        if (task := self.tasks.pop(pk, None)) is not None:
            await _cancel([task])
            self._start_one(pk)

    def _start_one(self, pk: int) -> None:
        self.wakers[pk] = asyncio.Event()
        self.tasks[pk] = asyncio.create_task(self._watch(pk), name=f"watch-{pk}")

    async def in_db(self, fn, *args):
        def call():
            try:
                return fn(*args)
            finally:
                close_old_connections()

        return await self.loop.run_in_executor(self.db, call)

    async def _watch(self, pk: int) -> None:
        backoff, loaded = 1.0, -RELOAD_EVERY
        while True:
            # Read again now and then (a new address, new certificates), not at every retry.
            if time.monotonic() - loaded >= RELOAD_EVERY:
                machine, access = await self.in_db(_load, pk)
                loaded = time.monotonic()
            if machine is None:
                return
            endpoint = Endpoint(access.url, access.ca, access.cert, access.key)
            if not endpoint.is_async:
                await self._watch_ssh(pk)
                return
            started = time.monotonic()
            why, details = await self._stream(machine, endpoint, access.ca_name)
            if time.monotonic() - started > HELD_FOR:
                backoff = 1.0
            self.writer.submit(
                pk, {"engine_reachable": False, "last_error": why, "last_error_detail": details}
            )
            waker = self.wakers[pk]
            waker.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waker.wait(), backoff * random.uniform(0.5, 1))  # noqa: S311 (jitter)
            backoff = min(backoff * 2, settings.WATCH_BACKOFF_MAX)

    async def _stream(self, machine: Machine, endpoint: Endpoint, ca_name: str) -> tuple[str, str]:
        """Hold the engine's stream until it breaks; why it did (a sentence, the details)."""
        timeout = settings.HEALTH_CHECK_TIMEOUT
        stream = EventStream(endpoint, {"type": watch.EVENT_TYPES}, timeout)
        try:
            async with _connecting():
                await stream.open()
            self.connected.add(machine.pk)
            rows = await get_json(endpoint, "/containers/json", {"all": True}, timeout=timeout * 4)
            version = await get_json(endpoint, "/version", timeout=timeout)
            api = SyncApi(endpoint, self.loop)
            await self.in_db(_resync, machine, api, rows)
            self.writer.submit(machine.pk, _reachable(version))
            async for event in stream:
                await self.in_db(watch.on_event, machine, api, event)
            return "Engine unreachable: its event stream ended.", ""
        except asyncio.CancelledError:
            raise
        except Exception as e:
            target = target_of(endpoint.url, ca=ca_name, timeout=timeout)
            return unreachable_words(describe(e, target))[:1000], detail(e)
        finally:
            self.connected.discard(machine.pk)
            stream.close()

    async def _watch_ssh(self, pk: int) -> None:
        """An ssh:// engine: the SDK's watcher in a thread, at most WATCH_SSH_THREADS at once
        (the others wait for a slot; their health checks go on meanwhile)."""
        async with _ssh_slots():
            watcher = watch.SdkWatcher(pk)
            watcher.start()
            try:
                while watcher.is_alive():
                    if watcher.connected:
                        self.connected.add(pk)
                    await asyncio.sleep(0.5)
            finally:
                self.connected.discard(pk)
                watcher.stop()


async def _cancel(tasks: list[asyncio.Task]) -> None:
    """Cancel these streams and wait (briefly) until their sockets are closed."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=2)


_semaphores: dict[tuple[int, str], asyncio.Semaphore] = {}


def _semaphore(name: str, size: int) -> asyncio.Semaphore:
    key = (id(asyncio.get_running_loop()), name)
    if key not in _semaphores:
        _semaphores[key] = asyncio.Semaphore(size)
    return _semaphores[key]


def _connecting() -> asyncio.Semaphore:
    return _semaphore("connect", settings.WATCH_CONNECT_CONCURRENCY)


def _ssh_slots() -> asyncio.Semaphore:
    return _semaphore("ssh", settings.WATCH_SSH_THREADS)


def _load(pk: int):
    machine = Machine.objects.select_related("driver").filter(pk=pk).first()
    if machine is None or not machine.engine_url:
        return None, None
    return machine, engine_access(machine)


def _resync(machine: Machine, api: SyncApi, rows: list[dict]) -> None:
    watch.resync(machine, api, rows)
    engine_objects.resync_all(machine, api)


def _reachable(version: dict) -> dict:
    return {
        "engine_reachable": True,
        "docker_version": version.get("Version", ""),
        "last_seen": timezone.now(),
        "last_error": "",
        "last_error_detail": "",
    }


class EngineWatcher:
    """One engine on a Watching of its own, with a thread's start/stop/join (for a single
    engine outside the runner: tests, tools)."""

    def __init__(self, machine_id: int) -> None:
        self.machine_id = machine_id
        self.watching = Watching()

    def start(self) -> None:
        self.watching.sync({self.machine_id})

    def stop(self) -> None:
        self.watching.stop()

    def join(self, timeout: float | None = None) -> None:
        self.watching.thread.join(timeout)

    def is_alive(self) -> bool:
        return self.watching.thread.is_alive()

    @property
    def connected(self) -> bool:
        return self.machine_id in self.watching.connected
