"""Metrics history and alerts: samples of machines and containers, the rules that watch
them, the alerts they raise, the channels that tell people and each delivery."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from machines.fields import EncryptedTextField
from machines.validation import parse_tag, validate_notification_target


class MetricSample(models.Model):
    """One raw sample (kept DOCKERDASH_METRICS_RAW_HOURS), of a machine (container "") or of
    one of its containers (by name: a re-created container continues its history)."""

    machine = models.ForeignKey(
        "machines.Machine", on_delete=models.CASCADE, related_name="metric_samples"
    )
    container = models.CharField(max_length=255, blank=True)
    at = models.DateTimeField(default=timezone.now)
    # Percentages (CPU may exceed 100 on several cores), load, 1/0 for reachable/healthy.
    cpu = models.FloatField(null=True)
    memory = models.FloatField(null=True)  # machine: % used; container: MiB
    disk = models.FloatField(null=True)  # % of Docker's data root's file system
    load = models.FloatField(null=True)
    reachable = models.FloatField(null=True)
    restarts = models.FloatField(null=True)
    healthy = models.FloatField(null=True)

    class Meta:
        indexes = [models.Index(fields=["machine", "container", "at"]), models.Index(fields=["at"])]

    def __str__(self) -> str:
        return f"{self.machine_id}/{self.container or '-'} {self.at:%Y-%m-%d %H:%M:%S}"


class MetricBlock(models.Model):
    """Downsampled history: SLOTS means of `resolution` seconds each from `start`, packed
    (metrics.pack): one row per machine or container per block, not one per point, so that
    a year of a thousand machines stays small."""

    machine = models.ForeignKey(
        "machines.Machine", on_delete=models.CASCADE, related_name="metric_blocks"
    )
    container = models.CharField(max_length=255, blank=True)
    resolution = models.PositiveIntegerField()  # seconds: 300 or 3600
    start = models.DateTimeField()
    data = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["machine", "container", "resolution", "start"], name="one_metric_block"
            )
        ]

    def __str__(self) -> str:
        return f"{self.machine_id}/{self.container or '-'} {self.resolution}s from {self.start}"


class MetricRollup(models.Model):
    """How far raw samples were downsampled into each resolution (one row per resolution);
    advanced with a conditional UPDATE, so one runner does each stretch."""

    resolution = models.PositiveIntegerField(unique=True)
    done_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.resolution}s until {self.done_until}"


def validate_selector(text: str) -> None:
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            parse_tag(part)
        except ValueError as e:
            raise ValidationError(str(e)) from None


def selector_matches(selector: str, tags: dict) -> bool:
    """`key` (has the tag) and `key=value` terms, comma separated, all of which must hold."""
    for part in filter(None, (p.strip() for p in selector.split(","))):
        key, value = parse_tag(part)
        if key not in tags or ("=" in part and tags[key] != value):
            return False
    return True


class NotificationChannel(models.Model):
    class Kind(models.TextChoices):
        APPRISE = "apprise", "Apprise URL"
        EMAIL = "email", "Email (SMTP)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # An Apprise URL (may hold a token: encrypted, never shown back) or email addresses.
    target = EncryptedTextField()
    last_error = models.TextField(blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        validate_notification_target(self.kind, self.target)


class AlertRule(models.Model):
    class Kind(models.TextChoices):
        UNREACHABLE = "unreachable", "Machine unreachable"
        DISK = "disk", "Data-root disk full"
        MEMORY = "memory", "Memory high"
        EXITED = "container-exited", "Container exited non-zero"
        UNHEALTHY = "container-unhealthy", "Container unhealthy"
        RESTARTING = "container-restarting", "Container restarting"
        CERTIFICATE = "certificate", "Certificate expiring"
        OPERATION = "operation-failed", "Operation failed"
        STUCK = "stuck", "Machine stuck in a transient state"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    # Percent (disk, memory), days (certificate), restarts (restarting): see rules.KINDS.
    threshold = models.FloatField(default=0, validators=[MinValueValidator(0)])
    # How long the condition must hold before the alert fires (debounce).
    for_seconds = models.PositiveIntegerField(default=0)
    # Restarting: the window the restarts are counted in.
    window_seconds = models.PositiveIntegerField(default=600)
    selector = models.CharField(
        max_length=255,
        blank=True,
        validators=[validate_selector],
        help_text="Tags the machines must have, e.g. env=prod,team (empty: every machine).",
    )
    channels = models.ManyToManyField(NotificationChannel, blank=True, related_name="rules")
    notify_resolved = models.BooleanField(default=True)
    silenced_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def silenced(self) -> bool:
        return self.silenced_until is not None and self.silenced_until > timezone.now()


class Alert(models.Model):
    """One condition of one rule on one subject (a machine, a container, a certificate, an
    operation): pending while it is debounced, firing, then resolved."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    ACTIVE = (Status.PENDING, Status.FIRING)

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    key = models.CharField(max_length=255)  # the subject, e.g. "m12/c/web"
    machine = models.ForeignKey(
        "machines.Machine", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    machine_name = models.CharField(max_length=63, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    message = models.TextField()
    started_at = models.DateTimeField(default=timezone.now)
    fired_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            # One open alert per rule and subject, however many runners evaluate it.
            models.UniqueConstraint(
                fields=["rule", "key"],
                condition=models.Q(status__in=["pending", "firing"]),
                name="one_open_alert_per_subject",
            )
        ]
        indexes = [models.Index(fields=["status", "started_at"])]

    def __str__(self) -> str:
        return f"{self.rule.name}: {self.message}"


class Delivery(models.Model):
    """One notice (fired, resolved, test) to one channel: retried with backoff, its failure
    kept and shown."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.ForeignKey(
        NotificationChannel, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=16)  # fired, resolved, test
    title = models.CharField(max_length=255)
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.event} to {self.channel_id}: {self.status}"
