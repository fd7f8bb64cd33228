"""Debian root filesystems built offline: debootstrap, configuration in a chroot, a tarball.

What host containers boot (see hostimage.py): systemd as PID 1, sshd, optionally Docker. Plain
Python, no Django. Builds need root (debootstrap, chroot) and reach only the Debian mirror.
The build functions keep their names and text: hostimage.py hashes their source into the
images' recipe, so that a change to how a root filesystem is built rebuilds the images.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

Log = Callable[[str], object]


class HostImageError(Exception):
    """A host image could not be built; the message says why in one line."""


SUITE = "bookworm"
MIRROR = os.environ.get("DOCKERDASH_DEBIAN_MIRROR", "http://deb.debian.org/debian")

BARE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "sudo",
    "iproute2",
    "iputils-ping",
    "netbase",
    "ca-certificates",
    "procps",
    "iptables",
    "curl",
    "gnupg",
    "kmod",
    "xz-utils",
    "less",
)
DOCKER_PACKAGES = ("docker.io",)


SOURCES = f"""\
Types: deb
URIs: {MIRROR}
Suites: {SUITE} {SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {MIRROR}-security
Suites: {SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

# Every container of an image would otherwise share the host keys baked into it.
SSH_HOST_KEYS_UNIT = """\
[Unit]
Description=Generate this machine's own SSH host keys
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target ssh.service
"""

SSHD_CONFIG = """\
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
"""

HOSTS = """\
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""

# Files written into the root filesystem, relative to it.
ROOTFS_FILES = {
    "etc/apt/sources.list.d/debian.sources": SOURCES,
    "etc/ssh/sshd_config.d/dockerdash.conf": SSHD_CONFIG,
    "etc/systemd/system/ssh-host-keys.service": SSH_HOST_KEYS_UNIT,
    "etc/hosts": HOSTS,
    "etc/hostname": "localhost\n",
    # Empty: systemd makes up a machine id per container on its first boot.
    "etc/machine-id": "",
    # pam_env warns on every SSH login without it; no locale is configured on purpose.
    "etc/default/locale": "",
    # Docker bind-mounts its own resolv.conf, hosts and hostname over these.
    "etc/resolv.conf": "",
}
ENABLED_UNITS = ("ssh-host-keys.service", "ssh.service")
# None of these fail in a container here (systemd skips most by their conditions); masked so that
# a test host is predictable and leaves the kernel it shares alone.
MASKED_UNITS = (
    # apt's timers take the dpkg lock at random times, just when a provisioner runs apt-get.
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    # No consoles in a container.
    "getty.target",
    "console-getty.service",
    # With CAP_SYS_ADMIN these would mount the shared kernel's debugfs and tracefs.
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "systemd-modules-load.service",
    # The root filesystem is an overlay, not an ext4 volume to scrub.
    "e2scrub_all.timer",
    "e2scrub_reap.service",
)
REMOVED_PATHS = (
    "etc/apt/sources.list",
    "var/lib/dbus/machine-id",
)
REMOVED_GLOBS = ("etc/ssh/ssh_host_*",)
# Left out of the packed root filesystems: the runtime fills these, or they are only bulk.
PACK_EXCLUDES = (
    "./dev/*",
    "./proc/*",
    "./sys/*",
    "./run/*",
    "./tmp/*",
    "./var/tmp/*",
    "./var/cache/apt/*.bin",
    "./var/cache/apt/archives/*.deb",
    "./var/lib/apt/lists/*",
)
IMAGE_CHANGES = ('CMD ["/sbin/init"]', "ENV container=docker")
# systemd shuts down cleanly on SIGRTMIN+3; on SIGTERM it would re-execute itself and Docker would
# wait for its stop timeout. `docker import --change` refuses STOPSIGNAL, so a one-line build sets
# it.
STOP_SIGNAL = "SIGRTMIN+3"

CHROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "DEBIAN_FRONTEND": "noninteractive",
    "LC_ALL": "C",
    "HOME": "/root",
}


def check_can_build() -> None:
    if os.geteuid() != 0:
        raise HostImageError("building host images needs root (debootstrap and chroot)")
    for tool in ("debootstrap", "unshare", "chroot", "tar"):
        if not shutil.which(tool):
            raise HostImageError(f"{tool} not found: apt-get install -y debootstrap util-linux")


@contextlib.contextmanager
def workdir(cache: Path) -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
    try:
        yield work
    finally:
        # Every mount made for the build lived in a private mount namespace and is gone with it;
        # still, never let rmtree walk into a mounted /proc or /dev.
        mounts = Path("/proc/self/mounts").read_text().split("\n")
        if any(f" {work}/" in line for line in mounts):
            raise HostImageError(f"{work} still has mounts; left it in place")
        shutil.rmtree(work)


def run(args: list[str | Path], build_log: Path) -> None:
    with build_log.open("a") as out:
        out.write(f"$ {' '.join(map(str, args))}\n")
        out.flush()
        done = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = build_log.read_text(errors="replace").strip().splitlines()[-1:]
        raise HostImageError(
            f"{Path(str(args[0])).name} failed (exit {done.returncode}): "
            f"{tail[0] if tail else ''} (see {build_log})"
        )


def chroot(rootfs: Path, script: str, build_log: Path) -> None:
    # A private mount namespace: /proc and /dev vanish with the process, even when it dies.
    setup = (
        'mount -t proc proc "$1/proc" && mount --bind /dev "$1/dev" && '
        'cp /etc/resolv.conf "$1/etc/resolv.conf" && '
        'exec env -i $2 chroot "$1" /bin/sh -euxc "$3"'
    )
    env = " ".join(f"{k}={v}" for k, v in CHROOT_ENV.items())
    unshare = ["unshare", "--mount", "--propagation", "private"]
    run([*unshare, "sh", "-ec", setup, "sh", rootfs, env, script], build_log)
    (rootfs / "etc/resolv.conf").write_text("")


def debootstrap(rootfs: Path, build_log: Path) -> None:
    run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BARE_PACKAGES)}",
            SUITE,
            rootfs,
            MIRROR,
        ],
        build_log,
    )


def configure_rootfs(rootfs: Path, build_log: Path) -> None:
    for rel, content in ROOTFS_FILES.items():
        path = rootfs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    for rel in REMOVED_PATHS:
        (rootfs / rel).unlink(missing_ok=True)
    for pattern in REMOVED_GLOBS:
        for path in rootfs.glob(pattern):
            path.unlink()
    # The updates and security suites are not part of debootstrap's view of the archive.
    chroot(
        rootfs,
        "apt-get update -q\n"
        "apt-get -q -y -o Dpkg::Options::=--force-confold dist-upgrade\n"
        f"systemctl enable {' '.join(ENABLED_UNITS)}\n"
        f"systemctl mask {' '.join(MASKED_UNITS)}\n",
        build_log,
    )
    # openssh-server updates may have made host keys again.
    for path in rootfs.glob("etc/ssh/ssh_host_*"):
        path.unlink()


def add_docker(rootfs: Path, build_log: Path) -> None:
    # policy-rc.d keeps maintainer scripts from starting dockerd in the build root: an image
    # must never carry state of a daemon that ran (its /var/lib/docker breaks the next boot).
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    try:
        chroot(
            rootfs,
            "[ -e /var/lib/apt/lists/lock ] || apt-get update -q\n"
            "apt-get install -q -y --no-install-recommends " + " ".join(DOCKER_PACKAGES) + "\n",
            build_log,
        )
    finally:
        policy.unlink()
    state = rootfs / "var/lib/docker"
    if state.exists():
        shutil.rmtree(state)
    state.mkdir(mode=0o710)


def pack(rootfs: Path, tarball: Path, log: Log) -> None:
    started = time.monotonic()
    partial = tarball.with_suffix(".partial")
    args: list[str | Path] = ["tar", "-C", rootfs, "--numeric-owner", "--xattrs"]
    args += [f"--exclude={pattern}" for pattern in PACK_EXCLUDES]
    args += ["-cf", partial, "."]
    try:
        run(args, tarball.parent / "build.log")
    except HostImageError:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(tarball)
    size = tarball.stat().st_size / 2**20
    log(f"packed {tarball.name} ({size:.0f} MiB) in {time.monotonic() - started:.0f}s")
