"""Outgoing webhooks: URLs an admin registers for kinds of events, and the log of what was
delivered to each (every attempt's answer), so a failing receiver is seen and then disabled."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import URLValidator
from django.db import models
from django.utils import timezone

from machines.fields import EncryptedTextField

EVENTS = [
    ("operation.finished", "An operation finished"),
    ("operation.failed", "An operation failed or was cancelled"),
    ("machine.state_changed", "A machine's state changed"),
    ("container.died", "A container died"),
    ("alert.fired", "An alert fired"),
    ("alert.resolved", "An alert resolved"),
]


class Webhook(models.Model):
    url = models.URLField(max_length=500, validators=[URLValidator(schemes=["http", "https"])])
    events = models.JSONField(default=list)
    # The HMAC-SHA256 key the receiver checks the body with; shown once, stored encrypted.
    secret = EncryptedTextField()
    enabled = models.BooleanField(default=True)
    failures = models.PositiveIntegerField(default=0)  # failed deliveries in a row
    disabled_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["url", "id"]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32)
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)  # the last attempt's failure, in words
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} to {self.webhook_id}: {self.status}"
