"""Metrics history, alert rules and notices, against the database and real receivers (a
local SMTP server, a local HTTP endpoint through Apprise). The engine side: test_alerts_engine."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from machines import alerts
from machines.alerts import metrics, notify, state
from machines.models import AuditEntry, Machine, Operation
from machines.models.alerts import (
    Alert,
    AlertRule,
    Delivery,
    MetricBlock,
    MetricSample,
    NotificationChannel,
)
from machines.pki import usercerts
from tests.fleet import make_machine

pytestmark = pytest.mark.django_db(transaction=True)


def _channels(smtp_inbox, http_inbox, path="hook"):
    return [
        NotificationChannel.objects.create(name="mail", kind="email", target="ops@example.org"),
        NotificationChannel.objects.create(
            name="hook", kind="apprise", target=f"json://127.0.0.1:{http_inbox.port}/{path}"
        ),
    ]


def test_rules_ship_on_one_per_kind():
    rules = AlertRule.objects.all()
    assert {r.kind for r in rules} == set(AlertRule.Kind.values)
    assert all(r.enabled for r in rules)


def test_history_is_downsampled_kept_and_charted():
    machine = make_machine(name="hist-1", ip="192.0.2.1", state="running")
    now = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(minutes=7)
    start = now - timedelta(hours=26)
    samples = [
        MetricSample(machine=machine, at=start + timedelta(seconds=30 * i), cpu=i % 10, disk=50)
        for i in range(26 * 120)
    ]
    MetricSample.objects.bulk_create(samples)
    metrics.rollup(now)
    assert MetricBlock.objects.filter(resolution=300).exists()
    assert MetricBlock.objects.filter(resolution=3600).exists()
    # 24 h: 5-minute means (cpu cycles 0..9 every 5 min: mean 4.5), then the raw tail.
    day = metrics.series(machine.pk, "", 86400, now)
    assert 280 <= len(day["t"]) <= 300
    assert day["cpu"][5] == pytest.approx(4.5, abs=0.1)
    assert day["disk"][5] == pytest.approx(50, abs=0.01)
    # 30 d: hourly means (older than the rollup of 5-minute blocks) plus finer data after.
    month = metrics.series(machine.pk, "", 30 * 86400, now)
    assert month["t"] == sorted(month["t"]) and len(month["t"]) < len(day["t"]) + 30
    hour = metrics.series(machine.pk, "", 3600, now)
    assert len(hour["t"]) in (119, 120, 121)  # raw, every 30 s
    # Retention: raw samples past a day go; the means stay.
    metrics.prune(now)
    assert not MetricSample.objects.filter(at__lt=now - timedelta(hours=24)).exists()
    assert MetricBlock.objects.filter(resolution=300).exists()


def test_pack_keeps_values_and_gaps():
    columns = {"cpu": [None] * metrics.SLOTS, "load": [0.25] * metrics.SLOTS}
    columns["cpu"][3] = 123.4
    back = metrics.unpack(metrics.pack(columns))
    assert back["cpu"][3] == pytest.approx(123.4) and back["cpu"][0] is None
    assert back["load"][100] == pytest.approx(0.25) and "disk" not in back


def test_a_failed_operation_is_told_by_mail_and_webhook_once(smtp_settings, smtp_inbox, http_inbox):
    machine = make_machine(name="op-1", ip="192.0.2.2", state="running")
    rule = AlertRule.objects.get(kind="operation-failed")
    rule.channels.set(_channels(smtp_inbox, http_inbox))
    Operation.objects.create(
        machine=machine,
        machine_name=machine.name,
        kind="start",
        status="failed",
        error="The host did not answer.",
        finished_at=timezone.now(),
    )
    for _ in range(3):
        alerts.check()
    assert smtp_inbox.titles() == ["[dockerdash] FIRING: Operation failed on op-1"]
    assert http_inbox.titles() == ["[dockerdash] FIRING: Operation failed on op-1"]
    assert "The host did not answer." in smtp_inbox.items[0]["body"]
    assert smtp_inbox.items[0]["to"] == ["ops@example.org"]
    alert = Alert.objects.get(rule=rule)
    assert alert.status == "firing"
    assert set(alert.deliveries.values_list("status", flat=True)) == {"sent"}


def test_a_failing_channel_is_retried_logged_and_shown(
    admin_client_, viewer_client, http_inbox, caplog
):
    channel = NotificationChannel.objects.create(
        name="flaky", kind="apprise", target=f"json://127.0.0.1:{http_inbox.port}/fail"
    )
    rule = AlertRule.objects.get(kind="stuck")
    rule.channels.set([channel])
    rule.for_seconds = 0
    rule.save()
    make_machine(name="stuck-1", ip="192.0.2.3", state=Machine.State.STARTING)
    alerts.check()
    delivery = Delivery.objects.get(channel=channel)
    assert delivery.status == "pending" and delivery.attempts == 1 and delivery.last_error
    assert "Notice to flaky failed (attempt 1)" in caplog.text
    for attempt in range(2, len(notify.RETRY_AFTER) + 2):
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        alerts.check()
        delivery.refresh_from_db()
        assert delivery.attempts == attempt
    assert delivery.status == "failed"
    page = admin_client_.get("/alerts/").content.decode()
    assert "Notices that could not be delivered" in page and "flaky" in page
    shown = viewer_client.get("/alerts/").content.decode()
    assert "Notices that could not be delivered" in shown and delivery.last_error not in shown
    rules = admin_client_.get("/alerts/rules/").content.decode()
    assert "Last failure" in rules
    # The fixed channel works again: its test notice goes through.
    channel.target = f"json://127.0.0.1:{http_inbox.port}/hook"
    channel.save()
    response = admin_client_.post(f"/alerts/channels/{channel.pk}/test/")
    assert "Test notice sent" in response.content.decode()
    assert http_inbox.titles() == ["[dockerdash] Test notice"]


def test_debounce_resolve_silence_and_acknowledge(operator_client, http_inbox):
    hook = NotificationChannel.objects.create(
        name="hook", kind="apprise", target=f"json://127.0.0.1:{http_inbox.port}/hook"
    )
    rule = AlertRule.objects.get(kind="memory")
    rule.channels.set([hook])
    machine = make_machine(name="mem-1", ip="192.0.2.4", state="running")
    machine.engine_info = {"host": {"mem_used": 95, "mem_total": 100}}
    machine.save()
    alerts.check()
    # Pending for the rule's 300 s: nobody is told yet.
    assert Alert.objects.get(rule=rule).status == "pending" and http_inbox.items == []
    Alert.objects.filter(rule=rule).update(started_at=timezone.now() - timedelta(seconds=301))
    alerts.check()
    alerts.check()
    assert http_inbox.titles() == ["[dockerdash] FIRING: Memory high on mem-1"]
    alert = Alert.objects.get(rule=rule)
    assert "memory at 95.0 %" in alert.message
    response = operator_client.post(f"/alerts/{alert.pk}/acknowledge/", HTTP_HX_REQUEST="true")
    assert "acknowledged by operator" in response.content.decode()
    # Silenced: resolving tells nobody.
    rule.silenced_until = timezone.now() + timedelta(hours=1)
    rule.save()
    machine.engine_info = {"host": {"mem_used": 10, "mem_total": 100}}
    machine.save()
    alerts.check()
    assert Alert.objects.get(pk=alert.pk).status == "resolved"
    assert len(http_inbox.items) == 1
    # Resolved alerts are kept as long as the hourly history.
    assert state.prune(timezone.now() + timedelta(days=364)) == 0
    assert state.prune(timezone.now() + timedelta(days=366)) >= 1
    assert not Alert.objects.filter(pk=alert.pk).exists()


def test_a_client_certificate_expiring_in_a_day_raises_an_alert(settings, admin_user):
    settings.CLIENT_CERT_DAYS = 1
    machine = make_machine(name="cert-1", ip="192.0.2.5", state="running")
    record, _, _ = usercerts.issue(admin_user, machine)
    assert record.expires_at - timezone.now() < timedelta(days=1, minutes=1)
    alerts.check()
    alert = Alert.objects.get(rule__kind="certificate", status="firing")
    assert alert.key == f"client/{record.serial}"
    assert "client certificate of admin" in alert.message and "expires in 0 d 23 h" in alert.message


def test_rules_and_channels_are_for_admins(viewer_client, operator_client, admin_client_):
    assert viewer_client.get("/alerts/").status_code == 200
    assert viewer_client.get("/alerts/rules/").status_code == 403
    assert operator_client.get("/alerts/rules/").status_code == 403
    rule = AlertRule.objects.get(kind="disk")
    assert operator_client.post(f"/alerts/rules/{rule.pk}/", {}).status_code == 403
    page = admin_client_.get("/alerts/rules/").content.decode()
    assert "Data-root disk full" in page and "Container exited non-zero" in page
    bad = admin_client_.post(
        f"/alerts/rules/{rule.pk}/",
        {f"r{rule.pk}-threshold": "80", f"r{rule.pk}-selector": "env=prod;rm -rf /"},
    )
    assert "is not a tag" in bad.content.decode()
    ok = admin_client_.post(
        f"/alerts/rules/{rule.pk}/",
        {
            f"r{rule.pk}-enabled": "on",
            f"r{rule.pk}-threshold": "80",
            f"r{rule.pk}-for_seconds": "0",
            f"r{rule.pk}-window_seconds": "600",
            f"r{rule.pk}-selector": "env=prod",
        },
    )
    assert ok.status_code == 302
    rule.refresh_from_db()
    assert rule.threshold == 80 and rule.selector == "env=prod"
    entry = AuditEntry.objects.get(action="alerts", what="change alert rule")
    assert entry.username == "admin" and entry.target == "Data-root disk full"
    assert "threshold=80.0" in entry.detail and "selector=env=prod" in entry.detail
    bad_channel = admin_client_.post(
        "/alerts/channels/", {"name": "x", "kind": "email", "target": "not an address"}
    )
    assert "is not an email address" in bad_channel.content.decode()
    secret = "ntfys://user:s3cret-token@ntfy.example.org/topic"
    admin_client_.post("/alerts/channels/", {"name": "ntfy", "kind": "apprise", "target": secret})
    assert NotificationChannel.objects.get(name="ntfy").target == secret
    assert "s3cret-token" not in admin_client_.get("/alerts/rules/").content.decode()


def test_a_selector_scopes_a_rule():
    rule = AlertRule.objects.get(kind="stuck")
    rule.for_seconds, rule.selector = 0, "env=prod"
    rule.save()
    make_machine(name="dev-1", ip="192.0.2.6", state="starting", tags={"env": "dev"})
    make_machine(name="prod-1", ip="192.0.2.7", state="starting", tags={"env": "prod"})
    alerts.check()
    assert list(Alert.objects.filter(rule=rule).values_list("machine_name", flat=True)) == [
        "prod-1"
    ]


def test_the_chart_of_a_container_for_viewers(viewer_client):
    machine = make_machine(name="chart-1", ip="192.0.2.8", state="running")
    now = timezone.now()
    MetricSample.objects.bulk_create(
        MetricSample(machine=machine, container="web", at=now - timedelta(minutes=i), cpu=i)
        for i in range(10)
    )
    page = viewer_client.get("/machines/chart-1/history/?range=1h&container=web").content.decode()
    assert (
        "10 points" in page
        and "container web" in page
        and 'pressed="true" hx-get="/machines/chart-1/history/?range=1h' in page
    )
    assert '"cpu": [9.0, 8.0' in page
    # An unknown range is the default day; another machine's name is a 404.
    assert (
        'pressed="true" hx-get="/machines/chart-1/history/?range=24h'
        in viewer_client.get("/machines/chart-1/history/?range=9y").content.decode()
    )
    assert viewer_client.get("/machines/nope/history/").status_code == 404


def test_the_snapshot_tells_unhealthy_from_healthy():
    from machines.engine.watch import _ps_row

    assert _ps_row({"Status": "Up 3 minutes (unhealthy)"})["health"] == "unhealthy"
    assert _ps_row({"Status": "Up 3 minutes (healthy)"})["health"] == "healthy"
    assert _ps_row({"Status": "Up 2 seconds (health: starting)"})["health"] == "starting"
