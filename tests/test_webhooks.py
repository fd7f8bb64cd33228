"""Outgoing webhooks: a real HTTP receiver gets each event it asked for, signed with its
secret, within moments of the operation ending; a receiver answering 500 is retried with
backoff, then its hook is disabled with the reason on the page."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client
from django.urls import reverse

from machines.models import AuditEntry, Webhook, WebhookDelivery
from machines.services import hooks

from .fleet import make_machine, run_operation
from .helpers import wait_until


class Receiver:
    """A webhook receiver on a local port: records what it got and answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status, self.received = status, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((time.monotonic(), dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(status: int = 200) -> Receiver:
        made.append(Receiver(status))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _verified(secret: str, headers: dict, body: bytes) -> bool:
    timestamp = headers["X-Dockerdash-Timestamp"]
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(headers["X-Dockerdash-Signature"], f"sha256={mac.hexdigest()}")


@pytest.mark.engine
def test_a_signed_operation_finished_arrives_within_two_seconds(
    transactional_db, admin_user, receiver, engine_url
):
    got = receiver(200)
    _, secret = hooks.register(admin_user, got.url, ["operation.finished"])
    machine = make_machine("none", engine_url=engine_url)
    op = run_operation(machine, "create")
    ended = time.monotonic()
    assert op.status == "succeeded", op.error
    wait_until(lambda: got.received, timeout=2)
    at, headers, body = got.received[0]
    assert at - ended < 2
    assert headers["X-Dockerdash-Event"] == "operation.finished"
    assert _verified(secret, headers, body)
    payload = json.loads(body)
    assert payload["event"] == "operation.finished"
    assert payload["data"]["operation"] == op.pk
    assert payload["data"]["machine"] == machine.name and payload["data"]["status"] == "succeeded"
    assert not _verified("another-secret", headers, body)
    delivery = wait_until(lambda: WebhookDelivery.objects.filter(status="delivered").first())
    assert (delivery.attempts, delivery.response_code) == (1, 200)


def test_a_500_receiver_is_retried_then_its_hook_disabled(
    transactional_db, admin_user, receiver, settings
):
    settings.WEBHOOK_ATTEMPTS, settings.WEBHOOK_BACKOFF, settings.WEBHOOK_MAX_FAILURES = 3, 0.1, 2
    failing = receiver(500)
    hook, _ = hooks.register(admin_user, failing.url, ["operation.failed"])
    from machines import webhooks

    for _ in range(2):
        webhooks.emit("operation.failed", {"operation": 1})
    wait_until(lambda: not Webhook.objects.get(pk=hook.pk).enabled, timeout=10)
    assert len(failing.received) == 6  # three attempts per delivery, backing off
    first = [
        at
        for at, headers, _ in failing.received
        if headers["X-Dockerdash-Delivery"]
        == (str(WebhookDelivery.objects.order_by("pk").first().pk))
    ]
    gaps = [b - a for a, b in itertools.pairwise(first)]
    assert len(gaps) == 2 and gaps[1] > gaps[0] >= 0.09
    hook.refresh_from_db()
    assert hook.disabled_reason.startswith("Disabled after 2 failed deliveries in a row")
    assert "The receiver answered 500" in hook.disabled_reason
    assert AuditEntry.objects.filter(what="webhook disabled", target=failing.url).exists()
    # Disabled: nothing more is sent; the page says why and enables it again.
    webhooks.emit("operation.failed", {"operation": 2})
    client = Client()
    client.force_login(admin_user)
    page = client.get(reverse("machines:webhooks")).content.decode()
    assert "Disabled after 2 failed deliveries" in page
    assert len(failing.received) == 6
    client.post(reverse("machines:enable_webhook", args=[hook.pk]))
    hook.refresh_from_db()
    assert hook.enabled and hook.failures == 0


def test_only_admins_register_webhooks_and_urls_are_checked(db, operator, admin_user):
    with pytest.raises(hooks.rights.PermissionDenied):
        hooks.register(operator, "https://example.org/hook", ["operation.finished"])
    with pytest.raises(hooks.InvalidInput, match="Enter a valid URL"):
        hooks.register(admin_user, "file:///etc/passwd", ["operation.finished"])
    with pytest.raises(hooks.InvalidInput, match="Choose one or more events"):
        hooks.register(admin_user, "https://example.org/hook", ["nope"])


def test_alerts_fire_and_resolve_as_signed_webhooks(transactional_db, admin_user, receiver):
    from datetime import timedelta

    from django.utils import timezone

    from machines import alerts
    from machines.models.alerts import Alert, AlertRule

    from .fleet import make_machine as make

    got = receiver(200)
    _, secret = hooks.register(admin_user, got.url, ["alert.fired", "alert.resolved"])
    rule = AlertRule.objects.get(kind="memory")
    machine = make(name="mem-hook", ip="192.0.2.44", state="running")
    machine.engine_info = {"host": {"mem_used": 95, "mem_total": 100}}
    machine.save()
    alerts.check()
    Alert.objects.filter(rule=rule).update(started_at=timezone.now() - timedelta(seconds=301))
    alerts.check()
    wait_until(lambda: got.received, timeout=5)
    machine.engine_info = {"host": {"mem_used": 10, "mem_total": 100}}
    machine.save()
    alerts.check()
    wait_until(lambda: len(got.received) == 2, timeout=5)
    events = [json.loads(body) for _, _, body in got.received]
    assert [e["event"] for e in events] == ["alert.fired", "alert.resolved"]
    assert events[0]["data"]["machine"] == "mem-hook" and events[0]["data"]["kind"] == "memory"
    assert "memory at 95.0 %" in events[0]["data"]["message"]
    assert all(_verified(secret, headers, body) for _, headers, body in got.received)
