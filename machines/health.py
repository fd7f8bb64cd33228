"""Health checks: what the driver says of a host, then a ping of its engine; stored, and
published only when something a viewer sees changed. Pages never wait for these."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.utils import timezone

from . import clients, live, operations
from .models import Machine

log = logging.getLogger(__name__)


def save_observation(machine: Machine, **changes) -> None:
    """Store what was observed; publish only when something a viewer sees changed."""
    visible = ("state", "docker_version", "engine_reachable", "last_error", "ip")
    changed = any(getattr(machine, k) != v for k, v in changes.items() if k in visible)
    for key, value in changes.items():
        setattr(machine, key, value)
    Machine.objects.filter(pk=machine.pk).update(**changes)
    if changed:
        live.machine_changed(machine)


def check_machine(machine: Machine, timeout: float | None = None) -> None:
    """One health check: the driver's view of the host, then a ping of its engine."""
    timeout = timeout or settings.HEALTH_CHECK_TIMEOUT
    started = time.monotonic()
    now = timezone.now()
    changes: dict = {"last_checked": now}
    try:
        changes["state"] = machine.get_driver().state(machine)
        changes["last_error"] = ""
    except Exception as e:
        changes.update(state=Machine.State.ERROR, last_error=str(e)[:1000])
    if changes["state"] == Machine.State.RUNNING and machine.tls_server_cert:
        # A host that came back with another IP (container restart, cloud stop/start) gets
        # its certificate re-issued by an operation, before anyone trips over it.
        try:
            healing = operations.request_ip_heal(machine)
        except Exception as e:
            healing = None
            log.warning("Checking %s for an IP change failed: %s", machine.name, e)
        if healing is not None:
            save_observation(machine, **changes)
            return
    if changes["state"] == Machine.State.RUNNING and machine.engine_url:
        try:
            client = clients.client_for_machine(machine, timeout=timeout)
            try:
                version = client.version()
            finally:
                client.close()
            changes.update(
                engine_reachable=True,
                docker_version=version.get("Version", ""),
                last_seen=now,
                response_time_ms=int((time.monotonic() - started) * 1000),
            )
        except Exception as e:
            changes.update(engine_reachable=False, last_error=f"Engine unreachable: {e}"[:1000])
    elif changes["state"] == Machine.State.RUNNING:
        changes.update(last_seen=now, response_time_ms=int((time.monotonic() - started) * 1000))
    save_observation(machine, **changes)


def refresh_machine(machine_id: int) -> None:
    machine = Machine.objects.select_related("driver").filter(pk=machine_id).first()
    if machine is not None:
        check_machine(machine)
