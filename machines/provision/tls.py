"""Provisioning steps for TLS: the engine's server certificate, the CAs it trusts for
clients (the dashboard's and the users'), healing an IP change under a certificate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from machines.lib.errors import DriverError
from machines.pki import certs, usercerts

if TYPE_CHECKING:
    from machines.models import CertificateAuthority, Machine


from machines.provision.host import (
    Reporter,
    open_session,
    require_configured,
    restart_engine,
    streaming,
    wait_for_engine,
)


def issue(machine: Machine, ctx: Reporter) -> None:
    """The server certificate, issued only when the one the machine has is not good."""
    ctx.ca = _issue(machine, ctx)
    ctx.users = usercerts.get_or_create_ca()


def issue_new(machine: Machine, ctx: Reporter) -> None:
    """A new server certificate (and, when asked, a new CA and client certificate)."""
    ctx.ca = _issue(machine, ctx, new_ca=bool(ctx.op.args.get("client_certs")), force=True)
    ctx.users = usercerts.get_or_create_ca()


def install_certs(machine: Machine, ctx: Reporter) -> None:
    """Put the new certificates in place and restart Docker (nothing else changes)."""
    from machines.provision import daemon

    files = daemon.cert_files(machine, ctx.ca, ctx.users)
    with streaming(ctx) as lines:
        daemon.write_files(ctx.session, ctx.facts, files, lines)
    restart_engine(ctx.session, ctx.facts, ctx)


def install_trust(machine: Machine, ctx: Reporter) -> None:
    """Make the engine trust the current users' client CA (and no revoked one) next to the
    dashboard's CA. Nothing else changes: no new server certificate, no other setting."""
    from machines.provision import daemon

    ca = certs.ca_for_machine(machine)
    users = ctx.users = usercerts.get_or_create_ca()
    with streaming(ctx) as lines:
        ctx.changed = daemon.write_files(ctx.session, ctx.facts, [daemon.ca_file(ca, users)], lines)
    ctx.log(
        f"The engine trusts the dashboard's CA ({usercerts.fingerprint(ca.cert)}) and the "
        f"users' client CA of {users.created_at:%Y-%m-%d %H:%M:%S} "
        f"({usercerts.fingerprint(users.cert)})" + ("" if ctx.changed else "; it already did")
    )


def restart_keeping_containers(machine: Machine, ctx: Reporter) -> None:
    """Restart Docker if its trust changed; with --live-restore its containers keep running
    (the step after the wait reports whether they did)."""
    ctx.running = None
    if ctx.changed or not ctx.facts.runs_our_config:
        ctx.running = _running_containers(machine)
        restart_engine(ctx.session, ctx.facts, ctx)
    else:
        ctx.log("Nothing changed and Docker is running: not restarting it")


def report_kept(machine: Machine, ctx: Reporter) -> None:
    before = ctx.running
    after = _running_containers(machine) if before is not None else None
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


def _running_containers(machine: Machine) -> set[str] | None:
    from machines.engine import clients

    try:
        client = clients.client_for_machine(machine)
        try:
            return {c.id for c in client.containers.list()}
        finally:
            client.close()
    except Exception:  # only a report: the rotation goes on without it
        return None


def report_retired_cas(machine: Machine, ctx: Reporter) -> None:
    if not ctx.op.args.get("client_certs"):
        return
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


def heal_ip_change(machine: Machine, ctx: Reporter) -> None:
    """Re-issue the server certificate for the machine's current IP and restart Docker.

    No steps of its own: it runs inside a step of the operation that found the change.
    """
    from machines.provision import daemon
    from machines.provision import facts as hostfacts

    ctx.log(
        f"The IP of {machine.name} is now {machine.ip}, which its server certificate does not "
        "name: re-issuing the certificate"
    )
    session = open_session(machine, ctx)
    try:
        facts = hostfacts.gather_facts(session)
        require_configured(machine, facts)
        ca = _issue(machine, ctx, force=True)
        users = usercerts.get_or_create_ca()
        with streaming(ctx) as lines:
            daemon.write_files(session, facts, daemon.cert_files(machine, ca, users), lines)
        restart_engine(session, facts, ctx)
    finally:
        session.close()
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


def check_engine(machine: Machine, ctx: Reporter) -> None:
    """After a (re)start: heal an IP change, then wait for the engine's API."""
    if machine.tls_server_cert and not certs.covers(machine.tls_server_cert, machine.ip):
        heal_ip_change(machine, ctx)
    wait_for_engine(machine, ctx)
