"""What each kind of rule looks for in the stored state: {subject key: (machine, message)}
for every subject whose condition holds now. Debounce, firing and resolving are the same
for every kind (alerts/state.py); a kind only says what is wrong, in words."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max, Min

from machines.models import (
    CertificateAuthority,
    ClientCA,
    ClientCertificate,
    Container,
    Machine,
    Operation,
)
from machines.models.alerts import AlertRule, MetricSample

Kind = AlertRule.Kind
Conditions = dict[str, tuple[Machine | None, str]]
EXIT_CODE = re.compile(r"^Exited \((-?\d+)\)")


@dataclass(frozen=True)
class KindInfo:
    """A kind's shipped default and what its numbers mean (for the rule form)."""

    threshold: float = 0
    for_seconds: int = 0
    window_seconds: int = 600
    notify_resolved: bool = True
    threshold_unit: str = ""
    # Conditions about things that are not machines (the CAs, users' certificates) are
    # checked by every runner; those of machines by the runner holding the machine.
    global_subjects: bool = False


KINDS: dict[str, KindInfo] = {
    Kind.UNREACHABLE: KindInfo(for_seconds=60),
    Kind.DISK: KindInfo(threshold=90, threshold_unit="%"),
    Kind.MEMORY: KindInfo(threshold=90, for_seconds=300, threshold_unit="%"),
    Kind.EXITED: KindInfo(),
    Kind.UNHEALTHY: KindInfo(for_seconds=30),
    Kind.RESTARTING: KindInfo(threshold=3, window_seconds=600, threshold_unit="restarts"),
    Kind.CERTIFICATE: KindInfo(threshold=14, threshold_unit="days", global_subjects=True),
    Kind.OPERATION: KindInfo(window_seconds=3600, notify_resolved=False),
    Kind.STUCK: KindInfo(for_seconds=900),
}


def _intended_down(machine: Machine) -> bool:
    """Stopped by someone through dashboard (its last operation a stop or kill that worked)."""
    last = machine.operations.exclude(status__in=Operation.ACTIVE).order_by("-created_at").first()
    return bool(
        last
        and last.kind in (Operation.Kind.STOP, Operation.Kind.KILL)
        and last.status == Operation.Status.SUCCEEDED
    )


def unreachable(rule: AlertRule, machines: list[Machine], now: datetime) -> Conditions:
    found: Conditions = {}
    for m in machines:
        if m.state == Machine.State.RUNNING and m.engine_reachable is False:
            why = m.last_error or "its engine does not answer."
        elif m.state in ("stopped", "error", "timeout", "paused") and not _intended_down(m):
            why = m.last_error or f"its host is {m.get_state_display().lower()}."
        else:
            continue
        found[f"m{m.pk}"] = (m, f"{m.name} is unreachable: {why}")
    return found


def _host_use(machines: list[Machine], field: str, total: str, limit: float, what: str):
    found: Conditions = {}
    for m in machines:
        host = (m.engine_info or {}).get("host") or {}
        if m.state != Machine.State.RUNNING or not host.get(total):
            continue
        pct = host[field] * 100 / host[total]
        if pct > limit:
            where = f" ({host.get('disk_path')})" if what == "disk" else ""
            found[f"m{m.pk}"] = (m, f"{m.name}: {what}{where} at {pct:.1f} % (limit {limit:g} %).")
    return found


def disk(rule: AlertRule, machines: list[Machine], now: datetime) -> Conditions:
    return _host_use(machines, "disk_used", "disk_total", rule.threshold, "disk")


def memory(rule: AlertRule, machines: list[Machine], now: datetime) -> Conditions:
    return _host_use(machines, "mem_used", "mem_total", rule.threshold, "memory")


def _containers(machines: list[Machine]):
    by_id = {m.pk: m for m in machines}
    for c in Container.objects.filter(machine_id__in=by_id).order_by("machine_id", "name"):
        yield by_id[c.machine_id], c


def exited(rule: AlertRule, machines: list[Machine], now: datetime) -> Conditions:
    found: Conditions = {}
    for m, c in _containers(machines):
        code = EXIT_CODE.match(c.status)
        if c.state in ("exited", "dead") and code and code.group(1) != "0":
            text = f"{m.name}: container {c.name} exited with code {code.group(1)}."
            found[f"m{m.pk}/c/{c.name}"] = (m, text)
    return found


def unhealthy(rule: AlertRule, machines: list[Machine], now: datetime) -> Conditions:
    return {
        f"m{m.pk}/c/{c.name}": (m, f"{m.name}: container {c.name} is unhealthy.")
        for m, c in _containers(machines)
        # The engine's own words ("Up 3 minutes (unhealthy)"), whatever the snapshot parsed.
        if c.state == "running" and "(unhealthy)" in c.status
    }


