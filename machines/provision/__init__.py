"""Provisioning: what `docker-machine create` did after the host existed, step by step.

Operations call `provision`, `regenerate_certs`, `upgrade`, `check_engine` and `purge` with their
Context; each opens one SSH session, numbers its steps with `ctx.step()` and logs what it found
and did with `ctx.log()`. No secret is ever logged: files travel inside scripts on stdin and only
their paths, serials, fingerprints and dates are written to the log.

`engine` and `ssh` (the Docker SDK, paramiko) are imported where they are used: the CLI's quick
commands (`machine env`, `machine config`) import `certs` from this package and must start fast.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from django.utils import timezone

from machines.drivers.base import DriverError

from . import certs, usercerts
from .osinfo import ProvisionError

if TYPE_CHECKING:
    from machines.models import CertificateAuthority, Machine

    from .engine import HostFacts
    from .ssh import SSHSession

__all__ = [
    "PROVISION_STEPS",
    "REGENERATE_STEPS",
    "ROTATE_STEPS",
    "UPGRADE_STEPS",
    "LogOnly",
    "ProvisionError",
    "check_engine",
    "engine_url_of",
    "heal_ip_change",
    "ip_change",
    "provision",
    "purge",
    "regenerate_certs",
    "rotate_client_ca",
    "upgrade",
]

PROVISION_STEPS = 7
REGENERATE_STEPS = 5
ROTATE_STEPS = 5
UPGRADE_STEPS = 4
SSH_TIMEOUT = 30
# Output lines are stored (and pushed to viewers) in batches at most this often: a package
# install prints hundreds of lines in a burst.
FLUSH_EVERY = 0.5


class Reporter(Protocol):
    """What provisioning reports to: an operation's Context, or a plain logger (`LogOnly`)."""

    def step(self, name: str) -> None: ...

    def log(self, text: str) -> None: ...


class LogOnly:
    """A Reporter for work outside an operation: steps become plain log lines."""

    def __init__(self, log=print) -> None:
        self._log = log

    def step(self, name: str) -> None:
        self._log(name)

    def log(self, text: str) -> None:
        self._log(text)


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
            log_many = getattr(self.ctx, "log_many", None)
            if log_many:
                log_many(lines)
            else:
                for line in lines:
                    self.ctx.log(line)
        self.last_flush = time.monotonic()


@contextlib.contextmanager
def _streaming(ctx: Reporter) -> Iterator[_Lines]:
    lines = _Lines(ctx)
    try:
        yield lines
    finally:
        lines.flush()


def engine_url_of(machine: Machine) -> str:
    host = f"[{machine.ip}]" if ":" in machine.ip else machine.ip
    return f"tcp://{host}:{machine.engine_port}"


# -- the steps ----------------------------------------------------------------------------


@contextlib.contextmanager
def _connect(machine: Machine, ctx: Reporter, *, step: bool = True) -> Iterator[SSHSession]:
    from .ssh import fingerprint, wait_for_ssh

    addr = machine.get_driver().ssh_address(machine)
    where = f"{addr.user}@{addr.host}:{addr.port}"
    if step:
        ctx.step(f"Connect to {where} over SSH")
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
        yield session
    finally:
        session.close()


def _detect(session: SSHSession, ctx: Reporter, *, step: bool = True) -> HostFacts:
    from . import engine

    if step:
        ctx.step("Detect the operating system")
    facts = engine.gather_facts(session)
    managers = ", ".join(sorted(facts.managers)) or "none"
    ctx.log(
        f"{facts.os.pretty} (ID={facts.os.id}, {facts.os.profile.family} family); init system: "
        f"{facts.init}; package managers: {managers}"
    )
    if facts.dockerd:
        ctx.log(f"{facts.docker_version or 'Docker'} at {facts.dockerd}")
    return facts


