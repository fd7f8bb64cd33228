"""A bulk action: one operation per machine of a selection, run with bounded concurrency."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class BulkAction(models.Model):
    kind = models.CharField(max_length=32)
    args = models.JSONField(default=dict, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    # What the selection held, as the user chose it (a filter's words or "N selected").
    selection = models.CharField(max_length=300, blank=True)
    # Machines of the selection the action does not apply to: [name, why] each.
    skipped = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} on {self.selection or 'a selection'}"

    def get_absolute_url(self) -> str:
        return reverse("machines:bulk", args=[self.pk])

    def counts(self) -> dict[str, int]:
        """How many of its operations are pending, running, succeeded, failed, ... (all keys)."""
        statuses = self.operations.model.Status.values  # Operation's, not importing the package
        found = dict(
            self.operations.values_list("status").annotate(n=models.Count("id")).order_by()
        )
        counts = {status: found.get(status, 0) for status in statuses}
        counts["total"] = sum(found.values())
        counts["done"] = counts["succeeded"]
        counts["ended"] = counts["total"] - counts["pending"] - counts["running"]
        counts["failed_all"] = counts["failed"] + counts["interrupted"] + counts["cancelled"]
        return counts
