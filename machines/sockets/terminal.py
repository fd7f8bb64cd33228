"""Terminals in the browser: a websocket joined to a process with a TTY (containers/terminal.py).

Binary frames carry the terminal's output as the process wrote it (xterm.js decodes UTF-8,
also across frames); text frames from the browser are JSON: {"i": keystrokes} or
{"r": [cols, rows]}; text frames to it are JSON too: {"status": words, "ended": bool}.
Operators open container terminals, admins also a root shell on a machine's host; a socket
of anyone else is refused before it opens. The audit log records each session (who, when,
which program (not its arguments: a command line may carry a password), how long), never what
was typed.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings

from machines.audit import log as audit
from machines.engine.streams.exec import DockerExec
from machines.engine.streams.hostshell import HostShell
from machines.engine.streams.terminal import (
    TOO_MANY_TERMINALS,
    TerminalError,
    TerminalSession,
    clamp_size,
    parse_command,
    terminal_slots,
)
from machines.services import tokens
from machines.sockets import bearer
from machines.sockets.base import CLOSE_FORBIDDEN, LiveConsumer
from machines.templatetags.dashboard import compact_duration

# Keystrokes in one message, at most (a paste is several messages past this).
INPUT_LIMIT = 64 * 1024


def client_address(scope) -> str | None:
    """The browser's address, as dockerdash.throttle finds it for HTTP requests."""
    if settings.BEHIND_PROXY:
        for key, value in scope.get("headers", ()):
            forwarded = value.decode("latin1").rsplit(",", 1)[-1].strip()
            if key.lower() == b"x-forwarded-for" and forwarded:
                return forwarded
    client = scope.get("client")
    return client[0] if client else None


class _TerminalConsumer(LiveConsumer):
    permission = "machines.operate_machine"

    def admit(self, user) -> str:
        self.user_id = user.pk
        if terminal_slots().claim(self.user_id, self):
            return ""
        self.user_id = None
        return json.dumps({"status": TOO_MANY_TERMINALS, "ended": True})

    def snapshot(self) -> list[str]:
        return [json.dumps({"status": "starting…"})]

    async def connect(self) -> None:
        self.session = None
        self.entry = None
        await super().connect()
        if self.keepalive_task is None:
            self._release()  # refused
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        cols, rows = clamp_size(query.get("cols", [80])[-1], query.get("rows", [24])[-1])
        try:
            opener, what = self.opener(query, cols, rows)
        except TerminalError as e:
            await self._status(str(e), ended=True)
            await self.close()
            return
        loop = asyncio.get_running_loop()
        self.session = TerminalSession(self.label(), opener, loop)
        self.entry = await database_sync_to_async(self._record)(what)
        self.session.start()
        self.last_input = loop.time()
        self.pump_task = asyncio.create_task(self._pump())
        self.idle_task = asyncio.create_task(self._idle())

    async def disconnect(self, code: int) -> None:
        self._release()
        if self.session is not None:
            self.session.stop()
            self.pump_task.cancel()
            self.idle_task.cancel()
        if self.entry is not None:
            await database_sync_to_async(self.entry.finish)()
        await super().disconnect(code)

    def _release(self) -> None:
        if getattr(self, "user_id", None) is not None:
            terminal_slots().release(self.user_id, self)
            self.user_id = None

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.session is None or not text_data or len(text_data) > 4 * INPUT_LIMIT:
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if isinstance(keys := message.get("i"), str):
            self.session.write(keys.encode()[:INPUT_LIMIT])
            self.last_input = asyncio.get_running_loop().time()
        elif isinstance(size := message.get("r"), list) and len(size) == 2:
            self.session.resize(*clamp_size(*size))

    async def _status(self, text: str, *, ended: bool = False) -> None:
        await self.send(text_data=json.dumps({"status": text, "ended": ended}))

    async def _pump(self) -> None:
        first = True
        while True:
            await self.session.output.wait()
            data, ended = self.session.output.take()
            if first and (data or not ended):
                first = False
                await self._status("connected")
            if data:
                await self.send(bytes_data=data)
            if ended:
                await self._status(self.session.output.reason, ended=True)
                await self.close()
                return

    async def _idle(self) -> None:
        loop = asyncio.get_running_loop()
        limit = settings.TERMINAL_IDLE_SECONDS
        while (left := limit - (loop.time() - self.last_input)) > 0:
            await asyncio.sleep(left)
        self.pump_task.cancel()
        await self._status(
            f"Closed after {compact_duration(limit)} without a keystroke.", ended=True
        )
        self.session.stop()
        await self.close()

    def _record(self, what: str):
        return audit.record(
            audit.Action.TERMINAL,
            what,
            user=self.scope["user"],
            machine=self.machine,
            target=self.target(),
            address=client_address(self.scope),
            api_token=getattr(self, "api_token", None),
        )


class ContainerTerminalConsumer(_TerminalConsumer):
    """`docker exec -it` into one running container: its shell, or the command asked for."""

    def object_exists(self) -> bool:
        self.container = self.route_container()
        self.machine = self.container.machine if self.container else None
        return self.container is not None

    def label(self) -> str:
        return self.container.container_id[:12]

    def target(self) -> str:
        return self.container.name

    def opener(self, query: dict, cols: int, rows: int):
        argv = parse_command(query.get("cmd", [""])[-1])
        container = self.container
        # The program, not its arguments: a command line may carry a password.
        what = "exec shell"
        if argv:
            what = f"exec {argv[0]}" + (f" with {len(argv) - 1} arguments" if argv[1:] else "")
        return (lambda: DockerExec(container, argv, cols, rows)), what


class HostShellConsumer(_TerminalConsumer):
    """A root shell on a machine's host over its pinned SSH connection: admins only. The
    browser's session, or an admin-scoped API token (`dockerdash ssh`, see sockets/bearer)."""

    permission = "machines.add_machine"
    api_token = None

    async def connect(self) -> None:
        self.secret = bearer.secret_of(self.scope)
        if self.secret is not None:
            address = client_address(self.scope)
            refusal = await database_sync_to_async(bearer.check)(self, self.secret, address)
            if refusal:
                self.session = self.entry = self.keepalive_task = None
                await database_sync_to_async(bearer.refused)(
                    self.scope, self.api_token, refusal, address
                )
                # Accepted only to say why, in one sentence, then closed for good.
                await self.accept()
                await self._status(refusal, ended=True)
                await self.close(code=CLOSE_FORBIDDEN)
                return
        await super().connect()

    def _allowed(self, user) -> bool:
        allowed = super()._allowed(user)
        return allowed and (self.api_token is None or bearer.reaches(self, self.api_token, user))

    def _still_allowed(self) -> bool:
        """A token's socket: the token now (revoked, expired?) and its user's role now."""
        if self.api_token is None:
            return super()._still_allowed()
        try:
            token = tokens.authenticate(self.secret, client_address(self.scope))
        except tokens.TokenError:
            return False
        return self._allowed(token.user)

    def object_exists(self) -> bool:
        self.machine = self.route_machine()
        return self.machine is not None and self.machine.driver_class.provisioned

    def label(self) -> str:
        return f"host-{self.machine.pk}"

    def target(self) -> str:
        return "host"

    def opener(self, query: dict, cols: int, rows: int):
        machine = self.machine
        return (lambda: HostShell(machine, cols, rows)), "root shell on the host"
