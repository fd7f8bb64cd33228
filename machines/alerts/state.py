"""An alert's life, the same for every kind of rule: a condition seen becomes a pending
alert; one that holds for the rule's `for_seconds` fires (one notice); one that no longer
holds resolves (one notice, if the rule says so) or, never fired, is dropped. Each step is a
conditional UPDATE, so several runners evaluating the same subject notify once."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from machines import live, webhooks
from machines.alerts import notify
from machines.alerts.history import live_context
from machines.alerts.rules import CHECKS, Conditions
from machines.models.alerts import Alert, AlertRule, Delivery

log = logging.getLogger(__name__)


def evaluate(rule: AlertRule, machines: list, now: datetime | None = None) -> None:
    """Check one rule against the machines in its scope (those of this runner)."""
    now = now or timezone.now()
    conditions = CHECKS[rule.kind](rule, machines, now)
    in_scope = {m.pk for m in machines}
    reconcile(rule, conditions, in_scope, now)


def reconcile(rule: AlertRule, conditions: Conditions, in_scope: set[int], now: datetime) -> None:
    open_alerts = {a.key: a for a in rule.alerts.filter(status__in=Alert.ACTIVE)}
    for key, (machine, message) in conditions.items():
        alert = open_alerts.get(key) or _open(rule, key, machine, message, now)
        if alert is None:
            continue
        if alert.status == Alert.Status.PENDING and now - alert.started_at >= timedelta(
            seconds=rule.for_seconds
        ):
            fire(alert, message, now)
    for key, alert in open_alerts.items():
        if key in conditions:
            continue
        # Another runner's machines are its business; a machine gone (None) is anyone's.
        if alert.machine_id is None or alert.machine_id in in_scope:
            resolve(alert, now)


def _open(rule: AlertRule, key: str, machine, message: str, now: datetime) -> Alert | None:
    try:
        with transaction.atomic():
            return Alert.objects.create(
                rule=rule,
                key=key,
                machine=machine,
                machine_name=machine.name if machine else "",
                message=message,
                started_at=now,
            )
    except IntegrityError:
        return None  # another runner opened it a moment ago: it goes on from there


def fire(alert: Alert, message: str, now: datetime) -> bool:
    won = Alert.objects.filter(pk=alert.pk, status=Alert.Status.PENDING).update(
        status=Alert.Status.FIRING, fired_at=now, message=message
    )
    if not won:
        return False
    alert.refresh_from_db()
    log.warning("Alert: %s", message)
    if not alert.rule.silenced:
        notify.queue(alert, "fired")
        _hook("alert.fired", alert)
    live.alerts_changed(live_context())
    return True


def resolve(alert: Alert, now: datetime) -> bool:
    if alert.status == Alert.Status.PENDING:
        # Never fired (the debounce caught it): nobody heard of it, nothing to resolve.
        Alert.objects.filter(pk=alert.pk, status=Alert.Status.PENDING).delete()
        return False
    won = Alert.objects.filter(pk=alert.pk, status=Alert.Status.FIRING).update(
        status=Alert.Status.RESOLVED, resolved_at=now
    )
    if not won:
        return False
    alert.refresh_from_db()
    log.info("Resolved: %s", alert.message)
    if alert.rule.notify_resolved and not alert.rule.silenced:
        notify.queue(alert, "resolved")
        _hook("alert.resolved", alert)
    live.alerts_changed(live_context())
    return True


def _hook(event: str, alert: Alert) -> None:
    """The signed outgoing webhooks (machines/webhooks) that asked for alerts: a channel for
    every rule, beside the rule's own Apprise and email channels."""
    webhooks.emit(
        event,
        {
            "alert": alert.pk,
            "rule": alert.rule.name,
            "kind": alert.rule.kind,
            "machine": alert.machine_name,
            "message": alert.message,
        },
    )


def acknowledge(alert: Alert, user) -> None:
    Alert.objects.filter(pk=alert.pk, acknowledged_at=None).update(
        acknowledged_by=user, acknowledged_at=timezone.now()
    )
    alert.refresh_from_db()
    live.alerts_changed(live_context())


def silence(rule: AlertRule, minutes: int) -> None:
    """No notices from this rule for `minutes` (0 ends a silence); alerts are still kept."""
    rule.silenced_until = timezone.now() + timedelta(minutes=minutes) if minutes else None
    rule.save(update_fields=["silenced_until"])


def prune(now: datetime | None = None) -> int:
    """Resolved alerts (and test notices) are kept as long as hourly history."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.METRICS_HOURLY_DAYS)
    deleted = Alert.objects.filter(status=Alert.Status.RESOLVED, resolved_at__lt=cutoff).delete()
    tests = Delivery.objects.filter(alert=None, created_at__lt=cutoff).delete()
    return deleted[0] + tests[0]
