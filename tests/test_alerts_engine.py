"""Alerts from real machines: a real runner (health checks, watchers, the alert check) over
a container machine with its own engine, notices to a local SMTP server and a local HTTP
receiver through Apprise."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest

from machines.engine import clients
from machines.models import Machine
from machines.models.alerts import Alert, AlertRule, MetricSample, NotificationChannel
from machines.operations.runner import Runner
from tests.fleet import ssh
from tests.helpers import wait_until
from tests.inside import run_in

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]


@contextlib.contextmanager
def runner_running(settings):
    """The real runner on its own loop in a thread, checking every second."""
    settings.HEALTH_CHECK_INTERVAL = 1
    settings.ALERT_CHECK_INTERVAL = 1
    settings.HOST_USAGE_INTERVAL = 1
    worker = Runner(kind="test", max_parallel=2)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        loop.call_soon_threadsafe(worker.stop)
        thread.join(60)
        # Cycles still running in the loop's threads finish before the database goes.
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def _only(kind: str, channels: list, **fields) -> AlertRule:
    """This rule on (with these channels and fields), every other rule off."""
    AlertRule.objects.exclude(kind=kind).update(enabled=False)
    rule = AlertRule.objects.get(kind=kind)
    for key, value in fields.items():
        setattr(rule, key, value)
    rule.enabled = True
    rule.save()
    rule.channels.set(channels)
    return rule


@pytest.fixture
def channels(smtp_settings, smtp_inbox, http_inbox):
    return [
        NotificationChannel.objects.create(name="mail", kind="email", target="ops@example.org"),
        NotificationChannel.objects.create(
            name="hook", kind="apprise", target=f"json://127.0.0.1:{http_inbox.port}/hook"
        ),
    ]


def test_a_killed_container_is_told_once_then_resolved_and_a_full_disk_alerts(
    running_machine, settings, channels, smtp_inbox, http_inbox
):
    machine = running_machine
    victim = run_in(machine, "sleep 600", name="victim")
    _only(AlertRule.Kind.EXITED, channels)
    with runner_running(settings):
        wait_until(lambda: machine.containers.filter(name="victim", state="running").exists(), 60)
        client = clients.client_for_machine(machine, timeout=30)
        try:
            client.containers.get(victim.id).kill()
            killed = time.monotonic()
            wait_until(lambda: len(http_inbox.items) >= 1, 10)
            told = time.monotonic() - killed
            print(f"container killed -> notice in {told:.2f} s")
            assert told <= 10
            time.sleep(6)  # several checks later: nothing repeated
            assert http_inbox.titles() == [
                f"[dockerdash] FIRING: Container exited non-zero on {machine.name}"
            ]
            wait_until(lambda: len(smtp_inbox.items) >= 1, 10)
            assert "victim exited with code 137" in smtp_inbox.items[0]["body"]
            client.containers.get(victim.id).start()
            wait_until(lambda: len(http_inbox.items) >= 2, 20)
        finally:
            client.close()
        assert http_inbox.titles()[1].startswith("[dockerdash] RESOLVED: Container exited")
        wait_until(lambda: len(smtp_inbox.items) >= 2, 10)
        assert len(http_inbox.items) == 2 and len(smtp_inbox.items) == 2

        # The history holds the machine's and the container's samples.
        wait_until(
            lambda: MetricSample.objects.filter(machine=machine, container="victim").exists()
        )
        wait_until(
            lambda: MetricSample.objects.filter(machine=machine, disk__isnull=False).exists()
        )

        # The data root's disk filled past the threshold (set just above its use now: the
        # test engine's disk is large and shared).
        wait_until(
            lambda: Machine.objects.get(pk=machine.pk).engine_info.get("host", {}).get("disk_total")
        )
        host = Machine.objects.get(pk=machine.pk).engine_info["host"]
        # The host's disk is this machine's, shared with the other test workers, whose VM disks
        # and images come and go by the GiB: the file (and its margin, half of it) is larger.
        fill = max(4 * 2**30, host["disk_total"] // 50)
        threshold = (host["disk_used"] + fill / 2) * 100 / host["disk_total"]
        _only(AlertRule.Kind.DISK, channels, threshold=threshold)
        with ssh(machine) as session:
            status, output = session.run(
                f"fallocate -l {fill} /var/lib/docker/alert-test.fill", timeout=30
            )
            assert status == 0, output
            try:
                alert = wait_until(
                    lambda: Alert.objects.filter(rule__kind="disk", status="firing").first(), 90
                )
            finally:
                session.run("rm -f /var/lib/docker/alert-test.fill", timeout=30)
    assert alert.machine_id == machine.pk and "disk (/var/lib/docker) at" in alert.message
    wait_until(lambda: any("Data-root disk full" in t for t in http_inbox.titles()), 10)


def test_a_stopped_host_is_unreachable_after_the_rules_seconds(
    running_machine, settings, channels, http_inbox
):
    machine = running_machine
    _only(AlertRule.Kind.UNREACHABLE, channels, for_seconds=5)
    with runner_running(settings):
        wait_until(lambda: Machine.objects.get(pk=machine.pk).engine_reachable is True, 30)
        # Behind the dashboard's back (no stop operation): the host container stops.
        machine.get_driver().stop(machine)
        stopped = time.time()
        alert = wait_until(
            lambda: Alert.objects.filter(rule__kind="unreachable", status="firing").first(), 60
        )
        after = alert.fired_at.timestamp() - stopped
        print(f"host stopped -> unreachable alert after {after:.1f} s (rule: 5 s)")
        assert after >= 5
        assert alert.machine_id == machine.pk and "is unreachable" in alert.message
        wait_until(lambda: len(http_inbox.items) >= 1, 10)
        assert http_inbox.titles() == [
            f"[dockerdash] FIRING: Machine unreachable on {machine.name}"
        ]


def test_a_restart_loop_and_an_unhealthy_container_alert(running_machine, settings, http_inbox):
    machine = running_machine
    hook = NotificationChannel.objects.create(
        name="hook", kind="apprise", target=f"json://127.0.0.1:{http_inbox.port}/hook"
    )
    AlertRule.objects.exclude(kind__in=["container-restarting", "container-unhealthy"]).update(
        enabled=False
    )
    for rule in AlertRule.objects.filter(enabled=True):
        rule.channels.set([hook])
    AlertRule.objects.filter(kind="container-unhealthy").update(for_seconds=0)
    AlertRule.objects.filter(kind="container-restarting").update(threshold=2)
    run_in(machine, "true", name="image-loader")  # imports the shell image
    client = clients.client_for_machine(machine, timeout=30)
    try:
        client.containers.run(
            "dockerdash-test/shell:1",
            ["/bin/sh", "-c", "sleep 1; exit 3"],
            name="crashy",
            detach=True,
            environment={"PATH": "/bin"},
            restart_policy={"Name": "always"},
        )
        client.containers.run(
            "dockerdash-test/shell:1",
            ["/bin/sh", "-c", "sleep 600"],
            name="sickly",
            detach=True,
            environment={"PATH": "/bin"},
            healthcheck={"test": ["CMD-SHELL", "exit 1"], "interval": 10**9, "retries": 1},
        )
        with runner_running(settings):
            wanted = {
                f"[dockerdash] FIRING: Container restarting on {machine.name}",
                f"[dockerdash] FIRING: Container unhealthy on {machine.name}",
            }
            wait_until(lambda: wanted <= set(http_inbox.titles()), 90)
    finally:
        client.close()
    restarting = Alert.objects.get(rule__kind="container-restarting", status="firing")
    unhealthy = Alert.objects.get(rule__kind="container-unhealthy", status="firing")
    assert "container crashy restarted" in restarting.message
    assert "container sickly is unhealthy" in unhealthy.message
    assert len(http_inbox.items) == 2  # each told once
