"""`docker exec -it` into a running container, as a terminal backend (see terminal.py).

The command runs under a tiny `sh` wrapper that first prints its process ID in an escape
sequence (taken out of the output here). Docker has no way to end an exec'd process, and
closing the connection leaves it running; knowing its PID, closing the terminal hangs up
its session as a terminal emulator's close would (SIGHUP to each of its processes, SIGKILL
two seconds later to those still holding the terminal). A container without `sh` runs the
command itself, which then outlives a closed terminal.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import time

import docker.errors
import requests

from machines.engine.clients import EngineError, client_for_machine
from machines.engine.streams.terminal import TerminalError
from machines.models import Container

PID_MARK = re.compile(rb"\x1b\]dockerdash-pid;(\d+)\x07")
_MARK = r'printf "\033]dockerdash-pid;%s\007" "$$"'
# The shell: bash where there is one, else sh.
SHELL = f"{_MARK}; if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh"
COMMAND = f'{_MARK}; exec "$@"'
# Hangs up the session whose leader is $1: what closing a terminal does.
HANGUP = r"""p=$1
for f in /proc/[0-9]*/stat; do
  read -r line < "$f" 2>/dev/null || continue
  set -- ${line##*) }
  q=${f%/stat}; q=${q#/proc/}
  [ "$4" = "$p" ] && kill -HUP "$q" 2>/dev/null
done
sleep 2
if read -r line < "/proc/$p/stat" 2>/dev/null; then
  set -- ${line##*) }
  [ "$6" -gt 0 ] 2>/dev/null && kill -KILL -"$6" 2>/dev/null
  kill -KILL "$p" 2>/dev/null
fi
true"""
NO_SH = b"executable file not found"
IO_TIMEOUT = 10


def _api_error(e: Exception) -> TerminalError:
    if isinstance(e, docker.errors.APIError):
        return TerminalError(f"The engine refused: {e.explanation or e}")
    if isinstance(e, EngineError):
        return TerminalError(str(e))
    return TerminalError(f"The engine did not answer ({e.__class__.__name__}).")


class DockerExec:
    """A command (or the container's shell) running with a TTY in a container."""

    def __init__(self, container: Container, argv: list[str], cols: int, rows: int) -> None:
        self.container = container
        self.argv = argv
        self.pid: int | None = None
        self.sock = None
        self.response = None
        self.first = b""
        self.exec_id = ""
        self.client = None
        try:
            self.client = client_for_machine(container.machine, timeout=IO_TIMEOUT)
            self.api = self.client.api
            self._start()
            self.resize(cols, rows)
        except (docker.errors.DockerException, requests.RequestException, EngineError) as e:
            self.close()
            raise _api_error(e) from None
        except BaseException:
            self.close()
            raise

    @property
    def description(self) -> str:
        return " ".join(self.argv) or "shell"

    def _start(self) -> None:
        state = self.api.inspect_container(self.container.container_id)
        if not state["State"].get("Running") or state["State"].get("Paused"):
            raise TerminalError(f"{self.container.name} is not running: start it first.")
        names = {item.partition("=")[0] for item in state["Config"].get("Env") or []}
        env = {"TERM": "xterm-256color"}
        if not names & {"LANG", "LC_ALL", "LC_CTYPE"}:
            env["LANG"] = "C.UTF-8"  # UTF-8 in and out (glibc and musl both have it)
        if self.argv:
            self._exec(["sh", "-c", COMMAND, "sh", *self.argv], env)
        else:
            self._exec(["sh", "-c", SHELL], env)
        head = self._read_mark()
        if self.pid is None and NO_SH in head:
            if not self.argv:
                raise TerminalError(
                    f"{self.container.name} has no shell (sh): give a command to run instead."
                )
            self._close_stream()
            self._exec(self.argv, env)
            head = b""
        self.first = head

    def _exec(self, cmd: list[str], env: dict[str, str]) -> None:
        api = self.api
        self.exec_id = api.exec_create(
            self.container.container_id, cmd, tty=True, stdin=True, environment=env
        )["Id"]
        # As the SDK's exec_start(socket=True), keeping hold of the response: its reader may
        # already hold the first bytes of output, read along with the HTTP headers.
        self.response = api._post_json(
            api._url("/exec/{0}/start", self.exec_id),
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            data={"Tty": True, "Detach": False},
            stream=True,
        )
        api._raise_for_status(self.response)
        reader = self.response.raw._fp.fp
        if api.base_url.startswith("http+docker://ssh"):
            self.sock = reader.channel
            self.first = bytes(reader._rbuffer)
            reader._rbuffer = b""
            return
        raw = reader.raw
        self.sock = getattr(raw, "_sock", raw)
        if self.sock.family in (socket.AF_INET, socket.AF_INET6):
            # Keystrokes are tiny writes: sent at once, not held back for an ACK (Nagle).
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        try:
            self.first = reader.read1(65536) or b""
        except (ssl.SSLWantReadError, BlockingIOError):
            self.first = b""
        finally:
            self.sock.settimeout(IO_TIMEOUT)

    def _read_mark(self) -> bytes:
        """The first output, up to and without the wrapper's PID mark (or all of it, when
        the wrapper could not run)."""
        head, self.first = self.first, b""
        deadline = time.monotonic() + IO_TIMEOUT
        while not PID_MARK.search(head) and len(head) < 4096 and time.monotonic() < deadline:
            data = self._recv(4096)
            if not data:
                break
            head += data
        if match := PID_MARK.search(head):
            self.pid = int(match.group(1))
            head = head[: match.start()] + head[match.end() :]
        return head

    def fileno(self) -> int:
        return self.sock.fileno()

    def pending(self) -> bool:
        pending = getattr(self.sock, "pending", None)
        return bool(self.first) or bool(pending and pending())

    def recv(self, size: int) -> bytes:
        if self.first:
            data, self.first = self.first, b""
            return data
        return self._recv(size)

    def _recv(self, size: int) -> bytes:
        try:
            return self.sock.recv(size)
        except (OSError, EOFError):
            return b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def resize(self, cols: int, rows: int) -> None:
        with contextlib.suppress(docker.errors.APIError, requests.RequestException):
            self.api.exec_resize(self.exec_id, height=rows, width=cols)

    def end_reason(self) -> str:
        try:
            for _ in range(20):  # the engine records the exit a moment after the EOF
                info = self.api.exec_inspect(self.exec_id)
                if not info.get("Running"):
                    break
                time.sleep(0.05)
            code = info.get("ExitCode")
            running = self._container_running(settle=code is None or code >= 128)
        except docker.errors.NotFound:
            return f"{self.container.name} is gone: the terminal is closed."
        except (docker.errors.DockerException, requests.RequestException):
            return "The engine stopped answering: the terminal is closed."
        if not running:
            return f"{self.container.name} stopped: the terminal is closed."
        return "The process ended." if code is None else f"The process exited with status {code}."

    def _container_running(self, *, settle: bool) -> bool:
        """Whether the container still runs; after a process killed by a signal, as the
        engine says once a stop in progress has ended (the process dies first)."""
        for _ in range(60 if settle else 1):
            state = self.api.inspect_container(self.container.container_id)["State"]
            if not state.get("Running") or state.get("Restarting"):
                return False
            if settle:
                time.sleep(0.05)
        return True

    def _close_stream(self) -> None:
        for close in (
            lambda: self.sock.shutdown(socket.SHUT_RDWR),
            self.sock.close,
            self.response.close,
        ):
            with contextlib.suppress(Exception):
                close()

    def close(self) -> None:
        if self.sock is not None:
            self._close_stream()
        if self.pid is not None:
            with contextlib.suppress(Exception):
                self._hang_up()
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()

    def _hang_up(self) -> None:
        if not self.api.exec_inspect(self.exec_id).get("Running"):
            return
        hangup = self.api.exec_create(
            self.container.container_id, ["sh", "-c", HANGUP, "hangup", str(self.pid)]
        )
        self.api.exec_start(hangup["Id"], detach=True)
