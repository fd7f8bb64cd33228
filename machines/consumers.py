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
import contextlib
import logging
import re
import threading
import weakref
from types import SimpleNamespace
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib import auth
from django.template.loader import render_to_string
from django.utils.module_loading import import_string

from . import live
from .forms import ContainerFilterForm
from .models import Container, Machine, Operation

log = logging.getLogger(__name__)

KEEPALIVE = getattr(settings, "WEBSOCKET_KEEPALIVE", 25)
# htmx ignores a message without elements: a comment is a ping for proxies, nothing more.
PING = "<!-- keepalive -->"
# Close codes htmx's ws extension does not reconnect after.
CLOSE_FORBIDDEN = 4403
# A container's log panel starts with this many of its last lines.
LOG_TAIL = 200


class LocalGroups:
    """This process's sockets by group, each group joined once on the channel layer.

    With a membership per socket, one change for 500 sockets of a page is 500 messages, and
    the in-memory layer sweeps every channel and membership on each receive (500 x 500):
    about 300 ms on two cores. Joined once per process, a change arrives once and is handed
    to the local sockets in one loop, in order. Layers drop memberships (after a day, or when
    a message waited past its expiry); they are renewed every minute.
    """

    RENEW_EVERY = 60

    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.members: dict[str, set[_LiveConsumer]] = {}
        self.lock = asyncio.Lock()
        self.channel = ""
        self.tasks: list[asyncio.Task] = []

    async def join(self, consumer: _LiveConsumer, groups: list[str]) -> None:
        async with self.lock:
            if not self.channel:
                self.channel = await self.layer.new_channel("sockets.")
                # Held here: the loop keeps only weak references to tasks.
                self.tasks = [
                    asyncio.create_task(self._relay()),
                    asyncio.create_task(self._renew()),
                ]
            for group in groups:
                members = self.members.setdefault(group, set())
                if not members:
                    await self.layer.group_add(group, self.channel)
                members.add(consumer)

    async def leave(self, consumer: _LiveConsumer, groups: list[str]) -> None:
        async with self.lock:
            for group in groups:
                members = self.members.get(group, set())
                members.discard(consumer)
                if not members and self.members.pop(group, None) is not None:
                    await self.layer.group_discard(group, self.channel)

    async def _relay(self) -> None:
        while True:
            try:
                event = await self.layer.receive(self.channel)
            except Exception:
                log.exception("Receiving live changes failed; retrying")
                await asyncio.sleep(1)
                continue
            for consumer in list(self.members.get(event.get("group"), ())):
                try:
                    await consumer.deliver(event)
                except Exception:
                    log.exception("Forwarding %s failed", event.get("type"))

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.RENEW_EVERY)
            async with self.lock:
                for group in self.members:
                    await self.layer.group_add(group, self.channel)


_local_groups: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def local_groups() -> LocalGroups:
    """The hub of the running event loop (one per process; tests run several loops)."""
    loop = asyncio.get_running_loop()
    if loop not in _local_groups:
        _local_groups[loop] = LocalGroups()
    return _local_groups[loop]


class _LiveConsumer(AsyncWebsocketConsumer):
    permission = "machines.view_machine"
    # No channel of its own: changes come through this process's LocalGroups.
    channel_layer_alias = None

    async def connect(self) -> None:
        self.keepalive_task = None
        self.groups_joined: list[str] = []
        self.ready = False
        self.pending: list[dict] = []
        user = self.scope.get("user")
        if not (user and user.is_authenticated):
            await self.close()
            return
        if not await database_sync_to_async(self._allowed)(user):
            await self.close()
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
    # cost nothing.
    rows_shown: set[str]

    def wants(self, event: dict) -> bool:
        return True

    async def _forward_row(self, event: dict) -> None:
        row = event["row"]
        if event.get("deleted") or not self.wants(event):
            if row in self.rows_shown:
                self.rows_shown.discard(row)
                await self.send(text_data=event["html_gone"])
            return
        if row in self.rows_shown:
            await self.send(text_data=self.pick(event))
        else:
            self.rows_shown.add(row)
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


