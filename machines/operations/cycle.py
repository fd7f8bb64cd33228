"""The health cycle over many machines: drivers asked in a few threads, engines pinged on the
watching loop (HEALTH_CHECK_CONCURRENCY at a time, each within HEALTH_CHECK_TIMEOUT), and what
was seen handed to the observation writer, which stores only what changed.

With a thousand engines of which most refuse or never answer, a cycle costs a few seconds of
one loop and a handful of writes (the machines whose state changed), not a thread each."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from django.conf import settings
from django.db import close_old_connections

from machines import live
from machines.engine import clients
from machines.engine.health import (
    EngineAccess,
    engine_access,
    engine_answered,
    engine_failed,
    observe_host,
)
from machines.engine.http import Endpoint, get_json
from machines.engine.observations import KNOWN
from machines.engine.watching import Watching
from machines.models import Machine
from machines.operations.checks import heal, sample_host

log = logging.getLogger(__name__)

# With TLS 1.3 an engine refusing our client certificate says so after the handshake, often
# as a bare reset: clients.ping asks again over TLS 1.2 to know why.
ASK_AGAIN = (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, EOFError)


def run_cycle(
    watching: Watching, machines: list[Machine], pool: ThreadPoolExecutor, read_at: float
) -> None:
    """Check these machines (as read from the database at `read_at`, time.monotonic())
    once; store what changed; nudge their watchers."""
    accesses = {m.pk: engine_access(m) for m in machines}
    results = watching.submit(_check_all(machines, accesses, pool)).result()
    reachable = []
    for machine in machines:
        changes = results.get(machine.pk)
        if changes is None:
            continue
        stored = {k: getattr(machine, k) for k in KNOWN}
        watching.writer.submit(machine.pk, changes, stored, read_at)
        for key, value in changes.items():
            setattr(machine, key, value)
        if changes.get("engine_reachable") is True:
            reachable.append(machine)
            if machine.pk not in watching.connected:
                watching.wake(machine.pk)
        elif changes.get("engine_reachable") is False and machine.pk in watching.connected:
            # A stream to a host that vanished without a word (no FIN) can block forever.
            watching.disconnect(machine.pk)
    # The hosts' own use (over SSH, only when due), after the probes.
    sampled = [pool.submit(_sampled, m) for m in reachable]
    for future in as_completed(sampled):
        if (changed := future.result()) is not None:
            live.machine_changed(changed)


async def _check_all(machines: list[Machine], accesses: dict, pool) -> dict[int, dict]:
    slots = asyncio.Semaphore(settings.HEALTH_CHECK_CONCURRENCY)

    async def one(machine: Machine) -> tuple[int, dict | None]:
        async with slots:
            try:
                return machine.pk, await _check(machine, accesses[machine.pk], pool)
            except Exception:
                log.exception("Health check of %s failed", machine.name)
                return machine.pk, None

    return dict(await asyncio.gather(*(one(m) for m in machines)))


async def _check(machine: Machine, access: EngineAccess | None, pool) -> dict:
    loop = asyncio.get_running_loop()
    timeout = settings.HEALTH_CHECK_TIMEOUT
    started = time.monotonic()
    changes, ask_engine = await loop.run_in_executor(pool, _observe_host, machine, access)
    if not ask_engine:
        return changes
    endpoint = Endpoint(access.url, access.ca, access.cert, access.key)
    try:
        if endpoint.is_async:
            try:
                version = await get_json(endpoint, "/version", timeout=timeout)
            except ASK_AGAIN:
                version = await loop.run_in_executor(pool, _ping, access)
        else:
            version = await loop.run_in_executor(pool, _ping, access)
    except Exception as e:
        return changes | engine_failed(access, e, timeout)
    return changes | engine_answered(version, started)


def _observe_host(machine: Machine, access: EngineAccess | None) -> tuple[dict, bool]:
    try:
        return observe_host(machine, access, heal)
    finally:
        close_old_connections()


def _ping(access: EngineAccess) -> dict:
    return clients.ping(
        access.url,
        ca=access.ca,
        cert=access.cert,
        key=access.key,
        timeout=settings.HEALTH_CHECK_TIMEOUT,
    )


def _sampled(machine: Machine) -> Machine | None:
    try:
        return machine if sample_host(machine, {"engine_reachable": True}) else None
    except Exception:
        log.exception("Reading the host use of %s failed", machine.name)
        return None
    finally:
        close_old_connections()
