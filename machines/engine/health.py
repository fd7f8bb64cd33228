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
    changes, ask_engine = observe_host(machine, access, heal)
    if not ask_engine:
        return changes
    try:
        version = clients.ping(
            access.url, ca=access.ca, cert=access.cert, key=access.key, timeout=timeout
        )
    except Exception as e:
        return changes | engine_failed(access, e, timeout)
    return changes | engine_answered(version, started)


def observe_host(machine: Machine, access: EngineAccess | None, heal=None) -> tuple[dict, bool]:
    """The driver's view of the host (blocking: a driver may ask a provider or a parent
    engine), and whether its engine should be pinged next."""
    changes: dict = {"last_checked": timezone.now()}
    try:
        changes["state"] = machine.get_driver().state(machine)
        changes.update(last_error="", last_error_detail="")
    except Exception as e:
        changes.update(
            state=Machine.State.ERROR, last_error=str(e)[:1000], last_error_detail=detail(e)
        )
    running = changes["state"] == Machine.State.RUNNING
    if running and heal is not None and heal(machine):
        return changes, False
    if running and access is None:
        changes["last_seen"] = changes["last_checked"]
    return changes, running and access is not None


def engine_answered(version: dict, started: float) -> dict:
    return {
        "engine_reachable": True,
        "docker_version": version.get("Version", ""),
        "last_seen": timezone.now(),
        "response_time_ms": int((time.monotonic() - started) * 1000),
    }


def engine_failed(access: EngineAccess, error: BaseException, timeout: float) -> dict:
    sentence = describe(error, target_of(access.url, ca=access.ca_name, timeout=timeout))
    return {
        "engine_reachable": False,
        "last_error": unreachable_words(sentence)[:1000],
        "last_error_detail": detail(error),
    }


def unreachable(machine: Machine, error: BaseException, timeout: float | None = None) -> str:
    """Why the machine's engine cannot be reached, in one sentence."""
    access = engine_access(machine) or EngineAccess(machine.url)
    return unreachable_words(
        describe(error, target_of(access.url, ca=access.ca_name, timeout=timeout))
    )


def unreachable_words(sentence: str) -> str:
    return f"Engine unreachable: {sentence}" + ("" if sentence.endswith(("?", "!")) else ".")