class MachineListConsumer(_LiveConsumer):
    machine_changed = _LiveConsumer._forward_row

    def groups_for(self) -> list[str]:
        return [live.MACHINES]

    def snapshot(self) -> list[str]:
        machines = list(Machine.objects.select_related("driver").order_by("name"))
        self.rows_shown = {f"machine-{m.pk}" for m in machines}
        return [self.render("machines/list.html#machine_rows_oob", {"machines": machines})]


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
        containers = list(self.filter.rows(getattr(self, "machine", None)))
        self.rows_shown = {f"container-{c.pk}" for c in containers}
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
    socket, normally) when the container stops.
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

    def snapshot(self) -> list[str]:
        return [self._status("following…")]

    async def connect(self) -> None:
        self.follower = None
        await super().connect()
        if self.keepalive_task is None:
            return  # refused
        self.kept: collections.deque[tuple[int, str]] = collections.deque(maxlen=self.KEEP)
        self.seq = 0
        self.since_trim = 0
        self.queue: asyncio.Queue = asyncio.Queue()
        self.follower = LogFollower(
            self.container, LOG_TAIL, asyncio.get_running_loop(), self.queue
        )
        self.follower.start()
        self.pump_task = asyncio.create_task(self._pump())

    async def disconnect(self, code: int) -> None:
        if self.follower is not None:
            self.follower.stop()
            self.pump_task.cancel()
        await super().disconnect(code)

    def _status(self, text: str, ended: bool = False) -> str:
        return render_to_string(
            "machines/containers.html#log_status", {"status": text, "ended": ended, "oob": True}
        )

    async def _pump(self) -> None:
        first = True
        while True:
            item = await self.queue.get()
            # A moment for the rest of a burst (the tail comes all at once): one swap for it.
            await asyncio.sleep(0.02)
            lines: list[str] = []
            # Whatever else has arrived goes in the same message: a burst is one swap.
            while item is not None and not isinstance(item, Exception):
                lines.append(item)
                if self.queue.empty() or len(lines) >= 500:
                    break
                item = self.queue.get_nowait()
            if lines:
                await self.send(text_data=self._lines(lines, replace=first))
                first = False
            if item is None or isinstance(item, Exception):
                if first:
                    await self.send(text_data=self._lines([], replace=True))
                if isinstance(item, Exception):
                    await self.send(text_data=self._status(f"Log stopped: {item}", ended=True))
                else:
                    await self.send(text_data=self._status(self.follower.end_reason, ended=True))
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


class LogFollower(threading.Thread):
    """Reads `docker logs --follow --tail N` in a thread and hands lines to the event loop."""

    def __init__(self, container: Container, tail: int, loop, queue: asyncio.Queue) -> None:
        super().__init__(daemon=True, name=f"logs-{container.container_id[:12]}")
        self.container = container
        self.tail = tail
        self.loop = loop
        self.queue = queue
        self.stopping = threading.Event()
        self.stream = None
        self.client = None
        self.end_reason = "The container is not running: the log ends here."

    def _put(self, item) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def stop(self) -> None:
        self.stopping.set()
        for closable in (self.stream, self.client):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()

    def run(self) -> None:
        from django.db import close_old_connections

        from .engines import client_for_machine

        try:
            self.client = client_for_machine(self.container.machine, timeout=10)
            state = self.client.api.inspect_container(self.container.container_id)["State"]
            if state.get("Running"):
                self.end_reason = "The container stopped: the log ends here."
            # A quiet container may say nothing for hours: no read timeout on the stream.
            self.client.api.timeout = None
            self.stream = self.client.api.logs(
                self.container.container_id, stream=True, follow=True, tail=self.tail
            )
            partial = b""
            for chunk in self.stream:
                if self.stopping.is_set():
                    return
                *lines, partial = (partial + chunk).split(b"\n")
                for line in lines:
                    self._put(line.decode(errors="replace").rstrip("\r"))
            if partial:
                self._put(partial.decode(errors="replace"))
            self._put(None)
        except Exception as e:
            if not self.stopping.is_set():
                log.info("Following the log of %s failed: %s", self.container, e)
                self._put(Exception(getattr(e, "explanation", None) or e.__class__.__name__))
        finally:
            if self.client is not None:
                with contextlib.suppress(Exception):
                    self.client.close()
            close_old_connections()
