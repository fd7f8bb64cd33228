"""A root shell on a machine's host, over its SSH connection, as a terminal backend (see
containers/terminal.py); and the host's CPU, memory and disk use, read over the same kind of
connection by the health checks.

Only with the machine's pinned host key: a host whose key was never pinned (not provisioned
yet) is refused, never trusted on first use from here.
"""

from __future__ import annotations

import contextlib

from machines.engine.streams.terminal import TerminalError
from machines.lib.errors import DriverError
from machines.lib.ssh import SSHError, SSHSession
from machines.models import Machine

CONNECT_TIMEOUT = 10


def open_pinned(machine: Machine, timeout: float = CONNECT_TIMEOUT) -> SSHSession:
    """An SSH session to the machine's host, accepting only its pinned host key."""
    if not machine.ssh_host_key:
        raise SSHError(f"{machine.name} has no pinned SSH host key yet: provision it first.")
    if not machine.ssh_private_key:
        raise SSHError(f"{machine.name} has no SSH key of its own.")
    try:
        address = machine.get_driver().ssh_address(machine)
    except DriverError as e:
        raise SSHError(str(e)) from None
    return SSHSession(
        address.host,
        address.port,
        address.user,
        machine.ssh_private_key,
        machine.ssh_host_key,
        timeout=timeout,
    )


class HostShell:
    """An interactive login shell as root on the machine's host (via `sudo -n -i` when the
    machine's SSH user is not root)."""

    def __init__(self, machine: Machine, cols: int, rows: int) -> None:
        self.machine = machine
        try:
            self.session = open_pinned(machine)
        except SSHError as e:
            raise TerminalError(str(e)) from None
        try:
            self.channel = self.session.client.get_transport().open_session()
            self.channel.get_pty("xterm-256color", cols, rows)
            if self.session.is_root:
                self.channel.invoke_shell()
            else:
                self.channel.exec_command("sudo -n -i")
        except Exception as e:
            self.session.close()
            raise TerminalError(f"The shell on {machine.name} did not start: {e}") from None

    description = "root shell"

    def fileno(self) -> int:
        return self.channel.fileno()

    def pending(self) -> bool:
        return self.channel.recv_ready()

    def recv(self, size: int) -> bytes:
        try:
            return self.channel.recv(size)
        except OSError:
            return b""

    def send(self, data: bytes) -> None:
        self.channel.sendall(data)

    def resize(self, cols: int, rows: int) -> None:
        with contextlib.suppress(Exception):
            self.channel.resize_pty(width=cols, height=rows)

    def end_reason(self) -> str:
        if self.channel.exit_status_ready():
            return f"The shell exited with status {self.channel.recv_exit_status()}."
        return f"The connection to {self.machine.name} was lost."

    def close(self) -> None:
        # Closing the channel hangs the shell up (sshd sends it SIGHUP), as ssh's would.
        with contextlib.suppress(Exception):
            self.channel.close()
        self.session.close()