def _issue(
    machine: Machine, ctx: Reporter, *, new_ca: bool = False, force: bool = False
) -> CertificateAuthority:
    if new_ca:
        ca = certs.rotate_ca()
        ctx.log(f"Made a new CA and client certificate (valid until {ca.expires_at:%Y-%m-%d})")
    else:
        ca = certs.get_or_create_ca()
    problem = "a new one was asked for" if force else certs.server_cert_problem(machine, ca)
    if problem is None:
        ctx.log(
            f"The server certificate (serial {machine.tls_server_serial}, valid until "
            f"{machine.tls_server_expires_at:%Y-%m-%d}) is still good"
        )
        return ca
    old = machine.tls_server_serial
    certs.issue_server_cert(machine, ca)
    machine.save(
        update_fields=[
            "tls_server_cert",
            "tls_server_key",
            "tls_server_expires_at",
            "tls_server_serial",
        ]
    )
    ctx.log(
        f"Issued a server certificate ({problem}) for {', '.join(certs.server_names(machine))}: "
        f"serial {machine.tls_server_serial}"
        + (f" (was {old})" if old else "")
        + f", valid until {machine.tls_server_expires_at:%Y-%m-%d}"
    )
    ctx.log(
        f"Client certificate valid until {ca.client_expires_at:%Y-%m-%d}; "
        f"CA valid until {ca.expires_at:%Y-%m-%d}"
    )
    if pruned := certs.prune_retired_cas():
        ctx.log(f"Deleted {pruned} retired CA(s) that no machine uses any more")
    return ca


def _restart(session: SSHSession, facts: HostFacts, ctx: Reporter) -> None:
    from . import engine

    started = time.monotonic()
    with _streaming(ctx) as lines:
        engine.restart(session, facts, lines)
    ctx.log(f"Docker restarted in {time.monotonic() - started:.1f} s")


def _wait(
    machine: Machine,
    ctx: Reporter,
    session: SSHSession | None = None,
    facts: HostFacts | None = None,
    *,
    step: bool = True,
) -> None:
    """Wait for the engine's API over TLS with the client certificate; record what it says.

    When it does not answer, the error carries the tail of the daemon's log (over the open
    session, or a new one).
    """
    from . import engine

    if step:
        ctx.step("Wait for the Docker API")
    machine.engine_url = engine_url_of(machine)
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
    machine.last_error = ""
    machine.save(
        update_fields=[
            "engine_url",
            "docker_version",
            "engine_info",
            "engine_reachable",
            "last_seen",
            "last_error",
        ]
    )
    ctx.log(
        f"Docker {machine.docker_version} answers at {machine.engine_url} with TLS "
        f"(after {time.monotonic() - started:.1f} s)"
    )


# -- the actions ----------------------------------------------------------------------------


def provision(machine: Machine, ctx: Reporter) -> None:
    """Install Docker if it is missing, configure it for TLS, restart it, wait for its API.

    Idempotent: an unchanged machine is left alone (nothing rewritten, nothing restarted).
    """
    from . import engine

    with _connect(machine, ctx) as session:
        facts = _detect(session, ctx)

        ctx.step("Install Docker")
        if facts.dockerd:
            ctx.log(f"Docker is installed; keeping it ({facts.docker_version})")
        else:
            started = time.monotonic()
            source = machine.engine_install_url or "the distribution's packages"
            ctx.log(f"Docker is not installed; installing it from {source}")
            with _streaming(ctx) as lines:
                engine.install(session, facts, machine.engine_install_url, lines)
            facts = engine.gather_facts(session)
            if not facts.dockerd:
                raise ProvisionError(
                    f"The installation finished but there is no dockerd on {session.host}"
                )
            ctx.log(f"Installed {facts.docker_version} in {time.monotonic() - started:.1f} s")

        ctx.step("Issue the TLS certificates")
        ca = _issue(machine, ctx)
        users = usercerts.get_or_create_ca()

        ctx.step("Configure the Docker daemon")
        files = engine.cert_files(machine, ca, users) + engine.daemon_files(machine, facts)
        with _streaming(ctx) as lines:
            changed = engine.write_files(session, facts, files, lines, hostname=machine.name)
        if not changed:
            ctx.log("The configuration on the host is already up to date")

        ctx.step("Restart Docker")
        if changed or not facts.runs_our_config:
            _restart(session, facts, ctx)
        else:
            ctx.log("Nothing changed and Docker is running: not restarting it")
        _wait(machine, ctx, session, facts)
    usercerts.record_trust(machine, users)


