"""What a host is, as provisioning sees it: its OS, init system, Docker, and the files
dockerdash manages on it, gathered by one script over SSH; and where those files live."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .osinfo import OSInfo, ProvisionError, detect

if TYPE_CHECKING:
    from machines.lib.ssh import SSHSession

Line = Callable[[str], None]

CERT_DIR = "/etc/docker/dockerdash"
CA_FILE = f"{CERT_DIR}/ca.pem"
CERT_FILE = f"{CERT_DIR}/server.pem"
KEY_FILE = f"{CERT_DIR}/server-key.pem"
DROPIN_DIR = "/etc/systemd/system/docker.service.d"
DROPIN = f"{DROPIN_DIR}/zz-dockerdash.conf"
OPTS_FILES = {"openrc": "/etc/conf.d/docker", "sysv": "/etc/default/docker"}
LOG_FILES = {"openrc": "/var/log/docker.log", "sysv": "/var/log/docker.log"}
RESTART = {
    "systemd": "systemctl restart docker.service",
    "openrc": "rc-service docker restart",
    "sysv": "service docker restart",
}
# Prints the daemon's state (active, inactive, failed, ...) per init system.
ACTIVE = {
    "systemd": "systemctl is-active docker.service",
    "openrc": "rc-service docker status >/dev/null 2>&1 && echo active || echo inactive",
    "sysv": "service docker status >/dev/null 2>&1 && echo active || echo inactive",
}
BACKUP_SUFFIX = ".dockerdash-orig"
MANAGED_FILES = (CA_FILE, CERT_FILE, KEY_FILE, DROPIN, *OPTS_FILES.values())

INSTALL_TIMEOUT = 600  # longest silence of a package install (slow mirrors, big downloads)
RESTART_TIMEOUT = 120
API_TIMEOUT = 60
API_POLL = 0.1
LOG_TAIL = 25


# -- what the host is -------------------------------------------------------------------


@dataclass
class HostFacts:
    os: OSInfo
    init: str  # systemd, openrc or sysv
    managers: set[str]
    dockerd: str  # path, empty when Docker is not installed
    docker_version: str
    hostname: str
    swarm: bool
    units: dict[str, str] = field(default_factory=dict)  # unit -> LoadState (systemd)
    vendor_exec: str = ""  # ExecStart of the vendor docker.service
    active: bool = False
    #: Whether the loaded docker.service runs the ExecStart of our drop-in (systemd).
    exec_ours: bool = False
    hashes: dict[str, str] = field(default_factory=dict)  # managed file -> sha256

    @property
    def runs_our_config(self) -> bool:
        """Docker runs, with the daemon configuration as we last wrote it."""
        return self.active and (self.init != "systemd" or self.exec_ours)

    @property
    def socket_activated(self) -> bool:
        return self.units.get("docker.socket") == "loaded" and "fd://" in self.vendor_exec


FACTS_SCRIPT = r"""
echo "hostname=$(cat /proc/sys/kernel/hostname)"
if [ -d /run/systemd/system ]; then init=systemd
elif command -v openrc-run >/dev/null 2>&1 || [ -d /run/openrc ]; then init=openrc
else init=sysv; fi
echo "init=$init"
for m in apt-get dnf yum apk; do command -v "$m" >/dev/null 2>&1 && echo "manager=${m%-get}"; done
if d=$(command -v dockerd 2>/dev/null); then
  echo "dockerd=$d"
  echo "docker_version=$("$d" --version 2>/dev/null | head -n 1)"
fi
[ -e /var/lib/docker/swarm/docker-state.json ] && echo "swarm=1"
case $init in
systemd)
  for u in docker.service docker.socket; do
    echo "unit=$u $(systemctl show -p LoadState --value "$u")"
  done
  f=$(systemctl show -p FragmentPath --value docker.service)
  [ -n "$f" ] && [ -r "$f" ] && echo "vendor_exec=$(sed -n 's/^ExecStart=//p' "$f" | tail -n 1)"
  systemctl show -p ExecStart --value docker.service | grep -qF CERT_DIR/ && echo "exec_ours=1"
  systemctl is-active -q docker.service && echo "active=1" ;;
openrc) rc-service docker status >/dev/null 2>&1 && echo "active=1" ;;
*) service docker status >/dev/null 2>&1 && echo "active=1" ;;
esac
for f in FILES; do [ -f "$f" ] && echo "hash=$(sha256sum "$f")"; done
echo "--os-release--"
cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null || true
""".replace("FILES", " ".join(MANAGED_FILES)).replace("CERT_DIR", CERT_DIR)


def gather_facts(session: SSHSession) -> HostFacts:
    """One round trip: the OS, init system, Docker's presence and our files' current state."""
    status, output = session.run_script(FACTS_SCRIPT, timeout=60)
    if status != 0:
        raise ProvisionError(f"Inspecting {session.host} failed (exit {status}): {output[-500:]}")
    head, _, os_release = output.partition("--os-release--\n")
    values: dict[str, list[str]] = {}
    for line in head.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key, []).append(value.strip())

    def one(key: str) -> str:
        return (values.get(key) or [""])[-1]

    units = {}
    for item in values.get("unit", []):
        unit, _, state = item.partition(" ")
        units[unit] = state
    hashes = {}
    for item in values.get("hash", []):
        digest, _, path = item.partition("  ")
        hashes[path] = digest
    return HostFacts(
        os=detect(os_release),
        init=one("init") or "sysv",
        managers=set(values.get("manager", [])),
        dockerd=one("dockerd"),
        docker_version=one("docker_version"),
        hostname=one("hostname"),
        swarm=one("swarm") == "1",
        units=units,
        vendor_exec=one("vendor_exec"),
        active=one("active") == "1",
        exec_ours=one("exec_ours") == "1",
        hashes=hashes,
    )


def tail(output: str, lines: int = 15) -> str:
    """The last lines of a command's output, for an error message."""
    return "\n".join(output.strip().splitlines()[-lines:])
