"""The containers of a machine's engine, as the dashboard acts on them and follows them:
actions (start, stop, ... remove) in actions.py, a container's log stream in logs.py."""

from __future__ import annotations

from .actions import CONTAINER_ACTIONS, ContainerActionError, container_action
from .logs import LOG_TAIL, TOO_MANY_STREAMS, LineQueue, LogFollower, log_streams

__all__ = [
    "CONTAINER_ACTIONS",
    "LOG_TAIL",
    "TOO_MANY_STREAMS",
    "ContainerActionError",
    "LineQueue",
    "LogFollower",
    "container_action",
    "log_streams",
]
