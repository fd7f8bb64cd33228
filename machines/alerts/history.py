"""What the alert pages and the header badge show (queries only: the views, the socket's
snapshot and the pushes render the same partials from it)."""

from __future__ import annotations

from django.db.models import Prefetch

from machines.models.alerts import Alert, Delivery

RECENT = 50


def badge_count() -> int:
    """Firing alerts nobody acknowledged yet."""
    return Alert.objects.filter(status=Alert.Status.FIRING, acknowledged_at=None).count()


def live_context() -> dict:
    deliveries = Prefetch(
        "deliveries", queryset=Delivery.objects.select_related("channel").order_by("id")
    )
    alerts = Alert.objects.exclude(status=Alert.Status.PENDING).select_related(
        "rule", "acknowledged_by"
    )
    return {
        "badge_count": badge_count(),
        "open_alerts": list(alerts.filter(status=Alert.Status.FIRING).prefetch_related(deliveries)),
        "recent": list(
            alerts.filter(status=Alert.Status.RESOLVED).prefetch_related(deliveries)[:RECENT]
        ),
        "failed_deliveries": list(
            Delivery.objects.filter(status=Delivery.Status.FAILED)
            .select_related("channel")
            .order_by("-created_at")[:10]
        ),
    }
