"""Acting on an engine's images, volumes and networks: remove one, prune the unused ones
(with what it would reclaim, from the engine's `system df`, and what it did), pull an image
with its layers' progress streamed to the machine's engine page.

Removals and prunes are quick engine calls made in the request; a pull runs in a thread of a
small pool and publishes its progress (live.engine_pull). The list changes themselves come
from the engine's events, through the machine's watcher, for every viewer. Each action is
recorded in the audit log.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import docker.errors
import requests
from django.db import close_old_connections

from machines import live
from machines.audit import log as audit
from machines.engine.clients import EngineError, client_for_machine
from machines.engine.objects import BUILTIN_NETWORKS
from machines.models import EngineObject, Machine

log = logging.getLogger(__name__)

Kind = EngineObject.Kind
PRUNE_TIMEOUT = 120
_pulls = ThreadPoolExecutor(max_workers=4, thread_name_prefix="image-pull")
# Docker's reference grammar, in short: [registry[:port]/]path[:tag][@digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REF_RE = re.compile(
    rf"\A(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?\Z"
)
PULL_PUBLISH_EVERY = 0.2


class EngineActionError(Exception):
    """Refused or failed; the message is shown to the user as it is."""


def _client(machine: Machine, timeout: float = 30):
    try:
        return client_for_machine(machine, timeout=timeout)
    except EngineError as e:
        raise EngineActionError(str(e)) from None


def _engine_call(what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except docker.errors.APIError as e:
        raise EngineActionError(f"{what} failed: {e.explanation or e}") from None
    except (requests.RequestException, docker.errors.DockerException) as e:
        raise EngineActionError(f"{what} failed: the engine did not answer ({e}).") from None


def remove(machine: Machine, kind: str, object_id: str, user) -> str:
    row = EngineObject.objects.filter(machine=machine, kind=kind, object_id=object_id).first()
    if row is None:
        raise EngineActionError(f"This {kind} is not on {machine.name} (any more).")
    if kind == Kind.NETWORK and row.name in BUILTIN_NETWORKS:
        raise EngineActionError(f"The {row.name} network is the engine's own: it stays.")
    with _audited(f"remove {kind}", user, machine, target=row.name):
        client = _client(machine)
        try:
            call = {
                Kind.IMAGE: client.api.remove_image,
                Kind.VOLUME: client.api.remove_volume,
                Kind.NETWORK: client.api.remove_network,
            }[kind]
            _engine_call(f"Removing {row.name}", call, object_id)
        finally:
            client.close()
    return f"Removed {kind} {row.name}."


def logs_tail(machine: Machine, container_id: str, lines: int) -> str:
    """The last lines of a container's log (stdout and stderr), as `docker logs --tail`."""
    return logs_after(machine, container_id, lines)[0]


def logs_after(machine: Machine, container_id: str, lines: int, since: str = "") -> tuple[str, str]:
    """The last lines of a container's log written after `since` ("SECONDS.NANOS" as this
    returned before, or "" for the newest), and the time of the last line: a client follows a
    log by asking again with it. The engine's `since` counts whole instants and includes that
    one, so lines at or before it are dropped here by their own nanosecond timestamps."""
    after = _nanos(since) if since else None
    if not machine.containers.filter(container_id=container_id).exists():
        raise EngineActionError("This container is not on the machine (any more).")
    query: dict = {"tail": lines, "timestamps": True}
    if after is not None:
        query["since"] = after // 10**9  # whole seconds: the filter below does the rest
    client = _client(machine, timeout=30)
    try:
        raw = _engine_call("Reading the log", client.api.logs, container_id, **query)
    finally:
        client.close()
    kept, last = [], since
    for line in raw.decode("utf-8", "replace").splitlines(keepends=True):
        stamp, _, text = line.partition(" ")
        try:
            at = _nanos(stamp)
        except ValueError:  # a line without a timestamp: keep it as it is
            kept.append(line)
            continue
        if after is None or at > after:
            kept.append(text)
            last = f"{at // 10**9}.{at % 10**9:09d}"
    return "".join(kept), last


def _nanos(stamp: str) -> int:
    """Nanoseconds since the epoch of "SECONDS.NANOS" or the engine's RFC 3339 time."""
    if re.fullmatch(r"\d{1,12}\.\d{9}", stamp):
        seconds, nanos = stamp.split(".")
        return int(seconds) * 10**9 + int(nanos)
    match = re.fullmatch(
        r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", stamp
    )
    if not match:
        raise ValueError(f"{stamp!r} is not a log time: give SECONDS.NANOS as the API returned.")
    zone = "+00:00" if match[3] == "Z" else match[3]
    whole = datetime.fromisoformat(match[1] + zone)
    return int(whole.timestamp()) * 10**9 + int((match[2] or "0").ljust(9, "0"))


@contextlib.contextmanager
def _audited(what: str, user, machine: Machine, target: str = ""):
    """Record an action in the audit log with its outcome (a refusal or failure too)."""
    result: dict = {"detail": ""}
    try:
        yield result
    except EngineActionError as e:
        result["detail"] = f"failed: {e}"
        raise
    finally:
        audit.record(
            audit.Action.ENGINE,
            what,
            user=user,
            machine=machine,
            target=target,
            detail=result["detail"],
        )


