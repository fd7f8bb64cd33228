"""Metrics history, alert rules and notifications (issue 25).

The runner calls two functions, nothing else:
- `after_health_cycle(machines)` at the end of each health cycle: one history sample per
  machine (and per running container) from what the cycle just observed;
- `check(runner_name)` every ALERT_CHECK_INTERVAL seconds: the rules against the stored
  state of the machines this runner holds (the watchers keep containers current, so a
  killed container is noticed within seconds), notices sent and retried, history rolled up.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings

from machines.models import Machine
from machines.models.alerts import AlertRule, selector_matches

log = logging.getLogger(__name__)

__all__ = ["after_health_cycle", "check"]

# Downsampling and retention run at most this often (seconds).
ROLLUP_EVERY = 60
_last_rollup = [0.0]


def after_health_cycle(machines: list[Machine]) -> None:
    from machines.alerts import sampling

    try:
        sampling.sample(machines)
    except Exception:
        log.exception("Recording the metrics history failed")


def check(runner_name: str | None = None) -> None:
    """Evaluate every enabled rule, send due notices, roll the history up when due."""
    from machines.alerts import metrics, notify, state

    machines = Machine.objects.select_related("driver")
    if runner_name is not None:
        machines = machines.filter(lease_owner=runner_name)
    machines = list(machines)
    for rule in AlertRule.objects.filter(enabled=True).prefetch_related("channels"):
        scoped = [m for m in machines if selector_matches(rule.selector, m.tags or {})]
        try:
            state.evaluate(rule, scoped)
        except Exception:
            log.exception("Checking the alert rule %s failed", rule.name)
    notify.send_due()
    if time.monotonic() - _last_rollup[0] >= ROLLUP_EVERY:
        _last_rollup[0] = time.monotonic()
        metrics.rollup()
        metrics.prune()
        state.prune()


def check_interval() -> float:
    return settings.ALERT_CHECK_INTERVAL
