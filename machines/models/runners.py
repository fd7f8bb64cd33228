"""The runner processes alive (serve, worker, a CLI running an operation itself)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class RunnerProcess(models.Model):
    """A live runner process (serve, worker or a CLI running an operation itself)."""

    name = models.CharField(max_length=128, unique=True)
    kind = models.CharField(max_length=16)
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name
