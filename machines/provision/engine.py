"""Docker Engine on a host: install it, configure its daemon per init system, restart it, and wait
for its API with the dashboard's client certificate.

How the daemon is configured (and why):
- systemd: one drop-in, /etc/systemd/system/docker.service.d/zz-dockerdash.conf, that resets
  ExecStart (`ExecStart=` then ours) and carries the engine's environment. Drop-ins apply in
  file-name order, so "zz-" comes after any foreign drop-in (Environment=, Limit*=, even an
  ExecStart of its own) and leaves those in place; after the reload we check that the effective
  ExecStart is ours. Everything goes on the command line rather than in /etc/docker/daemon.json:
  a user's daemon.json stays theirs, and dockerd refuses a setting given both ways, which a
  foreign drop-in's flags and a daemon.json could otherwise trigger.
- Where the vendor unit is socket-activated (Debian's and Docker's own packages: docker.socket
  plus `-H fd://`), ours keeps `-H fd://` for the local socket, so docker.socket and its group
  permissions keep working; the unit is then reloaded and docker.service *restarted*. The
  classic "stop; write; start" fails there: the socket starts the old daemon in between and
  `start` is a no-op (what broke docker-machine 0.16.2 on Debian 12).
- OpenRC (/etc/conf.d/docker) and SysV (/etc/default/docker): DOCKER_OPTS in the file the init
  script reads; the distribution's file is kept as *.dockerdash-orig for `rm --purge`.
- --live-restore, unless the engine is a swarm node (dockerd refuses both): restarting the
  daemon for new certificates must leave running containers running.

Every file goes to the host inside a script sent on stdin (never in a command line) and is
written only when its content changed, so that re-provisioning an unchanged machine restarts
nothing.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import docker.errors
import requests

from machines import engines

from .osinfo import OSInfo, ProvisionError, detect, package_manager
from .ssh import SSHError, SSHSession, quote

if TYPE_CHECKING:
    from machines.models import CertificateAuthority, ClientCA, Machine

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


# -- install and upgrade ----------------------------------------------------------------


def _pm_functions(facts: HostFacts) -> str:
    pm = package_manager(facts.os, facts.managers)
    return (
        f"pm_prepare() {{\n{pm.prepare}\n}}\n"
        f"pm_install() {{\n{pm.install}\n}}\n"
        f"pm_upgrade() {{\n{pm.upgrade}\n}}\n"
        f"pm_owner() {{\n{pm.owner}\n}}\n"
    )


def install_script(facts: HostFacts, install_url: str = "") -> str:
    if install_url:
        # docker-machine's --engine-install-url: a script such as https://get.docker.com.
        return (
            "set -e\n"
            "script=$(mktemp)\ntrap 'rm -f \"$script\"' EXIT\n"
            "if command -v curl >/dev/null 2>&1; then curl -fsSL "
            f'{quote(install_url)} -o "$script"\n'
            "elif command -v wget >/dev/null 2>&1; then "
            f'wget -q -O "$script" {quote(install_url)}\n'
            'else echo "Neither curl nor wget is installed to fetch the install script"; exit 3\n'
            "fi\n"
            'sh "$script"\n'
        )
    packages = facts.os.profile.docker_packages
    if not packages:
        raise ProvisionError(
            f"{facts.os.pretty} has no Docker on it, and {facts.os.profile.no_package_hint}. "
            "Give an install script URL (--engine-install-url, e.g. https://get.docker.com) or "
            "install Docker on the host first."
        )
    return (
        f"set -e\n{_pm_functions(facts)}"
        f"pm_prepare\nset -- {' '.join(quote(p) for p in packages)}\n"
        'echo "Installing $*"\npm_install "$@"\n'
    )


def install(session: SSHSession, facts: HostFacts, install_url: str, on_line: Line) -> None:
    status, output = session.run_script(
        install_script(facts, install_url), on_line=on_line, timeout=INSTALL_TIMEOUT
    )
    if status != 0:
        what = f"the script {install_url}" if install_url else "the distribution's package"
        raise ProvisionError(
            f"Installing Docker on {session.host} from {what} failed (exit {status}):\n"
            + _tail(output)
        )


def upgrade_script(facts: HostFacts) -> str:
    restart = RESTART[facts.init]
    return (
        f"set -e\n{_pm_functions(facts)}"
        f"d={quote(facts.dockerd)}\n"
        'pkg=$(pm_owner "$d")\n'
        '[ -n "$pkg" ] || pkg=$(pm_owner "$(readlink -f "$d")")\n'
        'if [ -z "$pkg" ]; then echo "dockerdash: $d belongs to no package"; exit 3; fi\n'
        'echo "Upgrading $pkg"\npm_prepare\npm_upgrade "$pkg"\n'
        # A package whose maintainer scripts do not restart the daemon still runs the old one.
        f'new=$("$d" --version | head -n 1)\n'
        f'if [ "$new" != {quote(facts.docker_version)} ]; then {restart}; fi\n'
        'echo "Now: $new"\n'
    )


def upgrade(session: SSHSession, facts: HostFacts, on_line: Line) -> None:
    status, output = session.run_script(
        upgrade_script(facts), on_line=on_line, timeout=INSTALL_TIMEOUT
    )
    if "dockerdash: " in output and "belongs to no package" in output:
        raise ProvisionError(
            f"dockerd at {facts.dockerd} on {session.host} was not installed from a package; "
            "dockerdash upgrades Docker only through the package manager"
        )
    if status != 0:
        raise ProvisionError(
            f"Upgrading Docker on {session.host} failed (exit {status}):\n{_tail(output)}"
        )


# -- daemon configuration ---------------------------------------------------------------

# Words that need no quoting in ExecStart= nor in a DOCKER_OPTS that init scripts word-split.
SAFE_OPT = re.compile(r"[A-Za-z0-9_@%+=:,./\-]+")


def _systemd_word(value: str) -> str:
    """One argument of ExecStart=, quoted for systemd where needed (it splits on blanks and
    expands %, $ and backslashes)."""
    if "\n" in value or "\r" in value:
        raise ProvisionError(f"Daemon arguments cannot contain line breaks: {value!r}")
    if SAFE_OPT.fullmatch(value) and "%" not in value:
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def _systemd_env(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ProvisionError(f"Engine environment values cannot contain line breaks: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def daemon_args(machine: Machine, facts: HostFacts) -> list[str]:
    """dockerd's arguments (without the program) for this machine's engine."""
    if facts.init == "systemd" and facts.socket_activated:
        args = ["-H", "fd://"]
    else:
        args = ["-H", "unix:///var/run/docker.sock"]
    args += [
        "-H",
        f"tcp://0.0.0.0:{machine.engine_port}",
        "--tlsverify",
        f"--tlscacert={CA_FILE}",
        f"--tlscert={CERT_FILE}",
        f"--tlskey={KEY_FILE}",
    ]
    # The vendor unit may name the system containerd; without it dockerd could start its own.
    args += [w for w in shlex.split(facts.vendor_exec) if w.startswith("--containerd=")]
    args.append(f"--label=provider={machine.driver.kind}")
    args += [f"--label={label}" for label in machine.engine_labels]
    args += [f"--insecure-registry={r}" for r in machine.engine_insecure_registries]
    args += [f"--registry-mirror={m}" for m in machine.engine_registry_mirrors]
    if machine.engine_storage_driver:
        args.append(f"--storage-driver={machine.engine_storage_driver}")
    extra = [word for opt in machine.engine_opts for word in shlex.split(opt)]
    if not facts.swarm and not any(w.startswith("--live-restore") for w in extra):
        args.append("--live-restore")
    return args + extra


def _env_pairs(machine: Machine) -> list[tuple[str, str]]:
    pairs = []
    for item in machine.engine_env:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ProvisionError(f"Engine environment {item!r} is not of the form KEY=value")
        pairs.append((key, value))
    return pairs


def render_dropin(machine: Machine, facts: HostFacts) -> str:
    lines = [
        f"# Written by dockerdash for the machine {machine.name}; `machine rm --purge` removes it.",
        "[Service]",
        *(f"Environment={_systemd_env(f'{k}={v}')}" for k, v in _env_pairs(machine)),
        "ExecStart=",
        "ExecStart="
        + " ".join(_systemd_word(w) for w in [facts.dockerd, *daemon_args(machine, facts)]),
    ]
    return "\n".join(lines) + "\n"


def render_opts_file(machine: Machine, facts: HostFacts) -> str:
    """/etc/default/docker or /etc/conf.d/docker: sourced by the init script, which word-splits
    DOCKER_OPTS without any quoting, so no argument may contain blanks or quotes."""
    args = daemon_args(machine, facts)
    for arg in args:
        if not SAFE_OPT.fullmatch(arg):
            raise ProvisionError(
                f"The daemon argument {arg!r} cannot be passed through {OPTS_FILES[facts.init]} "
                "(no spaces or quotes there); change the engine option"
            )
    lines = [
        f"# Written by dockerdash for the machine {machine.name}; `machine rm --purge` restores "
        f"the previous file ({BACKUP_SUFFIX}).",
        f'DOCKER_OPTS="{" ".join(args)}"',
        *(f"export {k}={shlex.quote(v)}" for k, v in _env_pairs(machine)),
    ]
    if facts.init == "openrc":
        lines.append(f"DOCKER_LOGFILE={LOG_FILES['openrc']}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RemoteFile:
    path: str
    content: str
    mode: int

    @property
    def text(self) -> str:
        """The content as written (a here-document always ends with a newline)."""
        return self.content if self.content.endswith("\n") else self.content + "\n"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def ca_file(ca: CertificateAuthority, users: ClientCA) -> RemoteFile:
    """The CAs whose client certificates the engine accepts (--tlscacert): the dashboard's
    and the users' client CA, as one bundle."""
    from .usercerts import trust_bundle

    return RemoteFile(CA_FILE, trust_bundle(ca.cert, users), 0o644)