def regenerate_certs(machine: Machine, ctx: Reporter, *, new_ca: bool = False) -> None:
    """A new server certificate (and with new_ca a new CA and client certificate), then a
    daemon restart: no reinstall, no other configuration change, no host name change."""
    from . import engine

    with _connect(machine, ctx) as session:
        facts = _detect(session, ctx)
        _require_configured(machine, facts)
        ctx.step("Issue new TLS certificates")
        ca = _issue(machine, ctx, new_ca=new_ca, force=True)
        users = usercerts.get_or_create_ca()
        ctx.step("Install the certificates and restart Docker")
        with _streaming(ctx) as lines:
            engine.write_files(session, facts, engine.cert_files(machine, ca, users), lines)
        _restart(session, facts, ctx)
        _wait(machine, ctx, session, facts)
    usercerts.record_trust(machine, users)
    if new_ca:
        _report_retired_cas(machine, ctx)


def rotate_client_ca(machine: Machine, ctx: Reporter) -> None:
    """Make the engine trust the current users' client CA (and no revoked one) next to the
    dashboard's CA, then restart Docker: with --live-restore its containers keep running.
    Nothing else changes: no new server certificate, no other configuration."""
    from . import engine

    with _connect(machine, ctx) as session:
        facts = _detect(session, ctx)
        _require_configured(machine, facts)
        ctx.step("Install the trusted client CAs")
        ca = certs.ca_for_machine(machine)
        users = usercerts.get_or_create_ca()
        with _streaming(ctx) as lines:
            changed = engine.write_files(session, facts, [engine.ca_file(ca, users)], lines)
        ctx.log(
            f"The engine trusts the dashboard's CA ({usercerts.fingerprint(ca.cert)}) and the "
            f"users' client CA of {users.created_at:%Y-%m-%d %H:%M:%S} "
            f"({usercerts.fingerprint(users.cert)})" + ("" if changed else "; it already did")
        )
        ctx.step("Restart Docker")
        if changed or not facts.runs_our_config:
            running = _running_containers(machine)
            _restart(session, facts, ctx)
        else:
            running = None
            ctx.log("Nothing changed and Docker is running: not restarting it")
        _wait(machine, ctx, session, facts)
        if running is not None:
            _report_kept(machine, running, ctx)
    usercerts.record_trust(machine, users)


def _running_containers(machine: Machine) -> set[str] | None:
    from machines import engines

    try:
        client = engines.client_for_machine(machine)
        try:
            return {c.id for c in client.containers.list()}
        finally:
            client.close()
    except Exception:  # only a report: the rotation goes on without it
        return None


def _report_kept(machine: Machine, before: set[str], ctx: Reporter) -> None:
    after = _running_containers(machine)
    if after is None:
        return
    gone = before - after
    if not gone:
        ctx.log(f"All {len(before)} running container(s) kept running")
    else:
        ctx.log(
            f"{len(gone)} of {len(before)} running container(s) no longer run after the "
            f"restart: {', '.join(sorted(c[:12] for c in gone))}"
        )


def upgrade(machine: Machine, ctx: Reporter) -> None:
    """Upgrade the package that provides dockerd; the configuration stays as it is."""
    from . import engine

    with _connect(machine, ctx) as session:
        facts = _detect(session, ctx)
        ctx.step("Upgrade Docker")
        if not facts.dockerd:
            raise ProvisionError(
                f"Docker is not installed on {machine.name}; provision the machine first"
            )
        before = facts.docker_version
        with _streaming(ctx) as lines:
            engine.upgrade(session, facts, lines)
        _wait(machine, ctx, session, facts)
    if machine.docker_version and machine.docker_version in before:
        ctx.log(f"Docker {machine.docker_version} was already the newest version available")
    else:
        ctx.log(f"Upgraded: {before} -> Docker {machine.docker_version}")


