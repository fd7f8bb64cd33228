"""ssh and scp with the machine's own key, accepting only its pinned host key."""

from __future__ import annotations

import argparse
import subprocess
import sys

from django.core.management.base import CommandError

from machines.cli.common import get_machine
from machines.cli.mount import mount, rsync_argv
from machines.cli.sshargs import scp_argv, ssh_argv, ssh_checked, ssh_files, ssh_host
from machines.models import Machine


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
        mount(options["source"], options["mountpoint"], unmount=options["unmount"])
    else:
        _scp(**{k: options[k] for k in ("recursive", "delta", "quiet", "source", "destination")})


def _ssh(name: str, args: list[str]) -> None:
    from machines.cli.sshopts import split

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
            argv = rsync_argv(machines[0], identity_args, known_hosts, recursive, quiet, paths)
        else:
            argv = scp_argv(ports.pop(), identity_args, known_hosts, recursive, paths)
            argv[1:1] = ["-q"] if quiet else []
        status = subprocess.call(argv)
    if status:
        raise CommandError(f"{argv[0]} failed (exit {status})")
