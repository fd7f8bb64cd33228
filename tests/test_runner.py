"""The runner: durable operations, honest reachability, one event stream per engine."""

from __future__ import annotations

import signal
import threading
import time
import uuid

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from machines.lib.hostimage import BARE_HOST_IMAGE
from machines.models import Container, Machine, Operation
from machines.operations import actions as operations
from machines.operations import runner

from .fleet import make_machine
from .helpers import BlackHole, Process, process_env, wait_until


@pytest.fixture
def black_hole():
    hole = BlackHole()
    yield hole
    hole.close()


@pytest.fixture
def processes():
    started: list[Process] = []

    def start(*args: str, ready: str | None = None, **env: str) -> Process:
        process = Process(list(args), process_env(**env), ready=ready)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


@pytest.mark.django_db(transaction=True)
def test_an_operation_survives_a_kill_9_of_its_runner(black_hole, processes):
    # Creating a generic machine whose SSH never answers keeps the operation running.
    machine = make_machine(name="stuck-1", ip="127.0.0.1", ssh_port=black_hole.port)
    op = operations.request(machine, Operation.Kind.CREATE, via="cli")
    first = processes("worker", ready="started")

    def waiting_for_ssh():
        op.refresh_from_db()
        return op.status == "running" and op.log_lines.filter(text__startswith="Waiting for SSH")

    wait_until(waiting_for_ssh)
    log_before = list(op.log_lines.values_list("seq", "text"))
    assert first.kill(signal.SIGKILL) == -signal.SIGKILL
    op.refresh_from_db()
    assert op.status == "running"  # nobody could record anything: the process is gone

    processes("worker", ready="started")

    def interrupted():
        op.refresh_from_db()
        return op.status == "interrupted"

    wait_until(interrupted, timeout=15)
    log_after = list(op.log_lines.values_list("seq", "text"))
    assert log_after[: len(log_before)] == log_before  # the log is kept to its last line
    assert log_after[-1][1] == f"Interrupted: {op.claimed_by} stopped while this ran"
    assert "Retry" in op.error
    # The machine's state is re-derived from reality right after.
    checked = wait_until(lambda: Machine.objects.get(pk=machine.pk).last_checked)
    assert checked > op.finished_at
    # The user can retry: a new operation is accepted and claimed by the new runner.
    retry = operations.request(machine, Operation.Kind.CREATE, via="web")
    wait_until(lambda: Operation.objects.get(pk=retry.pk).status == "running")
    assert Machine.objects.filter(name="stuck-1").count() == 1


@pytest.mark.django_db(transaction=True)
def test_sigterm_interrupts_what_cannot_finish_and_exits(black_hole, processes):
    machine = make_machine(name="stuck-2", ip="127.0.0.1", ssh_port=black_hole.port)
    op = operations.request(machine, Operation.Kind.CREATE, via="cli")
    worker = processes("worker", ready="started", DOCKERDASH_SHUTDOWN_GRACE="1")
    wait_until(lambda: Operation.objects.get(pk=op.pk).status == "running")
    assert worker.kill(signal.SIGTERM, timeout=30) == 0
    op.refresh_from_db()
    assert op.status == "interrupted"
    assert op.log_lines.last().text == "Interrupted by shutdown"
    assert "stopped" in worker.output()


