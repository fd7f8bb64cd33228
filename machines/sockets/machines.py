"""The sockets of a machine's pages: the machine, its operations, its containers and a
container's log. Their base, LiveConsumer (auth, snapshot, keepalive), is in base.py."""

from __future__ import annotations

import asyncio
import collections
import re
from urllib.parse import parse_qs

from django.template.loader import render_to_string

from machines import live
from machines.engine.streams.logs import (
    LOG_TAIL,
    TOO_MANY_STREAMS,
    LineQueue,
    LogFollower,
    log_streams,
)
from machines.models import Machine, Operation
from machines.services import rights
from machines.services.listing import ContainerFilterForm
from machines.sockets.base import LiveConsumer


class MachineConsumer(LiveConsumer):
    """A machine's page: its summary, connect panel and operations (not its containers)."""

    def object_exists(self) -> bool:
        self.machine_id = self.scope["url_route"]["kwargs"]["machine_id"]
        return self.route_machine() is not None

    def groups_for(self) -> list[str]:
        return [live.machine_group(self.machine_id)]

    def snapshot(self) -> list[str]:
        machine = Machine.objects.select_related("driver").get(pk=self.machine_id)
        operations = list(machine.operations.select_related("requested_by")[:20])
        # The newest operation the page was rendered with: newer ones it lacks (unless
        # this socket's predecessor added them), older ones it has.
        query = parse_qs(self.scope.get("query_string", b"").decode())
        after = query.get("after", [""])[-1]
        after = int(after) if after.isdigit() else 0
        self.operations_shown = {op.pk for op in operations}
        context = {
            "machine": machine,
            "shown": [op for op in operations if op.pk <= after],
            "missing": [op for op in operations if op.pk > after],
        }
        return [self.render("machines/detail.html#machine_live_oob", context)]

    async def operation_changed(self, event: dict) -> None:
        if "insert_html" in event and event["operation"] not in self.operations_shown:
            self.operations_shown.add(event["operation"])
            await self.send(text_data=event["insert_html"])
        await self._forward(event)


class OperationConsumer(LiveConsumer):
    """One operation's log: what exists, then each line as it is written, until it ends."""

    def object_exists(self) -> bool:
        self.operation_id = self.scope["url_route"]["kwargs"]["operation_id"]
        operations = rights.visible(self.user, Operation.objects.all(), "machine__")
        return operations.filter(pk=self.operation_id).exists()

    def groups_for(self) -> list[str]:
        return [live.operation_group(self.operation_id)]

    def snapshot(self) -> list[str]:
        operation = Operation.objects.get(pk=self.operation_id)
        lines = list(operation.log_lines.all())
        # Lines written between joining the group and this query arrive once more.
        self.last_seq = lines[-1].seq if lines else 0
        return [
            self.render(
                "machines/detail.html#operation_log_oob",
                {"operation": operation, "lines": lines},
            )
        ]

    async def operation_log(self, event: dict) -> None:
        if event.get("first_seq", self.last_seq + 1) > self.last_seq:
            await self._forward(event)

    async def operation_changed(self, event: dict) -> None:
        await self._forward(event)
        if event.get("finished"):
            # The log is complete: nothing more will come, and htmx does not reconnect
            # after a normal close.
            await self.close()


class _ContainersConsumer(LiveConsumer):
    """A container table, following the filter in the socket's query string."""

    fleet = False

    def _allowed(self, user) -> bool:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.filter = ContainerFilterForm({k: v[-1] for k, v in query.items()}, user=user)
        return super()._allowed(user)

    def snapshot(self) -> list[str]:
        page = self.filter.get_page(getattr(self, "machine", None))
        containers = list(page.object_list)
        self.rows_shown = {f"container-{c.pk}" for c in containers}
        self.room = 0 if page.has_next() else page.paginator.per_page - len(containers)
        context = {
            "containers": containers,
            "fleet": self.fleet,
            "machine": getattr(self, "machine", None),
            "oob": True,
        }
        return [self.render("machines/containers.html#container_tbody", context)]

    def wants(self, event: dict) -> bool:
        return self.filter.matches(event["fields"])


