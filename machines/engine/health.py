"""Health probes: what the driver says of a host, then a ping of its engine; stored, and
published only when something a viewer sees changed. Pages never wait for these."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from machines import live
from machines.engine import clients
from machines.lib.errorwords import describe, detail, target_of
from machines.models import Machine


def save_observation(machine: Machine, *, publish: bool = False, **changes) -> None:
    """Store what was observed; publish only when something a viewer sees changed."""
    visible = ("state", "docker_version", "engine_reachable", "last_error", "ip")
    changed = any(getattr(machine, k) != v for k, v in changes.items() if k in visible)
    for key, value in changes.items():
        setattr(machine, key, value)
    Machine.objects.filter(pk=machine.pk).update(**changes)
    if changed or publish:
        live.machine_changed(machine)


@dataclass(frozen=True)
class EngineAccess:
    """What reaching a machine's engine takes, read from the database beforehand (so that a
    probe in another thread needs no database)."""

    url: str
    ca: str = ""
    cert: str = ""
    key: str = ""
    ca_name: str = ""


def engine_access(machine: Machine) -> EngineAccess | None:
    if not machine.engine_url:
        return None
    if machine.url.startswith(("tcp://", "https://")):
        from machines.pki.certs import ca_for_machine

        ca = ca_for_machine(machine)
        return EngineAccess(machine.url, ca.cert, ca.client_cert, ca.client_key, ca.name)
    return EngineAccess(machine.url)


def probe(machine: Machine, access: EngineAccess | None, timeout=None, *, heal=None) -> dict:
    """What a health check observes (the fields to store); only the network (and `heal`)."""
    timeout = timeout or settings.HEALTH_CHECK_TIMEOUT
    started = time.monotonic()
    now = timezone.now()
    changes: dict = {"last_checked": now}
    try:
        changes["state"] = machine.get_driver().state(machine)
        changes.update(last_error="", last_error_detail="")
    except Exception as e:
        changes.update(
            state=Machine.State.ERROR, last_error=str(e)[:1000], last_error_detail=detail(e)
        )
    running = changes["state"] == Machine.State.RUNNING
    if running and heal is not None and heal(machine):
        return changes
    if running and access is not None:
        try:
            version = clients.ping(
                access.url, ca=access.ca, cert=access.cert, key=access.key, timeout=timeout
            )
            changes.update(engine_reachable=True, docker_version=version.get("Version", ""))
        except Exception as e:
            sentence = describe(e, target_of(access.url, ca=access.ca_name, timeout=timeout))
            return changes | {
                "engine_reachable": False,
                "last_error": _unreachable(sentence)[:1000],
                "last_error_detail": detail(e),
            }
    if running:
        changes.update(last_seen=now, response_time_ms=int((time.monotonic() - started) * 1000))
    return changes


def unreachable(machine: Machine, error: BaseException, timeout: float | None = None) -> str:
    """Why the machine's engine cannot be reached, in one sentence."""
    access = engine_access(machine) or EngineAccess(machine.url)
    return _unreachable(describe(error, target_of(access.url, ca=access.ca_name, timeout=timeout)))


def _unreachable(sentence: str) -> str:
    return f"Engine unreachable: {sentence}" + ("" if sentence.endswith(("?", "!")) else ".")
