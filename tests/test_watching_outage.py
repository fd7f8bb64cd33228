"""A fleet that fails: one engine's dockerd dies while the others keep streaming, and a
hundred engines that keep refusing cost only their state changes in database writes."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections import Counter

import pytest
from django.db.backends.signals import connection_created
from django.utils import timezone

from machines.engine import clients
from machines.lib.hostimage import BARE_HOST_IMAGE
from machines.models import Container, Machine
from machines.operations import runner
from tests.fleet import closed_port, make_machine
from tests.helpers import wait_until
from tests.tinyimage import TINY, tiny_image_tar

pytestmark = pytest.mark.engine


@pytest.fixture
def running_runner():
    """A real Runner on its own loop in a thread, as `worker` runs it; stopped at the end."""
    started: list[tuple[runner.Runner, threading.Thread, asyncio.AbstractEventLoop]] = []

    def start() -> runner.Runner:
        worker = runner.Runner(kind="test")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),))
        thread.start()
        started.append((worker, thread, loop))
        return worker

    yield start
    for worker, thread, loop in started:
        loop.call_soon_threadsafe(worker.stop)
        thread.join(30)
        assert not thread.is_alive()


def _state(machine: Machine, name: str) -> str | None:
    row = Container.objects.filter(machine=machine, name=name).first()
    return row.state if row else None


@pytest.mark.django_db(transaction=True)
def test_a_killed_engine_goes_unreachable_and_resyncs_while_others_stream(
    tmp_path, settings, engine_url, parent, host_images, running_runner
):
    from tests.private_engine import private_dockerd

    settings.HEALTH_CHECK_INTERVAL = 5
    with private_dockerd(tmp_path) as engine:
        own = clients.client(engine.url, timeout=60)
        own.api.import_image_from_data(tiny_image_tar(), repository=TINY.split(":")[0], tag="1")
        sleeper = own.containers.run(
            TINY, ["/bin/sleep", "86400"], detach=True, network_mode="none"
        )
        dying = make_machine("none", name="dying", engine_url=engine.url, state="running")
        steady = make_machine("none", name="steady", engine_url=engine_url, state="running")
        running_runner()
        for machine in (dying, steady):
            wait_until(lambda m=machine: Machine.objects.get(pk=m.pk).engine_reachable is True)
        wait_until(lambda: _state(dying, sleeper.name) == "running")

        engine.stop()  # dockerd ends (its containers with it: no live restore here)
        stopped = time.monotonic()
        wait_until(lambda: Machine.objects.get(pk=dying.pk).engine_reachable is False)
        flipped = time.monotonic() - stopped
        print(f"dockerd stopped -> machine unreachable in {flipped:.2f} s")
        assert flipped <= settings.HEALTH_CHECK_INTERVAL
        assert Machine.objects.get(pk=dying.pk).last_error.startswith("Engine unreachable")

        # The other engine keeps streaming meanwhile.
        name = f"steady-{uuid.uuid4().hex[:6]}"
        other = parent.containers.run(
            BARE_HOST_IMAGE, ["sleep", "300"], name=name, detach=True, network_mode="none"
        )
        try:
            wait_until(lambda: _state(steady, name) == "running")
            assert Machine.objects.get(pk=steady.pk).engine_reachable is True
        finally:
            other.remove(force=True)

        engine.start()
        restarted = time.monotonic()
        wait_until(lambda: Machine.objects.get(pk=dying.pk).engine_reachable is True, 60)
        print(f"dockerd back -> machine reachable in {time.monotonic() - restarted:.2f} s")
        # Resynced: the container dockerd stopped on its way down shows as it is now ...
        wait_until(lambda: _state(dying, sleeper.name) == "exited")
        # ... and the stream is live again.
        fresh = own.containers.run(TINY, ["/bin/sleep", "86400"], detach=True, network_mode="none")
        wait_until(lambda: _state(dying, fresh.name) == "running")
        assert Machine.objects.get(pk=dying.pk).last_error == ""
        own.close()


OBSERVED = re.compile(
    r'SET .*"(state|engine_reachable|last_error|last_checked|last_seen|docker_version)"'
)


class WriteCounter:
    """Every statement that stores an observation on a machine's row (not its lease), from
    every thread's connection: per machine when it names one, else as a batch."""

    def __init__(self) -> None:
        self.per_machine: Counter = Counter()
        self.batched = 0
        self.leases = 0
        self.lock = threading.Lock()

    def __call__(self, execute, sql, params, many, context):
        if re.match(r'\s*UPDATE "machines_machine"', sql):
            with self.lock:
                if not OBSERVED.search(sql.split(" WHERE ")[0]):
                    self.leases += 1
                elif re.search(r'WHERE "machines_machine"\."id" = %s$', sql.strip()):
                    self.per_machine[params[-1]] += 1
                else:
                    self.batched += 1
        return execute(sql, params, many, context)

    def install(self, sender, connection, **kwargs) -> None:
        # A thread's connection reconnects (close_old_connections): count it once.
        if self not in connection.execute_wrappers:
            connection.execute_wrappers.append(self)


