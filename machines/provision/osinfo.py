"""From /etc/os-release to an OS profile: how to install Docker and which init system runs it.

Profiles are keyed by os-release's ID, then by each word of ID_LIKE (as libmachine's provisioner
registry did), so derivatives (Raspbian, Linux Mint, Pop!_OS, ...) find their family. An OS that
matches nothing is refused with what it said about itself.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from machines.lib.errors import DriverError


class ProvisionError(DriverError):
    """Provisioning failed; the message says what, where, and what to do."""


class UnknownOS(ProvisionError):
    pass


@dataclass(frozen=True)
class PackageManager:
    name: str
    #: Shell run before installing: wait for whatever else holds the package database, refresh
    #: the package lists.
    prepare: str
    #: Shell that installs / upgrades the packages given as "$@".
    install: str
    upgrade: str
    #: Shell printing the name of the package that owns the file "$1" (empty if none).
    owner: str


# cloud-init installs packages on first boot; apt would fail on its lock or race it.
_WAIT_CLOUD_INIT = (
    "if command -v cloud-init >/dev/null 2>&1; then "
    "echo 'Waiting for cloud-init to finish'; cloud-init status --wait >/dev/null 2>&1 || true; fi"
)
# apt >= 1.9.11 waits for the dpkg lock by itself with this option; older apt ignores it.
_APT = (
    "DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 "
    "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
)

APT = PackageManager(
    name="apt",
    prepare=f"{_WAIT_CLOUD_INIT}; {_APT} update",
    install=f'{_APT} install --no-install-recommends "$@"',
    upgrade=f'{_APT} install --only-upgrade "$@"',
    owner='dpkg-query -S "$1" 2>/dev/null | head -n 1 | cut -d: -f1',
)


def _rpm_manager(tool: str) -> PackageManager:
    return PackageManager(
        name=tool,
        prepare=_WAIT_CLOUD_INIT,
        install=f'{tool} -y -q install "$@"',
        upgrade=f'{tool} -y -q upgrade "$@"',
        owner="rpm -qf --qf '%{NAME}\\n' \"$1\" 2>/dev/null | head -n 1",
    )


DNF, YUM = _rpm_manager("dnf"), _rpm_manager("yum")
APK = PackageManager(
    name="apk",
    prepare=f"{_WAIT_CLOUD_INIT}; apk update -q",
    install='apk add -q "$@"',
    upgrade='apk upgrade -q "$@"',
    # "/usr/bin/dockerd is owned by docker-engine-25.0.5-r1" -> docker-engine
    owner=(
        "apk info -q -W \"$1\" 2>/dev/null | sed -e 's/.* is owned by //' "
        "-e 's/-[0-9][^-]*-r[0-9]*$//' | head -n 1"
    ),
)
MANAGERS = {m.name: m for m in (APT, DNF, YUM, APK)}


@dataclass(frozen=True)
class OSProfile:
    family: str
    #: Package managers in order of preference; the first one present on the host is used.
    managers: tuple[str, ...]
    #: The distribution's own package providing dockerd, or None when it has none.
    docker_packages: tuple[str, ...] | None
    #: Why there is no package, for the error.
    no_package_hint: str = ""


PROFILES: dict[str, OSProfile] = {
    "debian": OSProfile("debian", ("apt",), ("docker.io",)),
    "ubuntu": OSProfile("ubuntu", ("apt",), ("docker.io",)),
    "fedora": OSProfile("fedora", ("dnf", "yum"), ("moby-engine",)),
    # Red Hat's family ships Podman, not Docker: its `docker` package is a Podman shim.
    **{
        name: OSProfile(
            "rhel",
            ("dnf", "yum"),
            None,
            "its repositories have no Docker Engine package (only Podman)",
        )
        for name in ("rhel", "centos", "rocky", "almalinux", "ol")
    },
    "amzn": OSProfile("amzn", ("dnf", "yum"), ("docker",)),
    "alpine": OSProfile("alpine", ("apk",), ("docker",)),
}
SUPPORTED = "Debian, Ubuntu, Fedora, RHEL, CentOS, Rocky, AlmaLinux, Amazon Linux and Alpine"


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines with shell quoting, as os-release(5) defines them."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            words = shlex.split(raw)
        except ValueError:
            words = [raw.strip("\"'")]
        values[key.strip()] = " ".join(words)
    return values


@dataclass(frozen=True)
class OSInfo:
    id: str
    id_like: tuple[str, ...]
    name: str
    version: str
    profile: OSProfile
    release: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def pretty(self) -> str:
        return self.release.get("PRETTY_NAME") or f"{self.name} {self.version}".strip()


def detect(os_release: str) -> OSInfo:
    """The OS profile for an os-release text; UnknownOS quoting the text's identity otherwise."""
    release = parse_os_release(os_release)
    os_id = release.get("ID", "").lower()
    id_like = tuple(release.get("ID_LIKE", "").lower().split())
    for key in (os_id, *id_like):
        if key in PROFILES:
            return OSInfo(
                id=os_id,
                id_like=id_like,
                name=release.get("NAME", os_id),
                version=release.get("VERSION_ID", ""),
                profile=PROFILES[key],
                release=release,
            )
    if not release:
        raise UnknownOS(
            "Cannot tell the operating system: /etc/os-release is missing or empty on the host. "
            f"dockerdash provisions {SUPPORTED}."
        )
    found = release.get("PRETTY_NAME") or release.get("NAME") or os_id or "(no name)"
    like = f', ID_LIKE="{" ".join(id_like)}"' if id_like else ""
    raise UnknownOS(
        f'Unsupported operating system "{found}" (ID={os_id or "(none)"}{like} in '
        f"/etc/os-release). dockerdash provisions {SUPPORTED}."
    )


def package_manager(info: OSInfo, available: set[str]) -> PackageManager:
    for name in info.profile.managers:
        if name in available:
            return MANAGERS[name]
    raise ProvisionError(
        f"{info.pretty}: none of {', '.join(info.profile.managers)} is installed on the host"
    )
