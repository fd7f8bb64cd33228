"""A swarm service's log (every task's, on every node), followed through a manager with the
same plumbing as a container's: bounded lines, one thread, a queue to the socket."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from machines.engine.streams.base import DockerStream
from machines.engine.streams.logs import LineCutter, LineQueue, LogFollower

if TYPE_CHECKING:
    from machines.models import Machine


class ServiceLogFollower(LogFollower):
    def __init__(
        self, find_manager: Callable[[], Machine], service: str, tail: int, queue: LineQueue
    ) -> None:
        DockerStream.__init__(self, None, f"service-logs-{service[:40]}")
        # Which manager answers is asked in the thread (it tries them in turn).
        self.find_manager = find_manager
        self.service = service
        self.tail = tail
        self.queue = queue
        self.cutter = LineCutter()
        self.end_reason = "The service is gone: the log ends here."

    def engine_machine(self):
        return self.find_manager()

    def follow(self) -> None:
        self._follow(tty=False)
        if not self.stopping.is_set():
            self.queue.end()

    def open_log(self, params: dict):
        return self.open(self.service, "logs", params, (10, None), kind="services")

    def failed(self, error: Exception) -> None:
        self.queue.end(getattr(error, "explanation", None) or error.__class__.__name__)