def check_engine(machine: Machine, ctx: Reporter) -> None:
    """After a (re)start: heal an IP change, then wait for the engine's API."""
    if machine.tls_server_cert and not certs.covers(machine.tls_server_cert, machine.ip):
        heal_ip_change(machine, ctx)
    _wait(machine, ctx, step=False)


def heal_ip_change(machine: Machine, ctx: Reporter) -> None:
    """Re-issue the server certificate for the machine's current IP and restart Docker.

    No steps of its own: it runs inside a step of the operation that found the change.
    """
    from . import engine

    ctx.log(
        f"The IP of {machine.name} is now {machine.ip}, which its server certificate does not "
        "name: re-issuing the certificate"
    )
    with _connect(machine, ctx, step=False) as session:
        facts = engine.gather_facts(session)
        _require_configured(machine, facts)
        ca = _issue(machine, ctx, force=True)
        users = usercerts.get_or_create_ca()
        with _streaming(ctx) as lines:
            engine.write_files(session, facts, engine.cert_files(machine, ca, users), lines)
        _restart(session, facts, ctx)
    usercerts.record_trust(machine, users)


def ip_change(machine: Machine) -> str | None:
    """The machine's new IP if it changed since its certificate was issued, else None.

    Cheap (one driver call, no SSH): the runner's health check can call it every cycle.
    """
    if not machine.tls_server_cert:
        return None
    try:
        current = machine.get_driver().ip(machine)
    except DriverError:
        return None
    if current and (current != machine.ip or not certs.covers(machine.tls_server_cert, current)):
        return current
    return None


def purge(machine: Machine, ctx: Reporter) -> None:
    """Undo dockerdash's daemon configuration on the host (`rm --purge`); Docker stays."""
    from . import engine

    with _connect(machine, ctx, step=False) as session:
        facts = engine.gather_facts(session)
        if not facts.dockerd:
            ctx.log("Docker is not installed on the host; nothing to undo")
            return
        with _streaming(ctx) as lines:
            engine.purge(session, facts, lines)


def _require_configured(machine: Machine, facts: HostFacts) -> None:
    from . import engine

    ours = engine.DROPIN if facts.init == "systemd" else engine.OPTS_FILES[facts.init]
    if not facts.dockerd or ours not in facts.hashes:
        raise ProvisionError(
            f"The Docker daemon of {machine.name} was not configured by dockerdash yet: "
            f"run `machine provision {machine.name}` first"
        )


def _daemon_log(
    machine: Machine, ctx: Reporter, session: SSHSession | None, facts: HostFacts | None
) -> str:
    from . import engine

    try:
        if session is None:
            with _connect(machine, LogOnly(lambda _: None), step=False) as session:
                return _daemon_log(machine, ctx, session, engine.gather_facts(session))
        facts = facts or engine.gather_facts(session)
        state = session.run(session.as_root(engine.ACTIVE[facts.init]), timeout=30)[1].strip()
        hint = f"Docker is {state or 'not running'} on the host" + (
            f": if its log shows no error, check that port {machine.engine_port} is open "
            "from the dashboard to the host (firewall, security group)."
            if state == "active"
            else "."
        )
        return f"{hint}\nLast lines of the Docker daemon's log:\n{engine.log_tail(session, facts)}"
    except Exception as e:  # the diagnosis must not hide the original error
        return f"(The Docker daemon's log could not be read: {e})"


def _report_retired_cas(machine: Machine, ctx: Reporter) -> None:
    from machines.models import Machine as M

    others = [
        m.name
        for m in M.objects.exclude(pk=machine.pk).exclude(tls_server_cert="")
        if certs.issuer_of(m.tls_server_cert) != certs.get_or_create_ca()
    ]
    if others:
        ctx.log(
            f"{len(others)} other machine(s) still use the previous CA and stay reachable with "
            f"it until you run regenerate-certs on them: {', '.join(sorted(others))}"
        )