def restarting(rule: AlertRule, machines: list[Machine], now: datetime) -> Conditions:
    """More than `threshold` restarts (Docker's RestartCount, as sampled) within the window."""
    since = now - timedelta(seconds=rule.window_seconds)
    counts = (
        MetricSample.objects.filter(machine__in=machines, at__gte=since, restarts__isnull=False)
        .exclude(container="")
        .values("machine_id", "container")
        .annotate(low=Min("restarts"), high=Max("restarts"))
    )
    by_id = {m.pk: m for m in machines}
    found: Conditions = {}
    for row in counts:
        restarts = int(row["high"] - row["low"])
        if restarts > rule.threshold:
            m = by_id[row["machine_id"]]
            text = (
                f"{m.name}: container {row['container']} restarted {restarts} times "
                f"in {rule.window_seconds // 60} min."
            )
            found[f"m{m.pk}/c/{row['container']}"] = (m, text)
    return found


def _expiring(what: str, expires_at: datetime | None, now: datetime, days: float) -> str:
    if expires_at is None or expires_at - now > timedelta(days=days):
        return ""
    if expires_at <= now:
        return f"{what} expired on {expires_at:%Y-%m-%d %H:%M} UTC."
    left = expires_at - now
    return f"{what} expires in {left.days} d {left.seconds // 3600} h ({expires_at:%Y-%m-%d})."


def certificate(rule: AlertRule, machines: list[Machine], now: datetime) -> Conditions:
    found: Conditions = {}
    days = rule.threshold
    for m in machines:
        if text := _expiring(
            f"{m.name}: the engine's server certificate", m.tls_server_expires_at, now, days
        ):
            found[f"m{m.pk}/server"] = (m, text)
    for cert in ClientCertificate.objects.filter(revoked_at=None, machine__in=machines):
        what = (
            f"{cert.machine_name}: the client certificate of {cert.username} ({cert.serial[:12]})"
        )
        if (text := _expiring(what, cert.expires_at, now, days)) and cert.expires_at > now:
            found[f"client/{cert.serial}"] = (cert.machine, text)
    for ca in CertificateAuthority.objects.all():
        for label, at in (("CA", ca.expires_at), ("client certificate", ca.client_expires_at)):
            if text := _expiring(f"The dashboard's {label} ({ca.name})", at, now, days):
                found[f"ca/{ca.name}/{label}"] = (None, text)
    for ca in ClientCA.objects.filter(revoked_at=None):
        if text := _expiring(f"The users' client CA ({ca.name})", ca.expires_at, now, days):
            found[f"client-ca/{ca.name}"] = (None, text)
    return found


def operation_failed(rule: AlertRule, machines: list[Machine], now: datetime) -> Conditions:
    since = now - timedelta(seconds=rule.window_seconds)
    failed = Operation.objects.filter(
        machine__in=machines, status=Operation.Status.FAILED, finished_at__gte=since
    ).select_related("machine")
    return {
        f"op{op.pk}": (op.machine, f"{op.machine_name}: {op.get_kind_display()} failed: {op.error}")
        for op in failed
    }


def stuck(rule: AlertRule, machines: list[Machine], now: datetime) -> Conditions:
    return {
        f"m{m.pk}": (m, f"{m.name} has been {m.get_state_display().lower()} for a long time.")
        for m in machines
        if m.state in (Machine.State.STARTING, Machine.State.STOPPING)
    }


CHECKS: dict[str, Callable[[AlertRule, list[Machine], datetime], Conditions]] = {
    Kind.UNREACHABLE: unreachable,
    Kind.DISK: disk,
    Kind.MEMORY: memory,
    Kind.EXITED: exited,
    Kind.UNHEALTHY: unhealthy,
    Kind.RESTARTING: restarting,
    Kind.CERTIFICATE: certificate,
    Kind.OPERATION: operation_failed,
    Kind.STUCK: stuck,
}


def ensure_default_rules(**kwargs) -> None:
    """The shipped rules, on: one per kind that has no rule (after every migrate, so a kind
    added later gets its rule; an admin turns a rule off rather than deleting it)."""
    have = set(AlertRule.objects.values_list("kind", flat=True))
    for kind, info in KINDS.items():
        if kind not in have:
            AlertRule.objects.get_or_create(
                name=AlertRule.Kind(kind).label,
                defaults={
                    "kind": kind,
                    "threshold": info.threshold,
                    "for_seconds": info.for_seconds,
                    "window_seconds": info.window_seconds,
                    "notify_resolved": info.notify_resolved,
                },
            )
