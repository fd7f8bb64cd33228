"""What ssh, scp, sshfs and rsync are given to reach a machine: its own key, and only its
pinned host key (written to private temporary files for the length of one command)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from machines.cli.common import clean_only
from machines.models import Machine
from machines.validation import one_line


def ssh_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def ssh_checked(machine: Machine) -> Machine:
    """The machine, if its SSH user and address are what the model allows (a row stored
    before these rules, or edited behind dockerdash's back, is refused here)."""
    try:
        clean_only(machine, "ip", "ssh_user")
    except ValidationError as e:
        raise CommandError(f"Cannot reach {machine.name} over SSH: {one_line(e)}") from None
    if not machine.ip:
        raise CommandError(f"{machine.name} has no IP address yet")
    return machine


def ssh_argv(
    machine: Machine,
    identity_args: list[str],
    known_hosts: Path,
    command: list[str],
    options: list[str] | None = None,
) -> list[str]:
    """ssh's command line: the user by -l and the host after '--', so that neither is ever
    taken for an option, whatever they hold; the user's vetted options (sshopts) after
    ours, before the host."""
    options = options or []
    args = ["ssh", *identity_args, *ssh_options(known_hosts), *options]
    args += ["-p", str(machine.ssh_port), "-l", machine.ssh_user]
    # A login shell gets a terminal, unless the user said otherwise (-T, or -N: no shell).
    args += ["-t"] if not command and not {"-T", "-N", "-t"} & set(options) else []
    return [*args, "--", machine.ip, *command]


def scp_argv(
    port: int, identity_args: list[str], known_hosts: Path, recursive: bool, paths: list[str]
) -> list[str]:
    # -3: between two machines the copy passes through here (neither trusts the other).
    args = ["scp", "-3", *identity_args, *ssh_options(known_hosts), "-P", str(port)]
    args += ["-r"] if recursive else []
    # scp has no -l: the user goes in user@host (validated); '--' ends the options.
    return [*args, "--", *paths]


@contextlib.contextmanager
def ssh_files(machines: list[Machine]):
    """The machines' keys and pinned host keys in a private temporary folder, for the
    system ssh/scp; removed afterwards. A host key not pinned yet is pinned first."""
    from machines.lib.ssh import SSHSession

    with tempfile.TemporaryDirectory(prefix="dockerdash-ssh-") as tmp:
        identity_args, known = [], []
        for i, machine in enumerate(machines):
            if not machine.ssh_private_key:
                raise CommandError(f"{machine.name} has no SSH key")
            if not machine.ssh_host_key:
                with SSHSession(
                    machine.ip, machine.ssh_port, machine.ssh_user, machine.ssh_private_key
                ) as session:
                    machine.ssh_host_key = session.host_key
                Machine.objects.filter(pk=machine.pk).update(ssh_host_key=machine.ssh_host_key)
            key_path = Path(tmp) / f"id_{i}"
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(machine.ssh_private_key.strip() + "\n")
            identity_args += ["-i", str(key_path)]
            host = ssh_host(machine.ip)
            name = host if machine.ssh_port == 22 else f"[{machine.ip}]:{machine.ssh_port}"
            known.append(f"{name} {machine.ssh_host_key}")
        known_hosts = Path(tmp) / "known_hosts"
        known_hosts.write_text("\n".join(known) + "\n")
        yield identity_args, known_hosts


def ssh_options(known_hosts: Path) -> list[str]:
    # Only the pinned host key, only our keys: the user's ssh config and agent stay out.
    return [
        "-F",
        "/dev/null",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=no",
        "-o",
        "LogLevel=ERROR",
    ]
