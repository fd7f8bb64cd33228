"""Publishing for metrics history and alerts (machines/alerts): their groups and messages,
sent through publish.group_send like everything else live."""

from __future__ import annotations

import json

from django.template.loader import render_to_string

from machines.live.publish import group_send, per_role

ALERTS = "alerts"


def metrics_group(machine_id: int) -> str:
    return f"metrics-{machine_id}"


def metrics_sampled(machine_id: int, points: list[tuple[str, dict]]) -> None:
    """New history points of a machine and its containers ((container or "", point)), in one
    message: the charts on screen append theirs (static/js/charts.js)."""
    html = "".join(
        render_to_string(
            "alerts/charts.html#point", {"point": json.dumps(point), "container": container}
        )
        for container, point in points
    )
    group_send(metrics_group(machine_id), {"type": "metrics.sampled", "html": html})


def alerts_live_html(context: dict) -> dict[str, str]:
    """The header badge, the open alerts and the recent history (alerts.history.live_context),
    per role."""
    # Admins also see why a notice failed (a channel's error can name its server).
    return per_role("alerts/history.html#alerts_oob", {**context, "oob": True}, admin=True)


def alerts_changed(context: dict) -> None:
    """An alert fired, resolved or was acknowledged, or a notice of one was sent or failed."""
    group_send(ALERTS, {"type": "alerts.changed", **alerts_live_html(context)})
