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

import time
from typing import TYPE_CHECKING

import docker.errors
import requests

from machines.engine import clients
from machines.lib.ssh import SSHError, SSHSession, quote
from machines.provision.facts import (
    API_POLL,
    API_TIMEOUT,
    BACKUP_SUFFIX,
    CERT_DIR,
    DROPIN,
    INSTALL_TIMEOUT,
    LOG_FILES,
    LOG_TAIL,
    OPTS_FILES,
    RESTART,
    RESTART_TIMEOUT,
    HostFacts,
    Line,
    tail,
)
from machines.provision.osinfo import ProvisionError, package_manager

if TYPE_CHECKING:
    from machines.models import Machine


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
            + tail(output)
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
            f"Upgrading Docker on {session.host} failed (exit {status}):\n{tail(output)}"
        )


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
            f"Docker did not start on {session.host} (exit {status}): {tail(output, 3)}\n"
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
        client = clients.client_for_machine(machine, timeout=min(5, timeout))
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
            + tail(output)
        )
