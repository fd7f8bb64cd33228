"""Outgoing webhooks: `emit(event, data)` records one delivery per enabled hook that asked for
the event and sends it from a small thread pool (a slow receiver never holds the runner up).

The body is JSON; the receiver checks `X-Dockerdash-Signature: sha256=HMAC(secret,
"<X-Dockerdash-Timestamp>.<body>")` and refuses old timestamps. A failed attempt is retried
with exponential backoff; a hook whose deliveries fail WEBHOOK_MAX_FAILURES times in a row is
disabled, with the reason on the Webhooks page and in the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from machines.audit import log as audit
from machines.models import Webhook, WebhookDelivery

log = logging.getLogger(__name__)
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook")
Status = WebhookDelivery.Status


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def emit(event: str, data: dict) -> list[WebhookDelivery]:
    """One delivery per enabled hook that asked for this event, sent in the background."""
    try:
        hooks = [h for h in Webhook.objects.filter(enabled=True) if event in h.events]
        if not hooks:
            return []
        body = json.dumps({"event": event, "at": timezone.now().isoformat(), "data": data})
        deliveries = [
            WebhookDelivery.objects.create(webhook=h, event=event, body=body) for h in hooks
        ]
    except Exception:  # a webhook never fails the work it reports on
        log.exception("Recording the %s webhooks failed", event)
        return []
    for delivery in deliveries:
        transaction.on_commit(lambda pk=delivery.pk: _pool.submit(_deliver, pk))
    return deliveries


def _deliver(pk: int) -> None:
    close_old_connections()
    try:
        delivery = WebhookDelivery.objects.select_related("webhook").get(pk=pk)
        attempts = max(1, settings.WEBHOOK_ATTEMPTS)
        for attempt in range(attempts):
            if attempt:
                time.sleep(settings.WEBHOOK_BACKOFF * 2 ** (attempt - 1))
            if _attempt(delivery):
                Webhook.objects.filter(pk=delivery.webhook_id).update(failures=0)
                return
        _failed(delivery)
    except Exception:
        log.exception("Delivering webhook %s failed", pk)
    finally:
        close_old_connections()


def _attempt(delivery: WebhookDelivery) -> bool:
    """One POST; the outcome stored on the delivery. True when the receiver took it (2xx)."""
    hook = delivery.webhook
    body = delivery.body.encode()
    timestamp = str(int(time.time()))
    request = urllib.request.Request(hook.url, data=body, method="POST")  # noqa: S310 (http(s) by the model)
    for name, value in {
        "Content-Type": "application/json",
        "User-Agent": "dockerdash-webhook",
        "X-Dockerdash-Event": delivery.event,
        "X-Dockerdash-Delivery": str(delivery.pk),
        "X-Dockerdash-Timestamp": timestamp,
        "X-Dockerdash-Signature": sign(hook.secret, timestamp, body),
    }.items():
        request.add_header(name, value)
    code, error = None, ""
    try:
        with urllib.request.urlopen(request, timeout=settings.WEBHOOK_TIMEOUT) as response:  # noqa: S310
            code = response.status
    except urllib.error.HTTPError as e:
        code, error = e.code, f"The receiver answered {e.code} {e.reason}."
    except (urllib.error.URLError, OSError) as e:
        error = f"The receiver could not be reached: {getattr(e, 'reason', e)}."
    delivered = code is not None and 200 <= code < 300
    delivery.attempts += 1
    delivery.response_code, delivery.error = code, "" if delivered else error
    if delivered:
        delivery.status, delivery.finished_at = Status.DELIVERED, timezone.now()
    delivery.save(update_fields=["attempts", "response_code", "error", "status", "finished_at"])
    return delivered


def _failed(delivery: WebhookDelivery) -> None:
    delivery.status, delivery.finished_at = Status.FAILED, timezone.now()
    delivery.save(update_fields=["status", "finished_at"])
    Webhook.objects.filter(pk=delivery.webhook_id).update(failures=F("failures") + 1)
    hook = Webhook.objects.get(pk=delivery.webhook_id)
    if hook.enabled and hook.failures >= settings.WEBHOOK_MAX_FAILURES:
        reason = (
            f"Disabled after {hook.failures} failed deliveries in a row; the last: "
            f"{delivery.error} Fix the receiver, then enable the hook again."
        )
        Webhook.objects.filter(pk=hook.pk).update(enabled=False, disabled_reason=reason)
        audit.record(
            audit.Action.WEBHOOK,
            "webhook disabled",
            via="system",
            target=hook.url[:255],
            detail=reason,
        )
