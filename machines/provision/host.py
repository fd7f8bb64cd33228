"""Provisioning steps on the host: connect over SSH, detect the OS, install Docker, configure
and restart its daemon, wait for its API; upgrade and purge. See the package's docstring."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from django.utils import timezone

from machines.pki import usercerts
from machines.provision.osinfo import ProvisionError

if TYPE_CHECKING:
    from machines.lib.ssh import SSHSession
    from machines.models import Machine
    from machines.provision.engine import HostFacts

SSH_TIMEOUT = 30
# Output lines are stored (and pushed to viewers) in batches at most this often: a package
# install prints hundreds of lines in a burst.
FLUSH_EVERY = 0.5


class Reporter(Protocol):
    """What the steps report to and share through: an operation's Context."""

    op: Any
    session: Any
    facts: Any
    ca: Any
    users: Any
    changed: bool
    docker_before: str

    def log(self, text: str) -> None: ...

    def log_many(self, texts: list[str]) -> None: ...


class _Quiet:
    """A Reporter that drops what it is told (diagnostics inside an error message)."""

    def log(self, text: str) -> None:
        pass

    def log_many(self, texts: list[str]) -> None:
        pass


class _Lines:
    """Streams a command's output lines to the log, in small batches."""

    def __init__(self, ctx: Reporter, prefix: str = "  ") -> None:
        self.ctx, self.prefix = ctx, prefix
        self.pending: list[str] = []
        self.last_flush = 0.0

    def __call__(self, line: str) -> None:
        # Progress meters redraw one line with carriage returns: keep what it says last.
        line = line.rstrip().rsplit("\r", 1)[-1].rstrip()
        if not line:
            return
        self.pending.append(self.prefix + line)
        if time.monotonic() - self.last_flush >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            lines, self.pending = self.pending, []
            self.ctx.log_many(lines)
        self.last_flush = time.monotonic()


@contextlib.contextmanager
def streaming(ctx: Reporter) -> Iterator[_Lines]:
    lines = _Lines(ctx)
    try:
        yield lines
    finally:
        lines.flush()


# -- the steps: each is one numbered step of an operation (see operations.ACTIONS) --------
# They share what they found through the Context: ctx.session (closed by the orchestrator
# when the operation ends), ctx.facts, ctx.ca, ctx.changed.


def ssh_target(machine: Machine) -> str:
    addr = machine.get_driver().ssh_address(machine)
    return f"{addr.user}@{addr.host}:{addr.port}"


def open_session(machine: Machine, ctx: Reporter) -> SSHSession:
    from machines.lib.ssh import fingerprint, wait_for_ssh

    addr = machine.get_driver().ssh_address(machine)
    session = wait_for_ssh(
        addr.host,
        addr.port,
        addr.user,
        machine.ssh_private_key,
        machine.ssh_host_key,
        timeout=SSH_TIMEOUT,
    )
    try:
        if not machine.ssh_host_key:
            machine.ssh_host_key = session.host_key
            machine.save(update_fields=["ssh_host_key"])
            ctx.log(f"Pinned the host key of {addr.host}: {fingerprint(session.host_key)}")
        else:
            ctx.log(f"Connected; host key {fingerprint(session.host_key)} (pinned)")
        if not session.is_root:
            status, output = session.run_script("true", timeout=30)
            if status != 0:
                raise ProvisionError(f"Running a command as root on {addr.host} failed: {output}")
            ctx.log(f"{addr.user} becomes root with sudo -n")
    except BaseException:
        session.close()
        raise
    return session


def connect(machine: Machine, ctx: Reporter) -> None:
    ctx.session = open_session(machine, ctx)


def detect(machine: Machine, ctx: Reporter) -> None:
    from machines.provision import facts as hostfacts

    facts = ctx.facts = hostfacts.gather_facts(ctx.session)
    managers = ", ".join(sorted(facts.managers)) or "none"
    ctx.log(
        f"{facts.os.pretty} (ID={facts.os.id}, {facts.os.profile.family} family); init system: "
        f"{facts.init}; package managers: {managers}"
    )
    if facts.dockerd:
        ctx.log(f"{facts.docker_version or 'Docker'} at {facts.dockerd}")


def detect_configured(machine: Machine, ctx: Reporter) -> None:
    """Detect, and refuse a daemon that dockerdash has not configured yet."""
    detect(machine, ctx)
    require_configured(machine, ctx.facts)


def install(machine: Machine, ctx: Reporter) -> None:
    from machines.provision import engine
    from machines.provision import facts as hostfacts

    session, facts = ctx.session, ctx.facts
    if facts.dockerd:
        ctx.log(f"Docker is installed; keeping it ({facts.docker_version})")
        return
    started = time.monotonic()
    source = machine.engine_install_url or "the distribution's packages"
    ctx.log(f"Docker is not installed; installing it from {source}")
    with streaming(ctx) as lines:
        engine.install(session, facts, machine.engine_install_url, lines)
    facts = ctx.facts = hostfacts.gather_facts(session)
    if not facts.dockerd:
        raise ProvisionError(f"The installation finished but there is no dockerd on {session.host}")
    ctx.log(f"Installed {facts.docker_version} in {time.monotonic() - started:.1f} s")


def configure(machine: Machine, ctx: Reporter) -> None:
    from machines.provision import daemon

    files = daemon.cert_files(machine, ctx.ca, ctx.users)
    files += daemon.daemon_files(machine, ctx.facts)
    with streaming(ctx) as lines:
        ctx.changed = daemon.write_files(
            ctx.session, ctx.facts, files, lines, hostname=machine.name
        )
    if not ctx.changed:
        ctx.log("The configuration on the host is already up to date")