def cert_files(machine: Machine, ca: CertificateAuthority, users: ClientCA) -> list[RemoteFile]:
    return [
        ca_file(ca, users),
        RemoteFile(CERT_FILE, machine.tls_server_cert, 0o644),
        RemoteFile(KEY_FILE, machine.tls_server_key, 0o600),
    ]


def daemon_files(machine: Machine, facts: HostFacts) -> list[RemoteFile]:
    if facts.init == "systemd":
        return [RemoteFile(DROPIN, render_dropin(machine, facts), 0o644)]
    return [RemoteFile(OPTS_FILES[facts.init], render_opts_file(machine, facts), 0o644)]


def write_files_script(files: list[RemoteFile]) -> str:
    """Shell writing each file atomically (partial file, mode, rename), contents in
    here-documents with a delimiter that cannot occur in them."""
    parts = ["set -e", "umask 077", f"mkdir -p {quote(CERT_DIR)}", f"chmod 700 {quote(CERT_DIR)}"]
    for f in files:
        content = f.text
        delimiter = "DOCKERDASH_EOF"
        while delimiter in content:
            delimiter = f"DOCKERDASH_{secrets.token_hex(8).upper()}"
        partial = quote(f.path + ".dockerdash-partial")
        folder = f.path.rsplit("/", 1)[0]
        if f.path in OPTS_FILES.values():
            # The distribution's own file, kept once for `rm --purge`.
            backup = quote(f.path + BACKUP_SUFFIX)
            parts.append(
                f"if [ -e {quote(f.path)} ] && [ ! -e {backup} ] && "
                f"! grep -q dockerdash {quote(f.path)}; then cp -p {quote(f.path)} {backup}; fi"
            )
        parts += [
            f"(umask 022; mkdir -p {quote(folder)})",
            f"cat > {partial} <<'{delimiter}'\n{content}{delimiter}",
            f"chmod {f.mode:o} {partial}",
            f"mv -f {partial} {quote(f.path)}",
            f"echo {quote('Wrote ' + f.path)}",
        ]
    return "\n".join(parts) + "\n"


