"""Websocket consumers: check the user, join a group, send a snapshot, forward changes.

Fragments are rendered in live.py; consumers only choose the rendering the user may see
(and, for container tables, whether a change belongs to the socket's filter). Every socket
sends a snapshot on connect, so a reconnect loses nothing, and a keepalive every
KEEPALIVE seconds, so proxies do not cut idle sockets; with each keepalive the user's
session and role are checked again, so a logout or a lost role ends the socket too.
"""

from __future__ import annotations

import asyncio
import collections
import re
from types import SimpleNamespace
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib import auth
from django.template.loader import render_to_string
from django.utils.module_loading import import_string

from . import audit, live
from .containers import LOG_TAIL, TOO_MANY_STREAMS, LineQueue, LogFollower, log_streams
from .forms import ContainerFilterForm
from .live.hub import local_groups
from .models import Container, Machine, Operation

KEEPALIVE = getattr(settings, "WEBSOCKET_KEEPALIVE", 25)
# htmx ignores a message without elements: a comment is a ping for proxies, nothing more.
PING = "<!-- keepalive -->"
# Close codes htmx's ws extension does not reconnect after.
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_MANY = 4429


class _LiveConsumer(AsyncWebsocketConsumer):
    permission = "machines.view_machine"
    # No channel of its own: changes come through this process's hub (live.hub.LocalGroups).
    channel_layer_alias = None

    async def connect(self) -> None:
        self.keepalive_task = None
        self.groups_joined: list[str] = []
        self.ready = False
        self.pending: list[dict] = []
        user = self.scope.get("user")
        allowed = database_sync_to_async(self._allowed)
        if not (user and user.is_authenticated and await allowed(user)):
            await database_sync_to_async(audit.record_socket_refusal)(self.scope, user)
            await self.close()
            return
        if refusal := self.admit(user):
            # Said on the page, with a close code htmx does not reconnect after.
            await self.accept()
            await self.send(text_data=refusal)
            await self.close(code=CLOSE_TOO_MANY)
            return
        # Join first, then take the snapshot: changes that come meanwhile wait in `pending`.
        self.groups_joined = self.groups_for()
        if self.groups_joined:
            await local_groups().join(self, self.groups_joined)
        await self.accept()
        # Snapshot on every connect: whatever was sent while disconnected is not lost.
        for frame in await database_sync_to_async(self.snapshot)():
            await self.send(text_data=frame)
        while self.pending:
            await self._handle(self.pending.pop(0))
        self.ready = True
        self.keepalive_task = asyncio.create_task(self._keep_alive())

    async def deliver(self, event: dict) -> None:
        if self.ready:
            await self._handle(event)
        else:
            self.pending.append(event)

    async def _handle(self, event: dict) -> None:
        await getattr(self, get_handler_name(event))(event)

    def _allowed(self, user) -> bool:
        self.can_operate = user.has_perm("machines.operate_machine")
        self.can_admin = user.has_perm("machines.add_machine")
        return user.has_perm(self.permission) and self.object_exists()

    def _still_allowed(self) -> bool:
        """The session's user now (not as at connect): logged out, deactivated, demoted?"""
        session_key = getattr(self.scope.get("session"), "session_key", None)
        if not session_key:
            return False
        store = import_string(f"{settings.SESSION_ENGINE}.SessionStore")(session_key)
        user = auth.get_user(SimpleNamespace(session=store))
        return user.is_authenticated and self._allowed(user)

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE)
            if not await database_sync_to_async(self._still_allowed)():
                await self.close(code=CLOSE_FORBIDDEN)
                return
            await self.send(text_data=PING)

    def object_exists(self) -> bool:
        return True

    def admit(self, user) -> str:
        """A frame saying why this socket is refused, or "" to let it in (no ORM here)."""
        return ""

    async def disconnect(self, code: int) -> None:
        if getattr(self, "keepalive_task", None):
            self.keepalive_task.cancel()
        if getattr(self, "groups_joined", None):
            await local_groups().leave(self, self.groups_joined)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        # Actions go through POST views (with CSRF and role checks); the socket only listens.
        return None

    def groups_for(self) -> list[str]:
        return []

    def snapshot(self) -> list[str]:
        """The frames that bring a page up to date (see live._row_event on frames)."""
        raise NotImplementedError

    def render(self, template: str, context: dict) -> str:
        roles = {"can_operate": self.can_operate, "can_admin": self.can_admin}
        return render_to_string(template, {**context, **roles})

    async def _forward(self, event: dict) -> None:
        await self.send(text_data=self.pick(event))

    # Rows: the snapshot puts rows on the page and the consumer remembers which, so each
    # change is an insertion, a replacement or a deletion, and rows the page does not show
    # cost nothing. A paginated table takes new rows only while its page has room.
    rows_shown: set[str]
    room: int | None = None  # None: no limit

    def wants(self, event: dict) -> bool:
        return True

    async def _forward_row(self, event: dict) -> None:
        row = event["row"]
        if event.get("deleted") or not self.wants(event):
            if row in self.rows_shown:
                self.rows_shown.discard(row)
                if self.room is not None:
                    self.room += 1
                await self.send(text_data=event["html_gone"])
            return
        if row in self.rows_shown:
            await self.send(text_data=self.pick(event))
        elif self.room is None or self.room > 0:
            self.rows_shown.add(row)
            if self.room is not None:
                self.room -= 1
            await self.send(text_data=self.pick(event, "insert_"))

    def pick(self, event: dict, prefix: str = "") -> str:
        if self.can_admin and event.get(f"{prefix}html_admin"):
            return event[f"{prefix}html_admin"]
        if self.can_operate and event.get(f"{prefix}html_operator"):
            return event[f"{prefix}html_operator"]
        return event[f"{prefix}html"]

    machine_changed = _forward
    operation_changed = _forward
    operation_log = _forward
    containers_changed = _forward_row
    containers_notice = _forward


class MachineConsumer(_LiveConsumer):
    """A machine's page: its summary, connect panel and operations (not its containers)."""

    def object_exists(self) -> bool:
        self.machine_id = self.scope["url_route"]["kwargs"]["machine_id"]
        return Machine.objects.filter(pk=self.machine_id).exists()

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


class OperationConsumer(_LiveConsumer):
    """One operation's log: what exists, then each line as it is written, until it ends."""

    def object_exists(self) -> bool:
        self.operation_id = self.scope["url_route"]["kwargs"]["operation_id"]
        return Operation.objects.filter(pk=self.operation_id).exists()

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


class _ContainersConsumer(_LiveConsumer):
    """A container table, following the filter in the socket's query string."""

    fleet = False

    def _allowed(self, user) -> bool:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.filter = ContainerFilterForm({k: v[-1] for k, v in query.items()})
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
        machine_id = self.scope["url_route"]["kwargs"]["machine_id"]
        self.machine = Machine.objects.filter(pk=machine_id).first()
        return self.machine is not None

    def groups_for(self) -> list[str]:
        return [live.containers_group(self.machine.pk)]


class FleetConsumer(_ContainersConsumer):
    fleet = True

    def groups_for(self) -> list[str]:
        return [live.FLEET]


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class ContainerLogConsumer(_LiveConsumer):
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
        kwargs = self.scope["url_route"]["kwargs"]
        self.container = (
            Container.objects.select_related("machine__driver")
            .filter(machine_id=kwargs["machine_id"], container_id=kwargs["container_id"])
            .first()
        )
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
        self.follower = LogFollower(self.container, LOG_TAIL, self.queue)
        self.follower.start()
        self.pump_task = asyncio.create_task(self._pump())

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
