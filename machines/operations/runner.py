"""The runner: claims and runs Operations, checks machines' health, watches their engines.

It runs inside `serve` (the embedded default) or as `worker` processes (scale-out), with
the same code. Everything here is safe with several runners on one database:
- an operation is claimed with one conditional UPDATE (pending -> running), so exactly one
  runner runs it; running operations heartbeat, and those of a runner that died are marked
  interrupted (their log kept) by the next runner or CLI to start;
- machines are leased: a runner health-checks and watches the engines of the machines it
  holds a lease on, renews the leases while alive, and takes over expired ones, so each
  engine has exactly one event stream open however many runners (or viewers) there are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from machines import alerts, live
from machines.audit import log as audit
from machines.engine.watching import EngineWatcher, Watching
from machines.live import wakeups
from machines.models import Machine, Operation, RunnerProcess
from machines.operations import actions as operations
from machines.operations import cycle
from machines.operations.checks import check_machine
from machines.operations.stale import (
    STALE_AFTER,
    interrupt,
    interrupt_stale,
    retry_hint,
    runner_alive,
)

log = logging.getLogger(__name__)

__all__ = [
    "EngineWatcher",
    "Runner",
    "check_machine",
    "claim",
    "interrupt_stale",
    "run_claimed",
    "runner_alive",
]

HEARTBEAT_EVERY = 5
POLL_EVERY = 0.5
LEASE_FOR = timedelta(seconds=20)
LEASE_EVERY = 5
# The audit log's retention (DOCKERDASH_AUDIT_RETENTION_DAYS) is applied this often.
AUDIT_PRUNE_EVERY = 3600


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# -- operations ------------------------------------------------------------------------


def claim(op_id: int | None = None, worker: str | None = None) -> Operation | None:
    """Take one pending operation (the oldest, or op_id); None if another runner won it.

    An operation of a bulk action waits while BULK_CONCURRENCY of its siblings run.
    """
    worker = worker or worker_name()
    pending = Operation.objects.filter(status=Operation.Status.PENDING)
    if op_id is None:
        pending = pending.exclude(bulk__in=_saturated_bulks())
    if op_id is not None:
        candidates = [op_id]
    elif connection.vendor == "postgresql":
        # Several workers polling at once skip each other's rows instead of queueing.
        with transaction.atomic():
            candidates = list(
                pending.order_by("created_at", "id")
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[:1]
            )
            return _claim_rows(pending, candidates, worker)
    else:
        candidates = list(pending.order_by("created_at", "id").values_list("pk", flat=True)[:20])
    return _claim_rows(pending, candidates, worker)


def _saturated_bulks():
    """The bulk actions that run as many operations as they may (a subquery)."""
    return (
        Operation.objects.filter(status=Operation.Status.RUNNING, bulk__isnull=False)
        .values("bulk")
        .annotate(running=Count("id"))
        .filter(running__gte=settings.BULK_CONCURRENCY)
        .values("bulk")
    )


def _claim_rows(pending, candidates: list[int], worker: str) -> Operation | None:
    now = timezone.now()
    for pk in candidates:
        won = pending.filter(pk=pk).update(
            status=Operation.Status.RUNNING, started_at=now, heartbeat_at=now, claimed_by=worker
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
        try:
            while not self.done.wait(HEARTBEAT_EVERY):
                Operation.objects.filter(pk=self.op_id, status=Operation.Status.RUNNING).update(
                    heartbeat_at=timezone.now()
                )
        finally:
            close_old_connections()


def run_claimed(op: Operation) -> Operation:
    heartbeat = _Heartbeat(op.pk)
    heartbeat.start()
    try:
        live.operation_changed(op)
        return operations.execute(op)
    finally:
        heartbeat.done.set()


# -- the process -------------------------------------------------------------------------


class Runner:
    """Runs operations, health checks and engine watchers until stopped.

    It lives on the process's event loop and runs blocking work in threads started with
    sync_to_async(thread_sensitive=False): from such threads async_to_sync(group_send)
    reaches the in-memory channel layer on this same loop, which plain threads cannot.
    """

    def __init__(self, kind: str = "serve", max_parallel: int = 16) -> None:
        self.kind = kind
        self.max_parallel = max_parallel
        self.name = worker_name()
        self.stopping = asyncio.Event()
        self.running_ops: dict[int, asyncio.Task] = {}
        # Every engine's stream and ping on one loop in one thread (engine/watching.py);
        # drivers' state asked in a few threads.
        self.watching = Watching()
        self.health_pool = ThreadPoolExecutor(
            max_workers=settings.HEALTH_CHECK_THREADS, thread_name_prefix="health"
        )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        live.bind_loop(loop)
        # Operations are long and blocking (SSH, Docker): give them threads of their own
        # rather than the small default pool.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=self.max_parallel + 16))
        await _in_thread(self._register)
        await _in_thread(interrupt_stale)
        await _in_thread(_prune_tls_cache)
        self.bell = wakeups.OperationsBell(loop)
        loops = [
            self._operations_loop(),
            self._every(LEASE_EVERY, self._lease_cycle),
            self._every(settings.HEALTH_CHECK_INTERVAL, self._health_cycle),
            self._every(AUDIT_PRUNE_EVERY, _prune_audit),
            self._every(settings.ALERT_CHECK_INTERVAL, lambda: alerts.check(self.name)),
        ]
        tasks = [asyncio.create_task(c) for c in loops]
        await self.stopping.wait()
        self.bell.close()
        for task in tasks:
            task.cancel()
        await self._drain()

    def _register(self) -> None:
        RunnerProcess.objects.update_or_create(
            name=self.name, defaults={"kind": self.kind, "heartbeat_at": timezone.now()}
        )

    async def _operations_loop(self) -> None:
        slots = asyncio.Semaphore(self.max_parallel)
        while not self.stopping.is_set():
            await slots.acquire()
            try:
                op = await _in_thread(claim, worker=self.name)
            except Exception:
                log.exception("Claiming an operation failed")
                op = None
            if op is None:
                slots.release()
                await self.bell.wait(POLL_EVERY)  # or until an operation is requested here
                continue
            task = asyncio.create_task(self._run(op, slots))
            self.running_ops[op.pk] = task

    async def _run(self, op: Operation, slots: asyncio.Semaphore) -> None:
        try:
            await _in_thread(run_claimed, op)
        except Exception:
            log.exception("Operation %s crashed", op.pk)
        finally:
            self.running_ops.pop(op.pk, None)
            slots.release()

    async def _every(self, seconds: float, cycle) -> None:
        """Run a blocking cycle in a thread every `seconds` until stopped; a failed cycle is
        logged and the next one runs as planned."""
        while not self.stopping.is_set():
            try:
                await _in_thread(cycle)
            except Exception:
                log.exception("%s failed", cycle.__name__)
            await self._sleep(seconds)

    def _lease_cycle(self) -> None:
        """Heartbeat, renew our leases, take a fair share of free ones, sync watchers."""
        now = timezone.now()
        RunnerProcess.objects.filter(name=self.name).update(heartbeat_at=now)
        if not RunnerProcess.objects.filter(name=self.name).exists():
            self._register()
        interrupt_stale()
        mine = Machine.objects.filter(lease_owner=self.name)
        mine.update(lease_expires_at=now + LEASE_FOR)
        alive = RunnerProcess.objects.filter(heartbeat_at__gte=now - STALE_AFTER).exclude(
            kind="cli"
        )
        share = math.ceil(Machine.objects.count() / max(alive.count(), 1))
        share = min(share, settings.WORKER_MAX_ENGINES)
        wanted = share - mine.count()
        if wanted > 0:
            free = Machine.objects.filter(
                Q(lease_owner="") | Q(lease_expires_at__lt=now) | Q(lease_expires_at=None)
            ).values_list("pk", flat=True)[: wanted * 2]
            for pk in free:
                if wanted <= 0:
                    break
                # Conditional: two runners reaching for one machine, one wins.
                wanted -= (
                    Machine.objects.filter(pk=pk)
                    .filter(
                        Q(lease_owner="") | Q(lease_expires_at__lt=now) | Q(lease_expires_at=None)
                    )
                    .update(lease_owner=self.name, lease_expires_at=now + LEASE_FOR)
                )
        self._sync_watchers()

    def _sync_watchers(self) -> None:
        self.watching.sync(
            set(
                Machine.objects.filter(lease_owner=self.name)
                .exclude(engine_url="")
                .exclude(state__in=[Machine.State.STOPPED, Machine.State.NONE])
                .values_list("pk", flat=True)
            )
        )

    def _health_cycle(self) -> None:
        read_at = time.monotonic()
        busy = Operation.objects.filter(status__in=Operation.ACTIVE).values_list(
            "machine_id", flat=True
        )
        machines = list(
            Machine.objects.select_related("driver")
            .filter(lease_owner=self.name)
            .exclude(pk__in=busy)
        )
        cycle.run_cycle(self.watching, machines, self.health_pool, read_at)
        alerts.after_health_cycle(machines)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    def stop(self) -> None:
        self.stopping.set()

    async def _drain(self) -> None:
        """SIGTERM: let running operations finish their step, then mark the rest interrupted."""
        if self.running_ops:
            log.info(
                "Waiting up to %s s for %d operations",
                settings.SHUTDOWN_GRACE,
                len(self.running_ops),
            )
            await asyncio.wait(list(self.running_ops.values()), timeout=settings.SHUTDOWN_GRACE)
        await _in_thread(self._release)

    def _release(self) -> None:
        # Streams closed and their threads ended before anything else (SIGTERM: 5 s in all).
        self.watching.stop()
        self.health_pool.shutdown(wait=False, cancel_futures=True)
        for op in Operation.objects.filter(claimed_by=self.name, status=Operation.Status.RUNNING):
            interrupt(
                op,
                f"Interrupted: dockerdash was shut down while this ran. {retry_hint(op)}",
                "Interrupted by shutdown",
            )
        # Hand our machines to the other runners now rather than when the leases expire.
        Machine.objects.filter(lease_owner=self.name).update(lease_owner="", lease_expires_at=None)
        RunnerProcess.objects.filter(name=self.name).delete()


def _prune_audit() -> None:
    if deleted := audit.prune():
        log.info(
            "Deleted %s audit entries older than %s days", deleted, settings.AUDIT_RETENTION_DAYS
        )


def _prune_tls_cache() -> None:
    """Keys of CAs rotated while no runner ran stay on disk otherwise."""
    from machines.pki.certs import prune_tls_cache

    if deleted := prune_tls_cache():
        log.info("Deleted %s cached TLS credential(s) of rotated CAs", deleted)


async def mark_interrupted(every: float = LEASE_EVERY) -> None:
    """For a web process without a runner: mark the operations of dead runners interrupted
    (within STALE_AFTER + `every`), without checking hosts from the web process."""
    while True:
        try:
            await _in_thread(interrupt_stale, refresh=False)
        except Exception:
            log.exception("Marking interrupted operations failed")
        await asyncio.sleep(every)


async def _in_thread(fn, *args, **kwargs):
    def call():
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return await sync_to_async(call, thread_sensitive=False)()