def hostname_script(name: str) -> str:
    """Set the host name (now and at boot) and make it resolve, as docker-machine did."""
    q = quote(name)
    return (
        f"name={q}\n"
        "current=$(cat /proc/sys/kernel/hostname)\n"
        'if [ "$current" != "$name" ]; then\n'
        '  hostname "$name" 2>/dev/null || printf %s "$name" > /proc/sys/kernel/hostname\n'
        '  echo "$name" > /etc/hostname\n'
        '  echo "Host name set to $name (was $current)"\n'
        "fi\n"
        'grep -qwF -- "$name" /etc/hosts || echo "127.0.1.1 $name" >> /etc/hosts\n'
    )


def write_files(
    session: SSHSession,
    facts: HostFacts,
    files: list[RemoteFile],
    on_line: Line,
    hostname: str = "",
) -> list[str]:
    """Write the files whose content differs on the host; return their paths."""
    changed = [f for f in files if facts.hashes.get(f.path) != f.sha256]
    script = write_files_script(changed) if changed else ""
    if hostname and hostname != facts.hostname:
        script += hostname_script(hostname)
    if not script:
        return []
    status, output = session.run_script(script, on_line=on_line, timeout=60)
    if status != 0:
        raise ProvisionError(
            f"Writing the Docker configuration on {session.host} failed (exit {status}):\n"
            + _tail(output)
        )
    for f in changed:
        facts.hashes[f.path] = f.sha256
    return [f.path for f in changed]


# -- restart, logs, wait ------------------------------------------------------------------


def _restart_script(facts: HostFacts) -> str:
    timeout = f"T=; command -v timeout >/dev/null 2>&1 && T='timeout {RESTART_TIMEOUT}'\n"
    if facts.init == "systemd":
        return (
            "set -e\n"
            "systemctl daemon-reload\n"
            "exec_start=$(systemctl show -p ExecStart --value docker.service)\n"
            f'case "$exec_start" in *{quote(CERT_DIR + "/")}*) ;; *)\n'
            '  echo "dockerdash-overridden: '
            '$(systemctl show -p DropInPaths --value docker.service)"\n'
            "  exit 3 ;;\nesac\n"
            "systemctl is-enabled -q docker.service 2>/dev/null || "
            "systemctl enable -q docker.service\n"
            f"{timeout}$T {RESTART['systemd']}\n"
        )
    if facts.init == "openrc":
        return (
            "set -e\nrc-update add docker default >/dev/null 2>&1 || true\n"
            f"{timeout}$T {RESTART['openrc']}\n"
        )
    return (
        "set -e\n"
        "if command -v update-rc.d >/dev/null 2>&1; then\n"
        "  update-rc.d docker defaults >/dev/null 2>&1 || true\n"
        "elif command -v chkconfig >/dev/null 2>&1; then\n"
        "  chkconfig docker on || true\n"
        f"fi\n{timeout}$T {RESTART['sysv']}\n"
    )


