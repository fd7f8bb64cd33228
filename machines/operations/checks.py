"""Health checks as the runner runs them: probe a machine (engine/health.py), sample its
host's use, store what was seen, and ask for a new certificate when its IP changed."""

from __future__ import annotations

import logging

from machines.engine import hostusage
from machines.engine.health import engine_access, probe, save_observation
from machines.models import Machine
from machines.operations import actions as operations

log = logging.getLogger(__name__)


def check_machine(machine: Machine, timeout: float | None = None) -> None:
    """One health check: the driver's view of the host, then a ping of its engine."""
    changes = probe(machine, engine_access(machine), timeout, heal=heal)
    save_observation(machine, publish=sample_host(machine, changes), **changes)


def sample_host(machine: Machine, changes: dict) -> bool:
    """The host's CPU, memory and disk (over SSH, at most every HOST_USAGE_INTERVAL seconds),
    only from a host whose engine just answered: a dead host costs no SSH timeout. Whether
    what the pages show changed."""
    return changes.get("engine_reachable") is True and hostusage.sample(machine)


def heal(machine: Machine) -> bool:
    """A host that came back with another IP (container restart, cloud stop/start) gets its
    certificate re-issued by an operation, before anyone trips over it."""
    if not machine.tls_server_cert:
        return False
    try:
        return operations.request_ip_heal(machine) is not None
    except Exception as e:
        log.warning("Checking %s for an IP change failed: %s", machine.name, e)
        return False


def refresh_machine(machine_id: int) -> None:
    machine = Machine.objects.select_related("driver").filter(pk=machine_id).first()
    if machine is not None:
        check_machine(machine)
