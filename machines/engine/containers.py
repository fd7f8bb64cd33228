"""Acting on the containers of a machine's engine (start, stop, ... remove), from the pages.

The engine call runs in a thread of a small pool: a request never waits on a slow engine for
more than a moment, and the engine watcher publishes the container's new state when it comes.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.db import close_old_connections

from machines import live
from machines.audit import log as audit
from machines.models import Machine

log = logging.getLogger(__name__)

CONTAINER_ACTIONS = {
    # action: (in progress, done)
    "start": ("Starting", "Started"),
    "stop": ("Stopping", "Stopped"),
    "restart": ("Restarting", "Restarted"),
    "kill": ("Killing", "Killed"),
    "pause": ("Pausing", "Paused"),
    "unpause": ("Unpausing", "Unpaused"),
    "remove": ("Removing", "Removed"),
}
# docker's own default: a stop (or restart) waits this long for the process, then kills it.
CONTAINER_STOP_TIMEOUT = 10
_container_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="container-action")


class ContainerActionError(Exception):
    """The action was refused or failed; the message is shown to the user as it is."""


def container_action(machine: Machine, container_id: str, action: str, user, *, wait=1.0) -> str:
    """Act on one container of a machine's engine; what happened, within `wait` seconds.

    The engine call runs in a thread: a stop may take 10 s and a request must not wait for
    it. If it has not ended within `wait`, this says it is in progress; the engine watcher
    publishes the container's new state when it comes, and a late failure is published as a
    notice to the container's viewers.
    """
    if not user.has_perm("machines.operate_machine"):
        raise ContainerActionError("Only operators and admins act on containers.")
    if action not in CONTAINER_ACTIONS:
        raise ContainerActionError(f"Unknown container action {action!r}.")
    container = machine.containers.filter(container_id=container_id).first()
    if container is None:
        raise ContainerActionError("This container is not on the machine (any more).")
    doing, done = CONTAINER_ACTIONS[action]
    log.info("%s %s on %s (by %s)", doing, container.name, machine.name, user)
    audit.record(audit.Action.CONTAINER, action, user=user, machine=machine, target=container.name)
    future = _container_pool.submit(_act_on_container, machine, container_id, action)
    try:
        future.result(timeout=wait)
    except FutureTimeout:

        def report_late_failure(f) -> None:
            if f.exception() is not None:
                text = f"{doing} {container.name} failed: {f.exception()}"
                live.container_notice(container, text, error=True)

        future.add_done_callback(report_late_failure)
        return f"{doing} {container.name}…"
    except ContainerActionError as e:
        raise ContainerActionError(f"{doing} {container.name} failed: {e}") from None
    return f"{done} {container.name}."


def _act_on_container(machine: Machine, container_id: str, action: str) -> None:
    import docker.errors
    import requests.exceptions

    from machines.engine.clients import EngineError, client_for_machine

    slow = action in ("stop", "restart")
    try:
        client = client_for_machine(machine, timeout=CONTAINER_STOP_TIMEOUT + 10 if slow else 10)
        try:
            api = client.api
            if action == "remove":
                api.remove_container(container_id, force=True)
            elif slow:
                getattr(api, action)(container_id, timeout=CONTAINER_STOP_TIMEOUT)
            else:
                getattr(api, action)(container_id)
        finally:
            client.close()
    except docker.errors.APIError as e:
        raise ContainerActionError(e.explanation or str(e)) from None
    except EngineError as e:
        raise ContainerActionError(str(e)) from None
    except (requests.exceptions.RequestException, docker.errors.DockerException) as e:
        raise ContainerActionError(f"the engine did not answer ({e.__class__.__name__})") from None
    finally:
        close_old_connections()