def restart(session: SSHSession, facts: HostFacts, on_line: Line) -> None:
    if facts.init == "systemd":
        state = facts.units.get("docker.service", "not-found")
        if state != "loaded":
            raise ProvisionError(
                f"dockerd is installed at {facts.dockerd} on {session.host}, but systemd's "
                f"docker.service is {state}"
                + (" (systemctl unmask docker.service)" if state == "masked" else "")
            )
    status, output = session.run_script(
        _restart_script(facts), on_line=on_line, timeout=RESTART_TIMEOUT + 30
    )
    if status == 3 and "dockerdash-overridden:" in output:
        paths = output.split("dockerdash-overridden:", 1)[1].strip().split()
        others = [p for p in paths if p != DROPIN]
        raise ProvisionError(
            f"Another systemd drop-in of docker.service on {session.host} sets ExecStart after "
            f"ours, so dockerd would not get its TLS flags: {' '.join(others) or '(unknown)'}. "
            "Remove its ExecStart lines and provision again."
        )
    if status != 0:
        raise ProvisionError(
            f"Docker did not start on {session.host} (exit {status}): {_tail(output, 3)}\n"
            f"Last lines of the Docker daemon's log:\n{log_tail(session, facts)}"
        )
    facts.active = True


def log_tail(session: SSHSession, facts: HostFacts, lines: int = LOG_TAIL) -> str:
    if facts.init == "systemd":
        cmd = f"journalctl -u docker.service -n {lines} --no-pager -o short-iso"
    else:
        cmd = f"tail -n {lines} {quote(LOG_FILES[facts.init])}"
    try:
        _, output = session.run(session.as_root(cmd), timeout=30)
    except SSHError as e:
        return f"(cannot read it: {e})"
    return output.strip() or "(empty)"


def _reason(error: Exception) -> str:
    text = str(error)
    for marker in ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed"):
        if marker in text:
            tail = text.split(marker, 1)[1].split(")")[0].strip(" :(")
            return f"TLS verification failed ({tail})" if tail else "TLS verification failed"
    if isinstance(error, requests.ConnectionError):
        if "Connection refused" in text:
            return "connection refused"
        if "timed out" in text.lower():
            return "no answer (timed out)"
    return text[:300]


def wait_for_api(machine: Machine, timeout: float = API_TIMEOUT) -> tuple[dict, dict]:
    """Poll the engine over TLS with the client certificate until it answers; (version, info)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        client = engines.client_for_machine(machine, timeout=min(5, timeout))
        try:
            return client.version(), client.info()
        except (requests.RequestException, docker.errors.DockerException, OSError) as e:
            last = e
        finally:
            client.close()
        if time.monotonic() >= deadline:
            raise ProvisionError(
                f"The Docker engine of {machine.name} did not answer at {machine.url} within "
                f"{timeout:g} s: {_reason(last)}"
            )
        time.sleep(API_POLL)


def purge_script(facts: HostFacts) -> str:
    """Undo our daemon configuration: Docker goes back to the distribution's setup."""
    restart = RESTART[facts.init]
    if facts.init == "systemd":
        restart = f"systemctl daemon-reload\n{restart}"
    restore = " ".join(quote(p) for p in OPTS_FILES.values())
    return (
        "set -e\n"
        f"rm -f {quote(DROPIN)}\n"
        f"for f in {restore}; do\n"
        f'  if [ -e "$f{BACKUP_SUFFIX}" ]; then mv -f "$f{BACKUP_SUFFIX}" "$f"; '
        'elif grep -q dockerdash "$f" 2>/dev/null; then rm -f "$f"; fi\n'
        "done\n"
        f"rm -rf {quote(CERT_DIR)}\n"
        f"{restart}\n"
        'echo "Docker runs with the distribution\'s configuration again"\n'
    )


def purge(session: SSHSession, facts: HostFacts, on_line: Line) -> None:
    status, output = session.run_script(purge_script(facts), on_line=on_line, timeout=180)
    if status != 0:
        raise ProvisionError(
            f"Undoing the Docker configuration on {session.host} failed (exit {status}):\n"
            + _tail(output)
        )


def _tail(output: str, lines: int = 15) -> str:
    return "\n".join(output.strip().splitlines()[-lines:])
