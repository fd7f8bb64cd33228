"""Live pages: what changed, pushed to the browsers that show it.

- `publish`: the only place that knows group names and sends (models -> HTML fragments ->
  the channel layer). Everything else calls it as `live.machine_changed(...)`, re-exported
  here.
- `hub`: one membership per group per process, handed to that process's sockets (used by
  the consumers only; imported from there so that publishing never loads it).
"""

from __future__ import annotations

from machines.live.alerts import (
    ALERTS,
    alerts_changed,
    alerts_live_html,
    metrics_group,
    metrics_sampled,
)
from machines.live.publish import (
    FLEET,
    MACHINES,
    bind_loop,
    bulk_changed,
    bulk_group,
    cluster_changed,
    cluster_group,
    container_changed,
    container_notice,
    container_removed,
    containers_group,
    engine_changed,
    engine_group,
    engine_notice,
    engine_pull,
    engine_tables,
    log_lines_added,
    machine_changed,
    machine_group,
    machine_removed,
    operation_changed,
    operation_group,
    state_counts_html,
)

__all__ = [
    "ALERTS",
    "FLEET",
    "MACHINES",
    "alerts_changed",
    "alerts_live_html",
    "bind_loop",
    "bulk_changed",
    "bulk_group",
    "cluster_changed",
    "cluster_group",
    "container_changed",
    "container_notice",
    "container_removed",
    "containers_group",
    "engine_changed",
    "engine_group",
    "engine_notice",
    "engine_pull",
    "engine_tables",
    "log_lines_added",
    "machine_changed",
    "machine_group",
    "machine_removed",
    "metrics_group",
    "metrics_sampled",
    "operation_changed",
    "operation_group",
    "state_counts_html",
]