class MachineContainersConsumer(_ContainersConsumer):
    def object_exists(self) -> bool:
        self.machine = self.route_machine()
        return self.machine is not None

    def groups_for(self) -> list[str]:
        return [live.containers_group(self.machine.pk)]


class FleetConsumer(_ContainersConsumer):
    fleet = True

    def groups_for(self) -> list[str]:
        return [live.FLEET]


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class ContainerLogConsumer(LiveConsumer):
    """Follows one container's `docker logs`: the last lines, then the stream.

    Operators only: logs can hold secrets. Each panel is one log stream to the engine,
    opened while the panel is open and closed with it; the stream ends (and so does the
    socket, normally) when the container stops. A user follows at most STREAMS_PER_USER
    logs at a time in this process; one more is refused, saying so, rather than closing a
    log the user may be watching in another tab.
    """

    permission = "machines.operate_machine"
    # The panel keeps at most this many lines; older ones are dropped in one swap.
    KEEP = 1000

    def object_exists(self) -> bool:
        self.container = self.route_container()
        return self.container is not None

    def admit(self, user) -> str:
        self.user_id = user.pk
        if log_streams().claim(self.user_id, self):
            return ""
        self.user_id = None
        return self._status(TOO_MANY_STREAMS, ended=True)

    def snapshot(self) -> list[str]:
        return [self._status("following…")]

    async def connect(self) -> None:
        self.follower = None
        await super().connect()
        if self.keepalive_task is None:
            self._release()  # refused
            return
        self.kept: collections.deque[tuple[int, str]] = collections.deque(maxlen=self.KEEP)
        self.seq = 0
        self.since_trim = 0
        self.queue = LineQueue(asyncio.get_running_loop())
        self.follower = self.make_follower(self.queue)
        self.follower.start()
        self.pump_task = asyncio.create_task(self._pump())

    def make_follower(self, queue: LineQueue) -> LogFollower:
        return LogFollower(self.container, LOG_TAIL, queue)

    async def disconnect(self, code: int) -> None:
        self._release()
        if self.follower is not None:
            self.follower.stop()
            self.pump_task.cancel()
        await super().disconnect(code)

    def _release(self) -> None:
        if getattr(self, "user_id", None) is not None:
            log_streams().release(self.user_id, self)
            self.user_id = None

    def _status(self, text: str, ended: bool = False) -> str:
        return render_to_string(
            "machines/containers.html#log_status", {"status": text, "ended": ended, "oob": True}
        )

    async def _pump(self) -> None:
        first = True
        while True:
            await self.queue.wait()
            # A moment for the rest of a burst (the tail comes all at once): one swap for it.
            await asyncio.sleep(0.02)
            # Whatever else has arrived goes in the same message: a burst is one swap.
            lines, ended = self.queue.take(500)
            if lines:
                await self.send(text_data=self._lines(lines, replace=first))
                first = False
            if ended:
                if first:
                    await self.send(text_data=self._lines([], replace=True))
                error = self.queue.error
                why = f"Log stopped: {error}" if error else self.follower.end_reason
                await self.send(text_data=self._status(why, ended=True))
                self._release()
                await self.close()
                return

    def _lines(self, texts: list[str], *, replace: bool) -> str:
        for text in texts:
            self.seq += 1
            self.kept.append((self.seq, ANSI_ESCAPE.sub("", text)))
        self.since_trim += len(texts)
        if replace or self.since_trim > self.KEEP:
            # The first lines, and now and then the whole kept tail: the page never holds
            # more than about twice KEEP lines, without a line of script.
            self.since_trim = 0
            lines, replace = list(self.kept), True
        else:
            lines = list(self.kept)[-len(texts) :]
        return render_to_string(
            "machines/containers.html#container_log_lines", {"lines": lines, "replace": replace}
        )
