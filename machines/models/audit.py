"""The audit log: who did what, when, to which machine. Written by the application, never
edited or deleted through it (only the retention prune removes entries)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEntry(models.Model):
    class Action(models.TextChoices):
        OPERATION = "operation", "Operation"
        CONTAINER = "container", "Container action"
        TERMINAL = "terminal", "Terminal session"
        ENGINE = "engine", "Image, volume or network"
        CERTIFICATE = "certificate", "Certificate download"
        LOGIN = "login", "Login"
        LOGIN_FAILED = "login-failed", "Failed login"
        LOCKOUT = "lockout", "Login locked out"
        USER = "user", "User or role change"
        DRIVER = "driver", "Provider account change"
        TOKEN = "token", "API token change"
        WEBHOOK = "webhook", "Webhook change"
        ALERTS = "alerts", "Alert rule, channel or alert"
        TAGS = "tags", "Tag change"
        ADMIN = "admin", "Change in the Django admin"
        PERMISSION = "permission", "Permission grant"
        REFUSED = "refused", "Refused request"
        CLUSTER = "cluster", "Cluster or stack"
        TEAM = "team", "Team or machine group change"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    # Who: the dashboard user (kept by name once the user is deleted), or on the command line
    # the operating-system user who ran it.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, db_index=True)
    via = models.CharField(max_length=16, default="web")  # web, cli, system
    address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices, db_index=True)
    # The verb in words: "restart", "exec bash", "remove image", "login failed", ...
    what = models.CharField(max_length=200)
    machine = models.ForeignKey(
        "machines.Machine", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    machine_name = models.CharField(max_length=63, blank=True, db_index=True)
    target = models.CharField(max_length=255, blank=True)  # a container, image, user, account
    detail = models.TextField(blank=True)
    operation = models.ForeignKey(
        "machines.Operation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A write through the REST API: the token that made it (its name and key stay in `via`
    # and `detail` once it is deleted).
    api_token = models.ForeignKey(
        "machines.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Terminal sessions: when they ended (their length); never what was typed.
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["action", "at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username} {self.what}"

    def save(self, *args, **kwargs) -> None:
        # Entries are written once; finish() (an update) is the one change the application
        # makes, to a session's end.
        if self.pk is not None:
            raise ValueError("Audit entries cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit entries are removed only by the retention prune.")

    def finish(self) -> None:
        """Record the end of a session (once)."""
        self.ended_at = timezone.now()
        AuditEntry.objects.filter(pk=self.pk, ended_at=None).update(ended_at=self.ended_at)

    @property
    def duration(self):
        return self.ended_at - self.at if self.ended_at else None