def test_two_concurrent_restarts_of_one_machine_run_once(running_machine):
    machine = running_machine
    barrier = threading.Barrier(2)
    results: list[object] = []

    def click():
        barrier.wait()
        try:
            results.append(operations.request(machine, Operation.Kind.RESTART, via="web"))
        except operations.OperationConflict as e:
            results.append(e)

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ops = [r for r in results if isinstance(r, Operation)]
    refused = [r for r in results if isinstance(r, operations.OperationConflict)]
    assert len(ops) == 1 and len(refused) == 1
    assert "is busy: restart (pending)" in str(refused[0])
    # Two runners reaching for it at once: exactly one claims it.
    claims: list[object] = []
    barrier = threading.Barrier(2)

    def reach(worker: str):
        barrier.wait()
        claims.append(runner.claim(ops[0].pk, worker=worker))

    threads = [threading.Thread(target=reach, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [c for c in claims if c is not None]
    assert len(won) == 1
    assert runner.run_claimed(won[0]).status == "succeeded"
    assert machine.operations.filter(kind="restart").count() == 1


@pytest.mark.django_db(transaction=True)
def test_cancel_pending_and_running_at_a_step_boundary(black_hole):
    machine = make_machine(name="cancel-1", ip="127.0.0.1", ssh_port=black_hole.port)
    op = operations.request(machine, Operation.Kind.CREATE)
    assert operations.cancel(op) is True
    op.refresh_from_db()
    assert op.status == "cancelled"
    # A running one stops at its next step.
    op = operations.request(machine, Operation.Kind.RESTART)
    claimed = runner.claim(op.pk)
    Operation.objects.filter(pk=op.pk).update(cancel_requested=True)
    result = runner.run_claimed(claimed)
    assert result.status == "cancelled"
    assert "Cancelled before step 1" in result.error
    # ... and a finished one cannot be cancelled.
    assert operations.cancel(result) is False


@pytest.mark.django_db(transaction=True)
def test_the_engine_watcher_keeps_a_live_snapshot_of_containers(engine_url, parent, host_images):
    machine = make_machine(
        "none", name="parent", engine_url=engine_url, state=Machine.State.RUNNING
    )
    watcher = runner.EngineWatcher(machine.pk)
    watcher.start()
    name = f"watched-{uuid.uuid4().hex[:6]}"
    try:
        wait_until(lambda: Machine.objects.get(pk=machine.pk).engine_reachable)
        container = parent.containers.run(
            BARE_HOST_IMAGE, ["sleep", "300"], name=name, detach=True, network_mode="none"
        )
        row = wait_until(lambda: Container.objects.filter(machine=machine, name=name).first())
        wait_until(lambda: Container.objects.get(pk=row.pk).state == "running")
        assert Container.objects.get(pk=row.pk).image == BARE_HOST_IMAGE
        container.stop(timeout=0)
        wait_until(lambda: Container.objects.get(pk=row.pk).state == "exited")
        container.remove()
        wait_until(lambda: not Container.objects.filter(pk=row.pk).exists())
    finally:
        watcher.stop()
        watcher.join(10)
        for c in parent.containers.list(all=True, filters={"name": name}):
            c.remove(force=True)


@pytest.mark.django_db(transaction=True)
def test_a_stopped_engine_is_unreachable_at_once_and_back_when_it_returns(tmp_path, processes):
    # A real engine of its own, so the test can stop and start it.
    from .private_engine import private_dockerd

    with private_dockerd(tmp_path) as engine:
        machine = make_machine(
            "none", name="eng-1", engine_url=engine.url, state=Machine.State.RUNNING
        )
        watcher = runner.EngineWatcher(machine.pk)
        watcher.start()
        try:
            wait_until(lambda: Machine.objects.get(pk=machine.pk).engine_reachable is True)
            engine.stop()
            stopped = time.monotonic()
            wait_until(lambda: Machine.objects.get(pk=machine.pk).engine_reachable is False)
            flipped = time.monotonic() - stopped
            print(f"engine stopped -> unreachable in {flipped:.2f} s")
            assert "Engine unreachable" in Machine.objects.get(pk=machine.pk).last_error
            engine.start()
            wait_until(lambda: Machine.objects.get(pk=machine.pk).engine_reachable is True, 40)
            assert Machine.objects.get(pk=machine.pk).last_error == ""
        finally:
            watcher.stop()
            watcher.join(10)


@pytest.mark.django_db(transaction=True)
def test_a_black_holed_host_does_not_delay_the_list_or_ls(tmp_path, admin_user):
    hole = BlackHole(str(tmp_path / "hole.sock"))
    machine = make_machine(
        "none", name="hole-1", engine_url=hole.address, state=Machine.State.RUNNING
    )
    check = threading.Thread(target=runner.check_machine, args=(machine,), kwargs={"timeout": 5})
    check.start()
    try:
        wait_until(lambda: hole.held)  # the health check is now waiting on the host
        client = Client()
        client.force_login(admin_user)
        page = client.get(reverse("machines:list"))
        from io import StringIO

        out = StringIO()
        call_command("machine", "ls", stdout=out)
        assert check.is_alive()  # both answered while the check still waits on the host
        assert page.status_code == 200 and "hole-1" in page.content.decode()
        assert "hole-1" in out.getvalue()
    finally:
        check.join()
        hole.close()
    machine.refresh_from_db()
    assert machine.engine_reachable is False
    assert machine.last_error.startswith("Engine unreachable")


@pytest.mark.django_db
def test_stale_state_is_labelled_with_its_age(admin_client_, settings):
    from datetime import timedelta

    from django.utils import timezone

    fresh = make_machine("none", name="fresh", state="running", last_checked=timezone.now())
    old = make_machine(
        "none",
        name="old",
        state="running",
        last_checked=timezone.now() - timedelta(seconds=4 * settings.HEALTH_CHECK_INTERVAL),
    )
    page = admin_client_.get(reverse("machines:list")).content.decode()
    row = {m.name: page.split(f'id="machine-{m.pk}"')[1].split("</tr>")[0] for m in (fresh, old)}
    assert "as of" not in row["fresh"]
    assert "as of <time" in row["old"] and "ago</time>" in row["old"]
    detail = admin_client_.get(reverse("machines:detail", args=["old"])).content.decode()
    assert 'class="stale"' in detail