def restart_if_changed(machine: Machine, ctx: Reporter) -> None:
    if ctx.changed or not ctx.facts.runs_our_config:
        restart_engine(ctx.session, ctx.facts, ctx)
    else:
        ctx.log("Nothing changed and Docker is running: not restarting it")


def upgrade_docker(machine: Machine, ctx: Reporter) -> None:
    """Upgrade the package that provides dockerd; the configuration stays as it is."""
    from machines.provision import engine

    if not ctx.facts.dockerd:
        raise ProvisionError(
            f"Docker is not installed on {machine.name}; provision the machine first"
        )
    ctx.docker_before = ctx.facts.docker_version
    with streaming(ctx) as lines:
        engine.upgrade(ctx.session, ctx.facts, lines)


def wait_for_api(machine: Machine, ctx: Reporter) -> None:
    wait_for_engine(machine, ctx, ctx.session, ctx.facts)
    if ctx.users is not None:
        # The engine now runs with this users' CA: downloads for it work from here on.
        usercerts.record_trust(machine, ctx.users)


def report_upgrade(machine: Machine, ctx: Reporter) -> None:
    before = ctx.docker_before
    if machine.docker_version and machine.docker_version in before:
        ctx.log(f"Docker {machine.docker_version} was already the newest version available")
    else:
        ctx.log(f"Upgraded: {before} -> Docker {machine.docker_version}")


def purge(machine: Machine, ctx: Reporter) -> None:
    """Undo dockerdash's daemon configuration on the host (`rm --purge`); Docker stays."""
    from machines.provision import engine
    from machines.provision import facts as hostfacts

    session = open_session(machine, ctx)
    try:
        facts = hostfacts.gather_facts(session)
        if not facts.dockerd:
            ctx.log("Docker is not installed on the host; nothing to undo")
            return
        with streaming(ctx) as lines:
            engine.purge(session, facts, lines)
    finally:
        session.close()


def restart_engine(session: SSHSession, facts: HostFacts, ctx: Reporter) -> None:
    from machines.provision import engine

    started = time.monotonic()
    with streaming(ctx) as lines:
        engine.restart(session, facts, lines)
    ctx.log(f"Docker restarted in {time.monotonic() - started:.1f} s")


def wait_for_engine(
    machine: Machine,
    ctx: Reporter,
    session: SSHSession | None = None,
    facts: HostFacts | None = None,
) -> None:
    """Wait for the engine's API over TLS with the client certificate; record what it says.

    When it does not answer, the error carries the tail of the daemon's log (over the open
    session, or a new one).
    """
    from machines.provision import engine

    machine.engine_url = machine.tls_engine_url
    started = time.monotonic()
    try:
        version, info = engine.wait_for_api(machine)
    except ProvisionError as e:
        raise ProvisionError(f"{e}\n{_daemon_log(machine, ctx, session, facts)}") from None
    machine.docker_version = version.get("Version", "")
    machine.engine_info = {
        "os": info.get("OperatingSystem", ""),
        "kernel": info.get("KernelVersion", ""),
        "cpus": info.get("NCPU"),
        "memory": info.get("MemTotal"),
        "storage_driver": info.get("Driver", ""),
        "api_version": version.get("ApiVersion", ""),
        "live_restore": info.get("LiveRestoreEnabled", False),
    }
    machine.engine_reachable = True
    machine.last_seen = timezone.now()
    machine.last_error = machine.last_error_detail = ""
    machine.save(
        update_fields=[
            "engine_url",
            "docker_version",
            "engine_info",
            "engine_reachable",
            "last_seen",
            "last_error",
            "last_error_detail",
        ]
    )
    ctx.log(
        f"Docker {machine.docker_version} answers at {machine.engine_url} with TLS "
        f"(after {time.monotonic() - started:.1f} s)"
    )


def require_configured(machine: Machine, facts: HostFacts) -> None:
    from machines.provision import facts as hostfacts

    ours = hostfacts.DROPIN if facts.init == "systemd" else hostfacts.OPTS_FILES[facts.init]
    if not facts.dockerd or ours not in facts.hashes:
        raise ProvisionError(
            f"The Docker daemon of {machine.name} was not configured by dockerdash yet: "
            f"run `machine provision {machine.name}` first"
        )


def _daemon_log(
    machine: Machine, ctx: Reporter, session: SSHSession | None, facts: HostFacts | None
) -> str:
    from machines.provision import engine
    from machines.provision import facts as hostfacts

    try:
        if session is None:
            session = open_session(machine, _Quiet())
            try:
                return _daemon_log(machine, ctx, session, hostfacts.gather_facts(session))
            finally:
                session.close()
        facts = facts or hostfacts.gather_facts(session)
        state = session.run(session.as_root(hostfacts.ACTIVE[facts.init]), timeout=30)[1].strip()
        hint = f"Docker is {state or 'not running'} on the host" + (
            f": if its log shows no error, check that port {machine.engine_port} is open "
            "from the dashboard to the host (firewall, security group)."
            if state == "active"
            else "."
        )
        return f"{hint}\nLast lines of the Docker daemon's log:\n{engine.log_tail(session, facts)}"
    except Exception as e:  # the diagnosis must not hide the original error
        return f"(The Docker daemon's log could not be read: {e})"