# -- prune ----------------------------------------------------------------------------------


def _unused_networks(api) -> list[dict]:
    used = set()
    for container in api.containers(all=True):
        for network in ((container.get("NetworkSettings") or {}).get("Networks") or {}).values():
            used.add(network.get("NetworkID"))
    return [
        {"name": n["Name"], "size": None}
        for n in api.networks()
        if n["Name"] not in BUILTIN_NETWORKS and n["Id"] not in used
    ]


def prune_preview(machine: Machine, kind: str, *, all_images: bool = False) -> dict:
    """What a prune would remove and about how much space that frees, from `docker system
    df` (images: their own layers, not those shared with images that stay)."""
    client = _client(machine, timeout=PRUNE_TIMEOUT)
    try:
        if kind == Kind.NETWORK:
            items = _engine_call("Listing networks", _unused_networks, client.api)
            return {"items": items, "bytes": None}
        df = _engine_call("Asking the engine's disk use", client.api.df)
    finally:
        client.close()
    if kind == Kind.IMAGE:
        items = [
            {
                "name": ", ".join(t for t in i.get("RepoTags") or [] if t != "<none>:<none>")
                or i["Id"].removeprefix("sha256:")[:12],
                "size": max(i.get("Size", 0) - max(i.get("SharedSize", 0), 0), 0),
            }
            for i in df.get("Images") or []
            if i.get("Containers", 0) == 0
            and (all_images or not [t for t in i.get("RepoTags") or [] if t != "<none>:<none>"])
        ]
    else:
        items = [
            {"name": v["Name"], "size": max((v.get("UsageData") or {}).get("Size", 0), 0)}
            for v in df.get("Volumes") or []
            if (v.get("UsageData") or {}).get("RefCount", 0) == 0
        ]
    return {"items": items, "bytes": sum(i["size"] for i in items)}


def prune(machine: Machine, kind: str, user, *, all_images: bool = False) -> dict:
    """Prune; what was removed (names) and the space the engine says it reclaimed."""
    what = f"prune {'unused' if all_images or kind != Kind.IMAGE else 'dangling'} {kind}s"
    with _audited(what, user, machine) as outcome:
        client = _client(machine, timeout=PRUNE_TIMEOUT)
        try:
            api = client.api
            if kind == Kind.IMAGE:
                done = _engine_call(
                    "Pruning images", api.prune_images, filters={"dangling": not all_images}
                )
                removed = [next(iter(d.values())) for d in done.get("ImagesDeleted") or []]
            elif kind == Kind.VOLUME:
                done = _engine_call("Pruning volumes", api.prune_volumes)
                removed = done.get("VolumesDeleted") or []
            else:
                done = _engine_call("Pruning networks", api.prune_networks)
                removed = done.get("NetworksDeleted") or []
        finally:
            client.close()
        result = {"removed": removed, "bytes": done.get("SpaceReclaimed") or 0, "kind": kind}
        outcome["detail"] = f"{len(removed)} removed, {result['bytes']} bytes reclaimed"
    return result


# -- pull -----------------------------------------------------------------------------------


def start_pull(machine: Machine, reference: str, user) -> dict:
    reference = reference.strip()
    if not IMAGE_REF_RE.fullmatch(reference) or len(reference) > 255:
        raise EngineActionError(
            f"{reference[:100]!r} is not an image reference (like registry:5000/name:tag)."
        )
    audit.record(audit.Action.ENGINE, "pull image", user=user, machine=machine, target=reference)
    pull = {"id": uuid.uuid4().hex[:8], "ref": reference, "layers": {}, "status": "starting…"}
    pull.update(done=False, error="")
    live.engine_pull(machine.pk, pull)
    _pulls.submit(_pull, machine, pull)
    return pull


def _pull(machine: Machine, pull: dict) -> None:
    last = 0.0
    try:
        client = _client(machine, timeout=300)
        try:
            repository, tag = docker.utils.parse_repository_tag(pull["ref"])
            stream = client.api.pull(repository, tag=tag or "latest", stream=True, decode=True)
            for message in stream:
                _progress(pull, message)
                if time.monotonic() - last >= PULL_PUBLISH_EVERY:
                    last = time.monotonic()
                    live.engine_pull(machine.pk, pull)
        finally:
            client.close()
    except (EngineActionError, docker.errors.DockerException, requests.RequestException) as e:
        pull["error"] = getattr(e, "explanation", None) or str(e)
    except Exception as e:
        log.exception("Pulling %s failed", pull["ref"])
        pull["error"] = f"{e.__class__.__name__}: {e}"
    finally:
        pull["done"] = True
        if not pull["error"]:
            pull["status"] = f"Pulled {pull['ref']}."
        live.engine_pull(machine.pk, pull)
        close_old_connections()


def _progress(pull: dict, message: dict) -> None:
    """One line of the engine's pull progress, folded into the pull's state."""
    if error := message.get("error"):
        raise EngineActionError(error)
    status = message.get("status", "")
    layer = message.get("id")
    if layer and status and not status.startswith("Pulling from"):
        detail = message.get("progressDetail") or {}
        pull["layers"][layer] = {
            "status": status,
            "current": detail.get("current"),
            "total": detail.get("total"),
        }
    elif status:
        pull["status"] = status
