"""ssh and scp with the machine's own key, accepting only its pinned host key."""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from machines.models import Machine
from machines.validation import one_line

from .common import clean_only, get_machine


def add_arguments(action: str, parser) -> None:
    if action == "ssh":
        parser.add_argument("name")
        parser.add_argument("command", nargs=argparse.REMAINDER)
    elif action == "mount":
        parser.add_argument("-u", "--unmount", action="store_true", help="unmount instead")
        parser.add_argument("source", metavar="machine:path")
        parser.add_argument("mountpoint")
    else:
        parser.add_argument("-r", "--recursive", action="store_true")
        parser.add_argument(
            "-d", "--delta", action="store_true", help="copy only what changed (rsync)"
        )
        parser.add_argument(
            "-q", "--quiet", action="store_true", help="no progress meter, warnings or diagnostics"
        )
        parser.add_argument("source")
        parser.add_argument("destination")


def run(action: str, cli, **options) -> None:
    if action == "ssh":
        _ssh(options["name"], options["command"])
    elif action == "mount":
        from .mount import mount

        mount(options["source"], options["mountpoint"], unmount=options["unmount"])
    else:
        _scp(**{k: options[k] for k in ("recursive", "delta", "quiet", "source", "destination")})


def _ssh(name: str, args: list[str]) -> None:
    from .sshopts import split

    machine = ssh_checked(get_machine(name))
    options, command = split(args)
    with ssh_files([machine]) as (identity_args, known_hosts):
        argv = ssh_argv(machine, identity_args, known_hosts, command, options)
        status = subprocess.call(argv)
    if status:
        sys.exit(status)  # the remote command's own exit status, as ssh gives it


def _scp(recursive: bool, delta: bool, quiet: bool, source: str, destination: str) -> None:
    machines, paths = [], []
    for spec in (source, destination):
        name, sep, path = spec.partition(":")
        if sep and "/" not in name and Machine.objects.filter(name=name).exists():
            machine = ssh_checked(get_machine(name))
            machines.append(machine)
            paths.append(f"{machine.ssh_user}@{ssh_host(machine.ip)}:{path}")
        else:
            paths.append(spec)
    if not machines:
        raise CommandError("Name a machine in the source or the destination (machine:path)")
    ports = {m.ssh_port for m in machines}
    if len(ports) > 1:
        raise CommandError("Copying between machines with different SSH ports is not supported")
    if delta and len(machines) > 1:
        raise CommandError("scp -d (rsync) copies between here and one machine, not two")
    with ssh_files(machines) as (identity_args, known_hosts):
        if delta:
            from .mount import rsync_argv

            argv = rsync_argv(machines[0], identity_args, known_hosts, recursive, quiet, paths)
        else:
            argv = scp_argv(ports.pop(), identity_args, known_hosts, recursive, paths)
            argv[1:1] = ["-q"] if quiet else []
        status = subprocess.call(argv)
    if status:
        raise CommandError(f"{argv[0]} failed (exit {status})")


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
