"""Websocket consumers: check the user, join a group, send a snapshot, forward changes.

Fragments are rendered in live.py; consumers only choose the rendering the user may see
(and, for container tables, whether a change belongs to the socket's filter). Every socket
sends a snapshot on connect, so a reconnect loses nothing, and a keepalive every
KEEPALIVE seconds, so proxies do not cut idle sockets; with each keepalive the user's
session and role are checked again, so a logout or a lost role ends the socket too.
LiveConsumer is that base, for every socket of every area.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib import auth
from django.template.loader import render_to_string
from django.utils.module_loading import import_string

from machines.audit import log as audit
from machines.live.hub import local_groups
from machines.models import Container, Machine
from machines.services import rights
from machines.services.rights import roles_of

KEEPALIVE = getattr(settings, "WEBSOCKET_KEEPALIVE", 25)
# htmx ignores a message without elements: a comment is a ping for proxies, nothing more.
PING = "<!-- keepalive -->"
# Close codes htmx's ws extension does not reconnect after.
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_MANY = 4429


class LiveConsumer(AsyncWebsocketConsumer):
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
        # Rechecked on every keepalive with the user as now: a team left, a role lost.
        self.user = user
        self.route_machine_found = None
        # Read here (a thread that may query) so that pushes check them without the ORM.
        rights.global_role(user), rights.grants(user)
        if not (user.has_perm(self.permission) and self.object_exists()):
            return False
        machine = self.route_machine_found
        if machine is not None and not rights.allowed_on(user, machine, self.permission):
            return False
        self.roles = roles_of(user, machine)
        return True

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

    def route_machine(self) -> Machine | None:
        """The machine named by the socket's URL (with its driver), if it exists."""
        machine_id = self.scope["url_route"]["kwargs"]["machine_id"]
        machines = rights.visible_machines(self.user, Machine.objects.select_related("driver"))
        self.route_machine_found = machines.filter(pk=machine_id).first()
        return self.route_machine_found

    def route_container(self) -> Container | None:
        """The container of a machine named by the socket's URL, if it exists."""
        kwargs = self.scope["url_route"]["kwargs"]
        if self.route_machine() is None:
            return None
        return (
            Container.objects.select_related("machine__driver")
            .filter(machine_id=kwargs["machine_id"], container_id=kwargs["container_id"])
            .first()
        )

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
        return render_to_string(template, {**context, **self.roles})

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
        admin = f"{prefix}html_admin" if self.roles["can_create"] else f"{prefix}html_team_admin"
        if self.roles["can_admin"] and event.get(admin):
            return event[admin]
        if self.roles["can_operate"] and event.get(f"{prefix}html_operator"):
            return event[f"{prefix}html_operator"]
        return event[f"{prefix}html"]

    machine_changed = _forward
    operation_changed = _forward
    operation_log = _forward
    containers_changed = _forward_row
    containers_notice = _forward
