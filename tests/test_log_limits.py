"""Logs are bounded whatever a container or a host prints: a container's log socket cuts long
lines, drops what its page cannot keep up with (saying so), and one user follows at most a
few logs at once; an operation's log cuts long lines of remote output and keeps at most so
many lines of it per step."""

from __future__ import annotations

import http.server
import struct
import threading
import time
import tracemalloc

import pytest
from asgiref.sync import sync_to_async

from machines.drivers.container.driver import NETWORK
from machines.engine.streams import logs as containers
from machines.lib.hostimage import BARE_HOST_IMAGE
from machines.models import LOG_LINE_BYTES, Operation
from machines.operations import steps

from .fleet import boot_host, make_machine, run_operation
from .sockets import connect, follower_of

pytestmark = pytest.mark.django_db(transaction=True)

# A container that says "ready", then prints the rest once the test is ready for it
# (`touch /tmp/go` by exec): its log socket then follows the stream, past the tail.
WAIT_FOR_GO = "echo ready; while [ ! -e /tmp/go ]; do sleep 0.1; done; "


def _go(running) -> None:
    assert running.exec_run(["touch", "/tmp/go"]).exit_code == 0


async def _lines_until(socket, needle: str) -> str:
    """Every frame's text until one holds `needle`."""
    texts = []
    while True:
        texts.append(await socket.receive_from(timeout=60))
        if needle in texts[-1]:
            return "".join(texts)


# -- a container's log socket --------------------------------------------------------------


def test_a_line_is_cut_once_wherever_the_reads_split_it():
    cutter = containers.LineCutter(limit=8)
    assert cutter.feed(b"short\nsplit ") == ["short"]
    assert cutter.feed(b"here\r\n") == ["split he … [line cut at 8 bytes]"]
    # The rest of a cut line is skipped up to its newline, however many reads it takes.
    assert cutter.feed(b"0123456789") == ["01234567 … [line cut at 8 bytes]"]
    assert cutter.feed(b"more of the same line") == []
    assert cutter.feed(b"still\nnext\nlast") == ["next"]
    assert cutter.end() == ["last"]
    assert len(cutter.partial) <= 8


def test_docker_frames_give_the_same_bytes_however_the_reads_split_them():
    payloads = [b"one\n", b"", b"two and a half", b"\nthree\n" * 1000]
    stream = b"".join(struct.pack(">BxxxL", 1 + i % 2, len(p)) + p for i, p in enumerate(payloads))
    for size in (1, 3, 8, 9, 4096, len(stream)):
        demux = containers.Demux()
        pieces = [demux.feed(stream[i : i + size]) for i in range(0, len(stream), size)]
        assert b"".join(b for piece in pieces for b in piece) == b"".join(payloads)
        # Never more than one read's worth held: a frame's length is the engine's to say.
        assert all(len(b) <= size for piece in pieces for b in piece)


@pytest.mark.engine
async def test_a_huge_line_without_newline_is_cut_and_memory_stays_bounded(operator, log_of):
    megabytes = 32
    script = (
        f"{WAIT_FOR_GO}head -c {megabytes * 1024 * 1024} /dev/zero | tr '\\0' x; "
        "echo; echo next; sleep 600"
    )
    running, path = await sync_to_async(log_of)(script)
    socket = await connect(operator, path)
    await _lines_until(socket, ">ready<")
    tracemalloc.start()
    try:
        await sync_to_async(_go)(running)
        text = await _lines_until(socket, ">next<")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    limit = containers.LINE_LIMIT
    assert f'<li id="clog-2">{"x" * limit} … [line cut at {limit} bytes]</li>' in text
    assert '<li id="clog-3">next</li>' in text
    # Everything the 32 MiB line went through here (reads, the cutter, the socket) held a
    # small part of it at a time.
    assert peak < 8 * 1024 * 1024, f"{peak / 2**20:.1f} MiB at the peak"
    await socket.disconnect()


