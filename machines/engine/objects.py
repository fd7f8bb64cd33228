"""An engine's images, volumes and networks as stored rows (EngineObject), kept by its watcher.

The watcher (watch.py) lists all three when it connects, then lists one kind again when the
engine's events say it changed (an image pulled, tagged or deleted; a volume or network
created or destroyed); a kind whose rows changed is published whole, as one table.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime

from machines import live
from machines.models import EngineObject, Machine

Kind = EngineObject.Kind
# The networks every engine has and no one removes.
BUILTIN_NETWORKS = {"bridge", "host", "none"}
# Events that change a list (others, like a network's connect, do not).
EVENTS = {
    Kind.IMAGE: {"pull", "push", "tag", "untag", "delete", "import", "load", "prune"},
    Kind.VOLUME: {"create", "destroy", "prune"},
    Kind.NETWORK: {"create", "destroy", "remove", "prune"},
}


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    # Docker writes nanoseconds; Python takes microseconds.
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    return parse_datetime(text)


def _images(api) -> dict[str, dict]:
    rows = {}
    for image in api.images(all=False):
        tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
        digests = [d for d in image.get("RepoDigests") or [] if d != "<none>@<none>"]
        rows[image["Id"]] = {
            "name": tags[0] if tags else (digests[0].split("@")[0] if digests else "<none>"),
            "size": image.get("Size"),
            "created": datetime.fromtimestamp(image["Created"], tz=UTC)
            if image.get("Created")
            else None,
            "details": {"tags": tags, "dangling": not tags},
        }
    return rows


def _volumes(api) -> dict[str, dict]:
    rows = {}
    for volume in api.volumes().get("Volumes") or []:
        rows[volume["Name"]] = {
            "name": volume["Name"],
            "size": None,
            "created": _when(volume.get("CreatedAt")),
            "details": {"driver": volume.get("Driver", ""), "scope": volume.get("Scope", "")},
        }
    return rows


def _networks(api) -> dict[str, dict]:
    rows = {}
    for network in api.networks():
        subnets = [c.get("Subnet", "") for c in (network.get("IPAM") or {}).get("Config") or []]
        rows[network["Id"]] = {
            "name": network["Name"],
            "size": None,
            "created": _when(network.get("Created")),
            "details": {
                "driver": network.get("Driver", ""),
                "scope": network.get("Scope", ""),
                "subnet": ", ".join(s for s in subnets if s),
                "internal": bool(network.get("Internal")),
                "builtin": network["Name"] in BUILTIN_NETWORKS,
            },
        }
    return rows


LISTERS = {Kind.IMAGE: _images, Kind.VOLUME: _volumes, Kind.NETWORK: _networks}


def resync(machine: Machine, api, kind: str) -> bool:
    """List one kind on the engine and store it; publish the table if a row changed."""
    rows = LISTERS[kind](api)
    stored = {o.object_id: o for o in EngineObject.objects.filter(machine=machine, kind=kind)}
    changed = False
    for object_id, fields in rows.items():
        row = stored.pop(object_id, None)
        if row is None:
            EngineObject.objects.create(machine=machine, kind=kind, object_id=object_id, **fields)
            changed = True
        elif any(getattr(row, k) != v for k, v in fields.items()):
            for key, value in fields.items():
                setattr(row, key, value)
            row.save()
            changed = True
    if stored:
        EngineObject.objects.filter(pk__in=[o.pk for o in stored.values()]).delete()
        changed = True
    if changed:
        live.engine_changed(machine, kind)
    return changed


def resync_all(machine: Machine, api) -> None:
    for kind in LISTERS:
        resync(machine, api, kind)


def on_event(machine: Machine, api, event: dict) -> bool:
    """Handle an engine event about images, volumes or networks; False for other events."""
    kind = event.get("Type")
    if kind not in EVENTS:
        return False
    if event.get("Action") in EVENTS[kind]:
        resync(machine, api, kind)
    return True