@pytest.mark.django_db(transaction=True)
def test_engines_that_keep_refusing_cost_only_their_state_changes(settings, running_runner):
    settings.HEALTH_CHECK_INTERVAL = 2
    settings.WATCH_BACKOFF_MAX = 4
    machines = [
        make_machine(
            "none",
            name=f"refusing-{n:03}",
            engine_url=f"tcp://127.0.0.1:{closed_port()}",
            state="running",
        )
        for n in range(100)
    ]
    counter = WriteCounter()
    connection_created.connect(counter.install)
    try:
        from django.db import connections

        for conn in connections.all():
            if conn.connection is not None:
                counter.install(None, conn)
        running_runner()
        wait_until(lambda: Machine.objects.filter(engine_reachable=False).count() == 100, 60)
        started = time.monotonic()
        time.sleep(60)
        duration = time.monotonic() - started
    finally:
        connection_created.disconnect(counter.install)
    ids = {m.pk for m in machines}
    written = {pk: n for pk, n in counter.per_machine.items() if pk in ids}
    print(
        f"{duration:.0f} s of 100 refusing engines (health interval 2 s, backoff up to 4 s): "
        f"{sum(written.values())} single-machine writes, {counter.batched} batched statements "
        f"(and {counter.leases} about leases)"
    )
    # Each machine written once: when it turned unreachable. Retries and checks that saw
    # the same cost nothing; freshness ("checked at") is one statement for all machines, at
    # most once an interval.
    assert sorted(written.values()) == [1] * 100
    assert counter.batched <= duration / settings.HEALTH_CHECK_INTERVAL + 2
    for machine in Machine.objects.filter(pk__in=ids):
        assert "refused" in machine.last_error
        # ... and the pages still call it a fresh observation, not "as of" some time ago.
        assert not machine.stale, (machine.last_checked, timezone.now())


@pytest.mark.django_db
def test_a_probe_in_flight_when_watching_stops_is_cancelled_and_hangs_up(tmp_path):
    """A health probe waiting on an engine that never answers when the runner stops: the
    probe is cancelled and closes its connection (it was left pending with the loop, its
    socket open: "Task was destroyed but it is pending" at exit)."""
    from machines.engine.http import Endpoint, get_json
    from machines.engine.watching import Watching
    from tests.helpers import BlackHole

    hole = BlackHole(str(tmp_path / "engine.sock"))
    watching = Watching()
    future = watching.submit(get_json(Endpoint(hole.address), "/version", timeout=60))
    wait_until(lambda: hole.held, timeout=10)
    watching.stop()
    assert future.cancelled()
    conn = hole.held[0]
    conn.settimeout(5)
    received = b""
    while chunk := conn.recv(4096):  # the request, then the end of the connection
        received += chunk
    assert received.startswith(b"GET /v1.") and b"/version HTTP/1.1" in received
    hole.close()