@pytest.mark.engine
async def test_a_flood_the_page_cannot_keep_up_with_is_dropped_and_said_so(operator, log_of):
    """The page's task does not run while this test holds the event loop (as when the server
    is too busy to pass lines on): the follower keeps reading, never waits, and drops what
    does not fit in the socket's queue."""
    flood = 20_000
    running, path = await sync_to_async(log_of)(f"{WAIT_FOR_GO}seq 1 {flood}; sleep 600")
    socket = await connect(operator, path)
    await _lines_until(socket, ">ready<")
    follower = await follower_of(running.id)
    _go(running)  # from here until the flood is read, the loop is held on purpose
    deadline = time.monotonic() + 120
    while follower.queue.dropped < flood - containers.QUEUE_LINES:
        assert time.monotonic() < deadline, f"{follower.queue.dropped} lines dropped"
        time.sleep(0.05)
    text = await _lines_until(socket, "dropped")
    # The queue's lines, in order, then one line for what was left out.
    kept = containers.QUEUE_LINES
    assert ">1<" in text and f">{kept}<" in text and f">{kept + 1}<" not in text
    dropped = flood - kept
    assert f">… {dropped} lines dropped: the browser could not keep up</li>" in text
    assert follower.is_alive()
    await socket.disconnect()


@pytest.mark.engine
async def test_one_user_follows_at_most_eight_logs_at_once(operator, admin_user, log_of):
    _, path = await sync_to_async(log_of)("echo hello; sleep 600")
    sockets = []
    for _ in range(containers.STREAMS_PER_USER):
        sockets.append(await connect(operator, path))
        assert "following" in await sockets[-1].receive_from()
    # One more: told why on the page, and closed with a code htmx does not reconnect after.
    ninth = await connect(operator, path)
    status = await ninth.receive_from()
    assert 'id="container-log-status" class="progress ended"' in status
    assert "Not following: you have 8 container logs open already." in status
    assert await ninth.receive_output() == {"type": "websocket.close", "code": 4429}
    await ninth.disconnect()
    # Another user is not affected.
    other = await connect(admin_user, path)
    assert "following" in await other.receive_from()
    await other.disconnect()
    # Closing one makes room.
    await sockets.pop().disconnect()
    again = await connect(operator, path)
    assert "following" in await again.receive_from()
    for socket in [*sockets, again]:
        await socket.disconnect()


# -- an operation's log ----------------------------------------------------------------------


class _Script(http.server.BaseHTTPRequestHandler):
    """Serves the "install script" a host fetches (hosts reach no other site here)."""

    body = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def install_script(parent):
    """A factory: the URL of a shell script served to the test fleet's hosts."""
    gateway = parent.networks.get(NETWORK).attrs["IPAM"]["Config"][0]["Gateway"]
    server = http.server.ThreadingHTTPServer((gateway, 0), _Script)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def serve(body: str) -> str:
        _Script.body = body.encode()
        return f"http://{gateway}:{server.server_address[1]}/install.sh"

    yield serve
    server.shutdown()
    server.server_close()


@pytest.mark.engine
def test_remote_output_is_cut_per_line_and_per_step_in_the_operation_log(
    new_machine, install_script
):
    host = boot_host(new_machine, image=BARE_HOST_IMAGE)
    flood = steps.OUTPUT_LINES + 1000
    machine = make_machine(
        name=f"g-{host.name}",
        ip=host.ip,
        ssh_private_key=host.ssh_private_key,
        engine_install_url=install_script(
            f"head -c {100 * 1024} /dev/zero | tr '\\0' x; echo; seq 2 {flood}; exit 3\n"
        ),
    )
    op = run_operation(machine, Operation.Kind.CREATE)
    assert op.status == Operation.Status.FAILED
    assert op.error.endswith(str(flood))
    lines = list(op.log_lines.filter(step="Install Docker").values_list("text", flat=True))
    limit = LOG_LINE_BYTES
    # Command output is indented by two spaces, which count.
    assert f"  {'x' * (limit - 2)} … [line cut at {limit} bytes]" in lines
    kept = steps.OUTPUT_LINES
    assert f"  {kept}" in lines and f"  {kept + 1}" not in lines
    cut = f"… output cut after {kept} lines in this step: the rest is not kept"
    assert lines.count(cut) == 1
    assert lines[-1].startswith("Failed: Installing Docker")
    assert all(len(text.encode()) <= limit + 40 for text in lines)
