"""Terminals over websockets (WebsocketCommunicator) into real containers of the test engine:
a shell or a command with a TTY, keystrokes, resize, UTF-8, the end of the process, of the
container, of the socket, the idle timeout, roles, and the audit log's record of it."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async

from machines.models import AuditEntry

from .inside import Screen
from .sockets import communicator, connect
from .tinyimage import TINY, tiny_image_tar

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.engine]


def _path(row, command: str = "", size: str = "cols=100&rows=30") -> str:
    query = f"?{size}" + (f"&cmd={command}" if command else "")
    return f"/ws/machines/{row.machine_id}/containers/{row.container_id}/terminal/{query}"


def _processes(container) -> str:
    return container.exec_run(["ps", "-eo", "pid,sid,comm"]).output.decode()


async def test_a_shell_echoes_keystrokes_in_utf8_and_follows_resizes(engine_container, operator):
    row, _container = await sync_to_async(engine_container)()
    screen = Screen(await connect(operator, _path(row)))
    # bash is there: its prompt, at the size the browser asked for.
    await screen.read_until(lambda s: "# " in s.text)
    await screen.type("echo caf\u00e9 $((6*7)); stty size\r")
    await screen.read_until(lambda s: re.search(r"café 42\r\n30 100\r\n", s.text))
    await screen.resize(132, 43)
    await screen.type("stty size\r")
    await screen.read_until(lambda s: "43 132\r\n" in s.text)
    assert {"status": "connected", "ended": False} in screen.statuses

    await screen.type("exit 3\r")
    await screen.read_until(lambda s: s.closed)
    assert screen.ended() == "The process exited with status 3."


async def test_closing_the_terminal_hangs_up_everything_it_started(engine_container, operator):
    row, container = await sync_to_async(engine_container)()
    socket = await connect(operator, _path(row))
    screen = Screen(socket)
    await screen.read_until(lambda s: "# " in s.text)
    await screen.type("sleep 1234 & sleep 4321\r")
    await screen.read_until(lambda s: "[1]" in s.text)
    before = await sync_to_async(_processes)(container)
    assert "bash" in before and before.count("sleep") == 3  # the container's own, and two
    await socket.disconnect()

    def hung_up() -> bool:
        return _processes(container).count("sleep") == 1 and "bash" not in _processes(container)

    from .helpers import wait_until

    await sync_to_async(wait_until)(hung_up, timeout=15)


async def test_a_command_runs_instead_of_the_shell_and_its_end_closes_the_socket(
    engine_container, operator
):
    row, _ = await sync_to_async(engine_container)()
    screen = Screen(await connect(operator, _path(row, "sh%20-c%20%27tty%3B%20exit%207%27")))
    await screen.read_until(lambda s: s.closed)
    assert "/dev/pts/" in screen.text
    assert screen.ended() == "The process exited with status 7."
    # The audit log names the program, not its arguments (they may hold a password).
    entry = await sync_to_async(AuditEntry.objects.get)(action="terminal")
    assert entry.what == "exec sh with 2 arguments"


async def test_a_stopped_container_ends_its_terminal(engine_container, operator):
    row, container = await sync_to_async(engine_container)()
    screen = Screen(await connect(operator, _path(row)))
    await screen.read_until(lambda s: "# " in s.text)
    await sync_to_async(container.kill)()
    await screen.read_until(lambda s: s.closed)
    assert screen.ended() == f"{row.name} stopped: the terminal is closed."


async def test_a_container_without_a_shell_runs_a_command_but_not_a_shell(
    engine_container, parent, operator
):
    def load_tiny():
        repository, tag = TINY.split(":")
        parent.api.import_image_from_data(tiny_image_tar(), repository=repository, tag=tag)
        return engine_container("/bin/sleep 600", image=TINY)

    row, _ = await sync_to_async(load_tiny)()
    screen = Screen(await connect(operator, _path(row)))
    await screen.read_until(lambda s: s.closed)
    assert screen.ended() == f"{row.name} has no shell (sh): give a command to run instead."

    screen = Screen(await connect(operator, _path(row, "/bin/true")))
    await screen.read_until(lambda s: s.closed)
    assert screen.ended() == "The process exited with status 0."


async def test_an_idle_terminal_is_closed(engine_container, operator, settings):
    settings.TERMINAL_IDLE_SECONDS = 1
    row, _ = await sync_to_async(engine_container)()
    screen = Screen(await connect(operator, _path(row)))
    await screen.read_until(lambda s: s.closed)
    assert screen.ended() == "Closed after 1 s without a keystroke."


async def test_viewers_get_no_terminal_and_bad_commands_are_refused(
    engine_container, viewer, operator
):
    row, _ = await sync_to_async(engine_container)()
    socket = await communicator(viewer, _path(row))
    connected, _ = await socket.connect()
    assert not connected

    screen = Screen(await connect(operator, _path(row, "echo%20%27unclosed")))
    await screen.read_until(lambda s: s.closed)
    assert screen.ended() == "This is not a command line: No closing quotation."


async def test_each_session_is_in_the_audit_log_without_what_was_typed(engine_container, operator):
    row, _ = await sync_to_async(engine_container)()
    socket = await connect(operator, _path(row))
    screen = Screen(socket)
    await screen.read_until(lambda s: "# " in s.text)
    await screen.type("echo s3cret-typed\r")
    await screen.read_until(lambda s: "s3cret-typed\r\n" in s.text)
    await socket.disconnect()

    entry = await sync_to_async(AuditEntry.objects.get)(action="terminal")
    assert (entry.username, entry.what, entry.target) == ("operator", "exec shell", row.name)
    assert entry.machine_name == (await sync_to_async(lambda: row.machine.name)())
    assert entry.ended_at is not None and entry.duration.total_seconds() >= 0
    assert "s3cret" not in str(await sync_to_async(lambda: list(AuditEntry.objects.values()))())
