"""A machine's engine made ready for swarm mode: dockerd refuses swarm with --live-restore,
which provisioning sets on every other machine, so a machine picked for a cluster has its
daemon configuration written again without it (and Docker restarted if that changed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import daemon
from . import facts as hostfacts
from .host import open_session, restart_engine, streaming, wait_for_engine

if TYPE_CHECKING:
    from machines.models import Machine

    from .host import Reporter


def prepare_for_swarm(machine: Machine, ctx: Reporter) -> None:
    session = open_session(machine, ctx)
    try:
        facts = hostfacts.gather_facts(session)
        with streaming(ctx) as lines:
            changed = daemon.write_files(
                session, facts, daemon.daemon_files(machine, facts), lines, hostname=machine.name
            )
        if not changed:
            ctx.log(f"{machine.name}: Docker is configured for swarm mode already")
            return
        ctx.log(f"{machine.name}: Docker configured without --live-restore; restarting it")
        restart_engine(session, facts, ctx)
        wait_for_engine(machine, ctx, session, facts)
    finally:
        session.close()
