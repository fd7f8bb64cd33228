"""Notices to people: through Apprise (one URL for ntfy, Slack, Discord, Teams, Telegram,
Gotify, Matrix, JSON webhooks, ...) or by email through Django's SMTP settings.

Each notice to each channel is a Delivery row: sent at once, retried with backoff when it
fails (RETRY_AFTER), its error logged, kept on the row and shown on the channel; after the
last attempt it stays failed, visible. A delivery is claimed with a conditional UPDATE, so
two runners never send one twice."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q
from django.utils import timezone

from machines import live
from machines.alerts.history import live_context
from machines.models.alerts import Alert, Delivery, NotificationChannel

log = logging.getLogger(__name__)

# Seconds before each retry; a delivery failing this many times + 1 stays failed.
RETRY_AFTER = (10, 60, 300, 1800)
# A delivery claimed by a runner that died is taken again after this.
SENDING_LEASE = timedelta(minutes=5)


class DeliveryError(Exception):
    pass


def _texts(alert: Alert, event: str) -> tuple[str, str]:
    word = {"fired": "FIRING", "resolved": "RESOLVED"}[event]
    title = f"[dockerdash] {word}: {alert.rule.name}"
    if alert.machine_name:
        title += f" on {alert.machine_name}"
    body = alert.message
    if event == "resolved":
        body = f"Resolved: {alert.message}"
    if settings.ALERT_BASE_URL:
        body += f"\n{settings.ALERT_BASE_URL}/alerts/"
    return title[:255], body


def queue(alert: Alert, event: str) -> list[Delivery]:
    """One delivery per channel of the alert's rule; sent by the next send_due()."""
    title, body = _texts(alert, event)
    return Delivery.objects.bulk_create(
        Delivery(alert=alert, channel=channel, event=event, title=title, body=body)
        for channel in alert.rule.channels.all()
    )


def send_test(channel: NotificationChannel) -> Delivery:
    """A test notice, sent now (the caller shows how it went)."""
    delivery = Delivery.objects.create(
        channel=channel,
        event="test",
        title="[dockerdash] Test notice",
        body=f"This is a test of the channel '{channel.name}'. It works.",
    )
    send_due(only=[delivery.pk])
    delivery.refresh_from_db()
    return delivery


def _send(channel: NotificationChannel, title: str, body: str) -> None:
    if channel.kind == NotificationChannel.Kind.EMAIL:
        addresses = [a.strip() for a in channel.target.split(",") if a.strip()]
        try:
            send_mail(title, body, settings.DEFAULT_FROM_EMAIL, addresses)
        except Exception as e:
            raise DeliveryError(f"The mail server refused or did not answer: {e}") from e
        return
    import apprise

    sender = apprise.Apprise()
    if not sender.add(channel.target):
        raise DeliveryError("Apprise does not know this URL.")
    with apprise.LogCapture(level=logging.WARNING) as captured:
        sent = sender.notify(title=title, body=body)
    if not sent:
        lines = [line for line in captured.getvalue().splitlines() if line.strip()]
        raise DeliveryError(lines[-1].strip() if lines else "Apprise could not send it.")


def _claimable() -> Q:
    now = timezone.now()
    return Q(status=Delivery.Status.PENDING, next_attempt_at__lte=now) | Q(
        status=Delivery.Status.SENDING, next_attempt_at__lte=now
    )


def send_due(only: list[int] | None = None) -> int:
    """Send the deliveries that are due (or `only` these); how many were sent."""
    due = Delivery.objects.filter(_claimable())
    if only is not None:
        due = due.filter(pk__in=only)
    sent = 0
    for pk in list(due.order_by("created_at").values_list("pk", flat=True)[:200]):
        lease = timezone.now() + SENDING_LEASE
        if not Delivery.objects.filter(_claimable(), pk=pk).update(
            status=Delivery.Status.SENDING, next_attempt_at=lease
        ):
            continue  # another runner took it
        sent += _attempt(Delivery.objects.select_related("channel").get(pk=pk))
    return sent


def _attempt(delivery: Delivery) -> bool:
    channel = delivery.channel
    delivery.attempts += 1
    try:
        _send(channel, delivery.title, delivery.body)
    except Exception as e:
        error = str(e)[:1000] or e.__class__.__name__
        retries_left = delivery.attempts <= len(RETRY_AFTER)
        log.warning(
            "Notice to %s failed (attempt %s%s): %s",
            channel.name,
            delivery.attempts,
            "" if retries_left else ", giving up",
            error,
        )
        delivery.last_error = error
        if retries_left:
            delay = RETRY_AFTER[delivery.attempts - 1]
            delivery.status = Delivery.Status.PENDING
            delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        else:
            delivery.status = Delivery.Status.FAILED
        delivery.save()
        NotificationChannel.objects.filter(pk=channel.pk).update(last_error=error)
        live.alerts_changed(live_context())
        return False
    now = timezone.now()
    delivery.status, delivery.sent_at, delivery.last_error = Delivery.Status.SENT, now, ""
    delivery.save()
    NotificationChannel.objects.filter(pk=channel.pk).update(last_error="", last_sent_at=now)
    live.alerts_changed(live_context())
    return True
