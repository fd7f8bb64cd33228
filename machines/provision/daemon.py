"""The Docker daemon's configuration on a host, per init system (see engine.py for how and
why), and writing files there: only when their content changed, inside a script on stdin."""

from __future__ import annotations

import hashlib
import re
import secrets
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from machines.lib.ssh import SSHSession, quote
from machines.provision.facts import (
    BACKUP_SUFFIX,
    CA_FILE,
    CERT_DIR,
    CERT_FILE,
    DROPIN,
    KEY_FILE,
    LOG_FILES,
    OPTS_FILES,
    HostFacts,
    Line,
    tail,
)
from machines.provision.osinfo import ProvisionError

if TYPE_CHECKING:
    from machines.models import CertificateAuthority, ClientCA, Machine

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


def in_cluster(machine: Machine) -> bool:
    from machines.models import ClusterNode

    # An unsaved machine (a plan rendered before create) is in no cluster yet.
    return machine.pk is not None and ClusterNode.objects.filter(machine_id=machine.pk).exists()


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
    # A swarm node (or a machine about to be one: it is in a cluster) cannot live-restore.
    swarm = facts.swarm or in_cluster(machine)
    if not swarm and not any(w.startswith("--live-restore") for w in extra):
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
    from machines.pki.usercerts import trust_bundle

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
            + tail(output)
        )
    for f in changed:
        facts.hashes[f.path] = f.sha256
    return [f.path for f in changed]
