"""Claims pending Operations and runs them; safe with several runners on one database.

A claim is one conditional UPDATE (pending -> running), so exactly one runner wins an
operation. Running operations heartbeat; one whose heartbeat is older than STALE_AFTER
belonged to a runner that died and is marked interrupted, with its log kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.utils import timezone

from . import live, operations
from .models import Operation

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(seconds=30)
HEARTBEAT_EVERY = 5
POLL_EVERY = 0.5


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def interrupt_stale() -> int:
    """Mark operations whose runner stopped heartbeating as interrupted."""
    cutoff = timezone.now() - STALE_AFTER
    stale = list(Operation.objects.filter(status=Operation.Status.RUNNING, heartbeat_at__lt=cutoff))
    count = 0
    for op in stale:
        count += Operation.objects.filter(pk=op.pk, status=Operation.Status.RUNNING).update(
            status=Operation.Status.INTERRUPTED,
            finished_at=timezone.now(),
            error="Interrupted: the process running it stopped. Retry the action.",
        )
        op.refresh_from_db()
        live.operation_changed(op)
    return count


def claim(op_id: int | None = None, worker: str | None = None) -> Operation | None:
    pending = Operation.objects.filter(status=Operation.Status.PENDING)
    if op_id is not None:
        candidates = [op_id]
    else:
        candidates = list(pending.order_by("created_at", "id").values_list("pk", flat=True)[:20])
    now = timezone.now()
    for pk in candidates:
        won = pending.filter(pk=pk).update(
            status=Operation.Status.RUNNING,
            started_at=now,
            heartbeat_at=now,
            claimed_by=worker or runner_id(),
        )
        if won:
            return Operation.objects.select_related("machine__driver").get(pk=pk)
    return None


class _Heartbeat(threading.Thread):
    def __init__(self, op_id: int) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{op_id}")
        self.op_id = op_id
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(HEARTBEAT_EVERY):
            Operation.objects.filter(pk=self.op_id, status=Operation.Status.RUNNING).update(
                heartbeat_at=timezone.now()
            )
        close_old_connections()


def run_claimed(op: Operation) -> Operation:
    heartbeat = _Heartbeat(op.pk)
    heartbeat.start()
    try:
        live.operation_changed(op)
        return operations.execute(op)
    finally:
        heartbeat.done.set()


def run_once(worker: str | None = None) -> Operation | None:
    """One cycle: claim the oldest pending operation and run it (tests drive this)."""
    op = claim(worker=worker)
    return run_claimed(op) if op else None


class Runner:
    """Claims and runs operations until stopped; one per serve or worker process.

    It lives on the process's event loop and runs blocking work in threads started with
    sync_to_async(thread_sensitive=False): from such threads async_to_sync(group_send)
    reaches the in-memory channel layer on this same loop, which plain threads cannot.
    """

    def __init__(self, max_parallel: int = 16) -> None:
        self.max_parallel = max_parallel
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        # Operations are long and blocking (SSH, Docker): give them threads of their own
        # rather than the small default pool.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=self.max_parallel + 16))
        slots = asyncio.Semaphore(self.max_parallel)
        await _in_thread(interrupt_stale)
        while not self.stopping.is_set():
            await slots.acquire()
            try:
                op = await _in_thread(claim, worker=self.worker)
            except Exception:
                log.exception("Claiming an operation failed")
                op = None
            if op is None:
                slots.release()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), POLL_EVERY)
                continue
            task = asyncio.create_task(self._run(op, slots))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _run(self, op: Operation, slots: asyncio.Semaphore) -> None:
        try:
            await _in_thread(run_claimed, op)
        except Exception:
            log.exception("Operation %s crashed", op.pk)
        finally:
            slots.release()

    def stop(self) -> None:
        self.stopping.set()


async def _in_thread(fn, *args, **kwargs):
    def call():
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return await sync_to_async(call, thread_sensitive=False)()
