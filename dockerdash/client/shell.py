"""`dockerdash ssh MACHINE` from a laptop: the machine's admin root shell through the
dashboard's terminal websocket, with the API token in the handshake. The machine's private
key never leaves the server; this end only carries keystrokes and output.

On a TTY the local terminal goes raw (every key to the host, Ctrl-C included) and follows
window resizes; otherwise standard input is sent as it comes (`echo 'uname -n; exit' |
dockerdash ssh web-1`) and output is printed until the shell ends."""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import selectors
import signal
import sys
from urllib.parse import urlsplit

from dockerdash.client.api import Api, ClientError
from dockerdash.client.websocket import BINARY, CLOSE, TEXT, WebSocket


def socket_url(api: Api, machine_id: int, cols: int, rows: int) -> str:
    parts = urlsplit(api.base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    prefix = parts.path.removesuffix("/api/v1")
    return (
        f"{scheme}://{parts.netloc}{prefix}/ws/machines/{machine_id}/shell/?cols={cols}&rows={rows}"
    )


def _size(fd: int) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 80, 24
    # A terminal that does not know its size (0x0) gets the classic one.
    return size.columns or 80, size.lines or 24


def ssh(api: Api, name: str) -> int:
    machine = api.machine(name)  # "Host does not exist" in the API's words
    tty = os.isatty(sys.stdin.fileno()) and os.isatty(sys.stdout.fileno())
    cols, rows = _size(sys.stdout.fileno())
    ws = WebSocket(
        socket_url(api, machine["id"], cols, rows), {"Authorization": f"Bearer {api.token}"}
    )
    try:
        with _raw(tty):
            return _session(ws, tty)
    finally:
        ws.shutdown()


@contextlib.contextmanager
def _raw(tty: bool):
    if not tty:
        yield
        return
    import termios
    import tty as ttymode

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    ttymode.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _session(ws: WebSocket, tty: bool) -> int:
    """Pump keystrokes to the socket and output to the terminal until the shell ends."""
    state = {"connected": False, "reason": "", "resized": False}
    if tty:
        signal.signal(signal.SIGWINCH, lambda *_: state.update(resized=True))
    stdin, out = sys.stdin.fileno(), sys.stdout.buffer
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    selector = selectors.DefaultSelector()
    selector.register(ws, selectors.EVENT_READ, "socket")
    selector.register(stdin, selectors.EVENT_READ, "keys")
    while True:
        if state["resized"]:
            state["resized"] = False
            ws.send_text(json.dumps({"r": list(_size(sys.stdout.fileno()))}))
        ready = [("socket", None)] if ws.pending() else selector.select(timeout=1)
        for key, _ in ready:
            if (key if isinstance(key, str) else key.data) == "keys":
                data = os.read(stdin, 65536)
                if not data:  # a pipe ran dry: the shell goes on until it exits
                    selector.unregister(stdin)
                    continue
                ws.send_text(json.dumps({"i": decoder.decode(data)}))
                continue
            for opcode, payload in ws.read():
                if opcode == BINARY:
                    out.write(payload)
                    out.flush()
                elif opcode == TEXT:
                    _status(json.loads(payload), state)
                elif opcode == CLOSE:
                    return _ended(state, tty)


def _status(message: dict, state: dict) -> None:
    text = message.get("status", "")
    if text == "connected":
        state["connected"] = True
    elif message.get("ended"):
        state["reason"] = text


def _ended(state: dict, tty: bool) -> int:
    if not state["connected"]:
        raise ClientError(state["reason"] or "The server refused the shell.")
    if state["reason"] and tty:
        print(f"\r\n{state['reason']}", file=sys.stderr, end="\r\n")  # still raw here
    return 0
