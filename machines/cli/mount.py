"""mount (sshfs) and scp -d (rsync): a machine's files here, with the machine's own key and
only its pinned host key, as ssh and scp have them."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

from django.core.management.base import CommandError

from machines.cli.common import get_machine
from machines.cli.sshargs import ssh_argv, ssh_checked, ssh_files, ssh_host, ssh_options
from machines.models import Machine


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise CommandError(f"{name} is not installed here: install it (apt-get install {package})")
    return path


def mount(source: str, mountpoint: str, *, unmount: bool) -> None:
    name, sep, path = source.partition(":")
    if not sep or not name:
        raise CommandError(f"Name the machine's folder as machine:path, not {source!r}")
    machine = ssh_checked(get_machine(name))
    point = Path(mountpoint).expanduser().absolute()
    if unmount:
        fusermount = shutil.which("fusermount3") or _tool("fusermount", "fuse3")
        status = subprocess.call([fusermount, "-u", str(point)])
        if status:
            raise CommandError(f"Unmounting {point} failed (exit {status})")
        return
    sshfs = _tool("sshfs", "sshfs")
    if not point.is_dir():
        raise CommandError(f"The mount point {point} is not a folder: make it first")
    with ssh_files([machine]) as (identity_args, known_hosts):
        # sshfs hands -F and -o NAME=VALUE on to ssh. It has no '--': the remote part starts
        # with a checked user name and the mount point is absolute, so neither is an option.
        argv = [sshfs, "-p", str(machine.ssh_port), *ssh_options(known_hosts)]
        argv += ["-o", f"IdentityFile={identity_args[1]}"]
        remote = f"{machine.ssh_user}@{ssh_host(machine.ip)}:{path or '/'}"
        status = subprocess.call([*argv, remote, str(point)])
    if status:
        raise CommandError(f"sshfs failed (exit {status})")


def rsync_argv(
    machine: Machine,
    identity_args: list[str],
    known_hosts: Path,
    recursive: bool,
    quiet: bool,
    paths: list[str],
) -> list[str]:
    """rsync between here and one machine: only what changed is sent."""
    rsync = _tool("rsync", "rsync")
    _remote_has_rsync(machine, identity_args, known_hosts)
    ssh = ["ssh", *identity_args, *ssh_options(known_hosts), "-p", str(machine.ssh_port)]
    # --protect-args: the remote path is not read by a shell over there.
    args = [rsync, "--archive" if recursive else "--times", "--compress", "--protect-args"]
    args += ["--quiet"] if quiet else []
    return [*args, "-e", shlex.join(ssh), "--", *paths]


def _remote_has_rsync(machine: Machine, identity_args: list[str], known_hosts: Path) -> None:
    check = ssh_argv(machine, identity_args, known_hosts, ["command -v rsync"])
    done = subprocess.run(check, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode == 255:
        raise CommandError(f"SSH to {machine.name} failed: {done.stderr.strip()}")
    if done.returncode != 0:
        raise CommandError(
            f"rsync is not installed on {machine.name}: install it there (apt-get install "
            "rsync) or copy without -d"
        )
