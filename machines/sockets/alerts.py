"""Sockets of the alert pages and charts: the header badge with the open alerts (every
page), and a machine's new history points (its page and container panels)."""

from __future__ import annotations

from machines import live
from machines.alerts.history import live_context
from machines.services import rights
from machines.sockets.base import LiveConsumer


class AlertsConsumer(LiveConsumer):
    def object_exists(self) -> bool:
        # The fleet's alerts name every machine: global roles only (teams: not yet scoped).
        return rights.sees_all(self.user)

    def groups_for(self) -> list[str]:
        return [live.ALERTS]

    def snapshot(self) -> list[str]:
        return [self.render("alerts/history.html#alerts_oob", {**live_context(), "oob": True})]

    alerts_changed = LiveConsumer._forward


class MetricsConsumer(LiveConsumer):
    """New points for the charts of one machine (and of its containers)."""

    def object_exists(self) -> bool:
        self.machine_id = self.scope["url_route"]["kwargs"]["machine_id"]
        return self.route_machine() is not None

    def groups_for(self) -> list[str]:
        return [live.metrics_group(self.machine_id)]

    def snapshot(self) -> list[str]:
        return []  # the chart came with its data; only newer points follow

    metrics_sampled = LiveConsumer._forward
