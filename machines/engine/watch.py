"""An engine's container snapshot (`docker ps -a`), kept current from its `docker events`
and published as it changes; its images, volumes and networks too (engine_objects.py).

The functions here run in threads with the database and take an `api` with the SDK's
method names: the SDK's own client (SdkWatcher, for ssh:// engines) or the asyncio one's
facade (machines/engine/watching.py, for every other engine)."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from datetime import UTC, datetime

import docker.errors
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from machines import live, webhooks
from machines.engine import clients
from machines.engine import objects as engine_objects
from machines.engine.health import save_observation, unreachable
from machines.lib.errorwords import detail
from machines.models import Container, Machine

SWARM_EVENTS = ("node", "service")
# A swarm task's container carries its service's name (container events on every node).
SWARM_TASK_LABEL = "com.docker.swarm.service.name"
# What a watcher subscribes to: containers, the kinds engine_objects keeps, and swarm's node
# and service events (a manager's): the cluster page follows them.
EVENT_TYPES = ["container", *SWARM_EVENTS, *map(str, engine_objects.EVENTS)]


def _ps_row(c: dict) -> dict:
    """A `docker ps -a` row from the list API's JSON."""
    status = c.get("Status", "")
    # "unhealthy" first: "healthy" is a part of it.
    health = next((h for h in ("unhealthy", "healthy", "health: starting") if h in status), "")
    ports = ", ".join(
        sorted(
            {
                (f"{p['IP']}:{p['PublicPort']}->" if p.get("PublicPort") else "")
                + f"{p['PrivatePort']}/{p['Type']}"
                for p in c.get("Ports") or []
            }
        )
    )
    return {
        "name": (c.get("Names") or ["/?"])[0].lstrip("/"),
        "image": c.get("Image", ""),
        "command": c.get("Command", ""),
        "state": c.get("State", ""),
        "status": status,
        "health": health.replace("health: ", ""),
        "ports": ports,
        "created": datetime.fromtimestamp(c["Created"], tz=UTC) if c.get("Created") else None,
    }


def resync(machine: Machine, api, rows: list[dict] | None = None) -> None:
    """Store the engine's containers as listed (`rows`, or listed now), forget the others."""
    if rows is None:
        rows = api.containers(all=True)
    seen = set()
    for row in rows:
        seen.add(row["Id"])
        store(machine, row["Id"], _ps_row(row))
    for gone in machine.containers.exclude(container_id__in=seen):
        forget(machine, gone)


def on_event(machine: Machine, api, event: dict) -> None:
    attributes = event.get("Actor", {}).get("Attributes", {})
    if event.get("Type") in SWARM_EVENTS or SWARM_TASK_LABEL in attributes:
        live.cluster_changed(machine.pk)
        if event.get("Type") in SWARM_EVENTS:
            return
    if engine_objects.on_event(machine, api, event):
        return
    container_id = event.get("id") or event.get("Actor", {}).get("ID", "")
    if not container_id:
        return
    if event.get("Action") == "destroy":
        row = machine.containers.filter(container_id=container_id).first()
        if row:
            forget(machine, row)
        return
    if event.get("Action") == "die":
        webhooks.emit(
            "container.died",
            {
                "machine": machine.name,
                "container": attributes.get("name", container_id[:12]),
                "id": container_id,
                "exit_code": attributes.get("exitCode"),
            },
        )
    rows = api.containers(all=True, filters={"id": [container_id]})
    # Engine 20.10 announces pause, unpause and die before its container list shows
    # them: until the list agrees with the container itself, ask again (milliseconds).
    for _ in range(20):
        if not rows:
            return
        try:
            state = api.inspect_container(container_id)["State"]["Status"]
        except docker.errors.NotFound:
            return
        if rows[0]["State"] == state:
            break
        time.sleep(0.005)
        rows = api.containers(all=True, filters={"id": [container_id]})
    if rows:
        store(machine, container_id, _ps_row(rows[0]))


def store(machine: Machine, container_id: str, fields: dict) -> None:
    row, created = Container.objects.get_or_create(
        machine=machine, container_id=container_id, defaults=fields
    )
    if not created:
        if all(getattr(row, k) == v for k, v in fields.items()):
            return
        for key, value in fields.items():
            setattr(row, key, value)
        row.save()
    live.container_changed(row)


def forget(machine: Machine, row: Container) -> None:
    row_id = row.pk
    row.delete()
    live.container_removed(machine.pk, row_id)


class SdkWatcher(threading.Thread):
    """One engine's stream through the Docker SDK, in a thread of its own: for ssh:// engines,
    whose paramiko transport asyncio cannot drive (watching.py bounds how many run)."""

    def __init__(self, machine_id: int) -> None:
        super().__init__(daemon=True, name=f"watch-ssh-{machine_id}")
        self.machine_id = machine_id
        self.stopping = threading.Event()
        self.client = None
        self.connected = False

    def stop(self) -> None:
        self.stopping.set()
        client = self.client
        if client is not None:
            # Closing the client ends the blocking events() read (also over ssh://).
            with contextlib.suppress(Exception):
                client.close()

    def run(self) -> None:
        backoff = 1.0
        try:
            while not self.stopping.is_set():
                machine = Machine.objects.select_related("driver").filter(pk=self.machine_id)
                machine = machine.first()
                if machine is None or not machine.engine_url:
                    return
                try:
                    self._watch(machine)
                    why, details = "Engine unreachable: its event stream ended.", ""
                except Exception as e:
                    why, details = unreachable(machine, e, settings.HEALTH_CHECK_TIMEOUT), detail(e)
                if self.stopping.is_set():
                    return
                # A broken stream means the engine is unreachable now, not at the next check;
                # written only when that is news.
                machine.refresh_from_db()
                if machine.engine_reachable is not False or machine.last_error != why:
                    save_observation(
                        machine, engine_reachable=False, last_error=why, last_error_detail=details
                    )
                self.stopping.wait(backoff * random.uniform(0.5, 1))  # noqa: S311 (jitter)
                backoff = min(backoff * 2, settings.WATCH_BACKOFF_MAX)
        finally:
            close_old_connections()

    def _watch(self, machine: Machine) -> None:
        self.client = client = clients.client_for_machine(
            machine, timeout=settings.HEALTH_CHECK_TIMEOUT
        )
        try:
            # Subscribe first, then snapshot: no event can fall between the two.
            events = client.api.events(decode=True, filters={"type": EVENT_TYPES})
            self.connected = True
            rows = client.api.containers(all=True)
            version = client.version().get("Version", "")
            resync(machine, client.api, rows)
            engine_objects.resync_all(machine, client.api)
            save_observation(
                machine,
                engine_reachable=True,
                docker_version=version,
                last_seen=timezone.now(),
                last_error="",
                last_error_detail="",
            )
            for event in events:
                if self.stopping.is_set():
                    return
                on_event(machine, client.api, event)
        finally:
            self.client = None
            self.connected = False
            with contextlib.suppress(Exception):
                client.close()
