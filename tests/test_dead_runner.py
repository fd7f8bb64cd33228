"""A dead runner never leaves anyone waiting: CLIs following its operations notice and stop
with "interrupted, retry with ...", and pages show `interrupted`, even with no runner alive."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from machines.lib.ssh import generate_key
from machines.models import Driver, Machine, Operation
from machines.operations import actions as operations
from machines.operations import runner

from .browser import serve
from .helpers import ROOT, BlackHole, Process, process_env, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _hanging_machines(tmp_path, count: int) -> list[Machine]:
    """Container machines whose parent engine accepts connections and never answers (a hung
    engine): a restart on them runs until the client's timeout."""
    hole = BlackHole(str(tmp_path / "hung.sock"))
    driver = Driver.objects.create(
        name="hung-engine", kind="container", settings={"engine": hole.address}
    )
    key, _ = generate_key()
    return [
        Machine.objects.create(
            name=f"hung-{i}",
            driver=driver,
            driver_options={"image": "dockerdash/host:bookworm"},
            ssh_private_key=key,
            state=Machine.State.RUNNING,
            last_checked=timezone.now(),
        )
        for i in range(count)
    ], hole


def test_kill_9_of_the_runner_during_concurrent_restarts_leaves_no_cli_waiting(tmp_path):
    machines, hole = _hanging_machines(tmp_path, 6)
    env = process_env()
    worker = Process(["worker"], env, ready="started")
    clis = [
        subprocess.Popen(
            [sys.executable, "manage.py", "machine", "restart", m.name],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for m in machines
    ]
    try:
        wait_until(lambda: Operation.objects.filter(status="running").count() == len(machines), 60)
        worker.kill()  # SIGKILL: no goodbye, its operations stay "running"
        killed = time.monotonic()
        outcomes = [cli.communicate(timeout=30 + killed - time.monotonic()) for cli in clis]
        waited = time.monotonic() - killed
    finally:
        for cli in clis:
            cli.kill()
        worker.close()
        hole.close()
    print(f"every CLI finished {waited:.1f} s after the kill")
    for machine, cli, (out, err) in zip(machines, clis, outcomes, strict=True):
        assert cli.returncode == 1, out + err
        assert "Interrupted: the runner" in err
        assert f"Retry with `machine restart {machine.name}`." in err
    ops = Operation.objects.filter(kind="restart")
    assert set(ops.values_list("status", flat=True)) == {"interrupted"}
    for op in ops:
        assert op.log_lines.last().text == f"Interrupted: {op.claimed_by} stopped while this ran"
    # Nothing is busy any more, and nobody is left "starting" as if it were known.
    machine = Machine.objects.get(name="hung-0")
    assert machine.active_operation is None
    assert machine.state != Machine.State.STARTING or machine.stale
    operations.request(machine, Operation.Kind.RESTART, via="cli")


def test_a_runner_elsewhere_is_dead_once_its_heartbeat_is_stale():
    generic = Driver.objects.get_or_create(name="generic", defaults={"kind": "generic"})[0]
    machine = Machine.objects.create(name="far-1", driver=generic, ip="192.0.2.1")
    now = timezone.now()
    op = Operation.objects.create(
        machine=machine,
        machine_name="far-1",
        kind="restart",
        status="running",
        claimed_by="another-host:4242",
        heartbeat_at=now - timedelta(seconds=10),
    )
    assert runner.interrupt_stale(refresh=False) == []
    Operation.objects.filter(pk=op.pk).update(heartbeat_at=now - runner.STALE_AFTER)
    assert [o.pk for o in runner.interrupt_stale(refresh=False)] == [op.pk]
    op.refresh_from_db()
    assert op.status == "interrupted"
    assert op.error == (
        "Interrupted: the runner another-host:4242 stopped while this ran. Retry with "
        "`machine restart far-1`."
    )


def test_a_web_process_without_runner_marks_them_interrupted(admin_user):
    generic = Driver.objects.get_or_create(name="generic", defaults={"kind": "generic"})[0]
    machine = Machine.objects.create(name="far-2", driver=generic, ip="192.0.2.1", state="starting")
    op = Operation.objects.create(
        machine=machine,
        machine_name="far-2",
        kind="restart",
        status="running",
        claimed_by="another-host:4242",
        heartbeat_at=timezone.now() - timedelta(seconds=5),
    )
    process, _ = serve("--no-runner")
    try:
        # Its heartbeat goes stale 15 s from now; the web process notices within 5 s more.
        wait_until(lambda: Operation.objects.get(pk=op.pk).status == "interrupted", 40)
    finally:
        process.close()
    machine.refresh_from_db()
    assert machine.last_checked is None  # "starting" was the operation's word: unknown now
