"""Inside the engines: containers (per machine and fleet-wide, actions), images, volumes and
networks (list, pull, remove, prune), the user's client certificates, and the audit log."""

from __future__ import annotations

from datetime import datetime

from django.core.paginator import Paginator
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from ninja.errors import HttpError

from machines.api import calls
from machines.api.auth import get_machine, need, visible
from machines.api.machines import ERRORS
from machines.engine import actions as engine_actions
from machines.models import AuditEntry, Container, EngineObject
from machines.pki import usercerts
from machines.services import certificates, rights

router = Router()
KINDS = {"images": "image", "volumes": "volume", "networks": "network"}


class ContainerOut(Schema):
    machine: str
    id: str
    name: str
    image: str
    state: str
    status: str
    health: str
    ports: str
    created: datetime | None


class EngineObjectOut(Schema):
    id: str
    name: str
    size: int | None
    created: datetime | None
    details: dict


class Notice(Schema):
    detail: str


class PullIn(Schema):
    reference: str = Field(..., max_length=255)


class PruneIn(Schema):
    all_images: bool = False


class Bundle(Schema):
    ca: str
    cert: str
    key: str
    expires_at: datetime


class AuditOut(Schema):
    at: datetime
    username: str
    via: str
    address: str | None
    action: str
    what: str
    machine: str
    target: str
    detail: str
    token: str


class AuditFilter(Schema):
    machine: str = Field("", max_length=63)
    user: str = Field("", max_length=150)
    action: str = Field("", max_length=16)
    page: int = Field(1, ge=1, le=1_000_000)


def container_out(c: Container) -> dict:
    fields = ("name", "image", "state", "status", "health", "ports", "created")
    return {"machine": c.machine.name, "id": c.container_id} | {f: getattr(c, f) for f in fields}


def _containers(request: HttpRequest, machines) -> list[dict]:
    need(request, "machines.view_machine")
    rows = Container.objects.filter(machine__in=machines).select_related("machine")
    return [container_out(c) for c in rows.order_by("machine__name", "name")[:5000]]


@router.get("/containers", response={200: list[ContainerOut], **ERRORS}, tags=["containers"])
def fleet_containers(request: HttpRequest):
    """Every container of every machine this token sees (as the engines last reported)."""
    return _containers(request, visible(request))


@router.get(
    "/machines/{name}/containers", response={200: list[ContainerOut], **ERRORS}, tags=["containers"]
)
def machine_containers(request: HttpRequest, name: str):
    return _containers(request, [get_machine(request, name)])


# Before the actions: Django takes the first pattern that matches a path.
class LogTail(Schema):
    text: str
    last: str = Field(
        "", description="the last line's time (SECONDS.NANOS): ask again with since=it to follow"
    )


@router.get(
    "/machines/{name}/containers/{container_id}/logs",
    response={200: LogTail, **ERRORS},
    tags=["containers"],
)
def container_logs(
    request: HttpRequest,
    name: str,
    container_id: str,
    tail: int = Query(100, ge=1, le=10000),
    since: str = Query("", max_length=40, description="only lines after this `last`"),
):
    """The last `tail` lines of a container's log (after `since`, when given). Operators only:
    logs can hold secrets."""
    need(request, "machines.operate_machine")
    machine = get_machine(request, name)
    try:
        text, last = engine_actions.logs_after(machine, container_id, tail, since)
    except engine_actions.EngineActionError as e:
        raise HttpError(409, str(e)) from None
    except ValueError as e:
        raise HttpError(422, str(e)) from None
    return {"text": text, "last": last}


@router.post(
    "/machines/{name}/containers/{container_id}/{action}",
    response={200: Notice, **ERRORS},
    tags=["containers"],
)
def container_action(request: HttpRequest, name: str, container_id: str, action: str):
    """start, stop, restart, kill, pause, unpause or remove one container."""
    need(request, "machines.operate_machine")
    machine = get_machine(request, name)
    if action not in calls.CONTAINER_ACTIONS:
        raise HttpError(404, f"Unknown container action {action!r}.")
    try:
        return {"detail": calls.container_action(request.user, machine, container_id, action)}
    except calls.ContainerActionError as e:
        raise HttpError(409, str(e)) from None


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise HttpError(404, f"Unknown engine object {kind!r}: use images, volumes or networks.")
    return KINDS[kind]


@router.get(
    "/machines/{name}/engine/{kind}",
    response={200: list[EngineObjectOut], **ERRORS},
    tags=["engine"],
)
def engine_objects(request: HttpRequest, name: str, kind: str):
    need(request, "machines.view_machine")
    kind = _kind(kind)
    rows = EngineObject.objects.filter(machine=get_machine(request, name), kind=kind)
    return [
        {
            "id": o.object_id,
            "name": o.name,
            "size": o.size,
            "created": o.created,
            "details": o.details,
        }
        for o in rows.order_by("name")
    ]


def _engine_write(request: HttpRequest, name: str, fn, *args):
    need(request, "machines.operate_machine")
    machine = get_machine(request, name)
    try:
        return fn(machine, *args, request.user)
    except engine_actions.EngineActionError as e:
        raise HttpError(409, str(e)) from None


@router.post(
    "/machines/{name}/engine/images/pull", response={202: Notice, **ERRORS}, tags=["engine"]
)
def engine_pull(request: HttpRequest, name: str, body: PullIn):
    pull = _engine_write(request, name, engine_actions.start_pull, body.reference)
    return Status(202, {"detail": f"Pulling {pull['ref']}."})


@router.post(
    "/machines/{name}/engine/{kind}/prune", response={200: dict, **ERRORS}, tags=["engine"]
)
def engine_prune(request: HttpRequest, name: str, kind: str, flags: Query[PruneIn]):
    kind = _kind(kind)
    need(request, "machines.operate_machine")
    machine = get_machine(request, name)
    try:
        return engine_actions.prune(machine, kind, request.user, all_images=flags.all_images)
    except engine_actions.EngineActionError as e:
        raise HttpError(409, str(e)) from None


# After pull and prune: Django takes the first pattern that matches a path.
@router.delete(
    "/machines/{name}/engine/{kind}/{object_id}", response={200: Notice, **ERRORS}, tags=["engine"]
)
def engine_remove(request: HttpRequest, name: str, kind: str, object_id: str):
    kind = _kind(kind)
    return {"detail": _engine_write(request, name, engine_actions.remove, kind, object_id)}


@router.post(
    "/machines/{name}/client-bundle", response={200: Bundle, **ERRORS}, tags=["certificates"]
)
def client_bundle(request: HttpRequest, name: str):
    """A new client certificate and key of the token's user for this machine's engine, with
    the CA that verifies the engine (the same as the machine page's download)."""
    need(request, "machines.operate_machine")
    machine = get_machine(request, name)
    if problem := usercerts.download_problem(machine):
        raise HttpError(409, problem)
    files = certificates.issue_download(request.user, machine)
    return {
        "ca": files["ca.pem"],
        "cert": files["cert.pem"],
        "key": files["key.pem"],
        "expires_at": files["expires_at"],
    }


@router.get("/audit", response={200: list[AuditOut], **ERRORS}, tags=["audit"])
def audit_list(request: HttpRequest, filters: Query[AuditFilter]):
    """The audit log, newest first, 100 a page."""
    need(request, "machines.view_auditentry")
    entries = rights.visible(
        request.user, AuditEntry.objects.select_related("api_token"), "machine__"
    )
    if filters.machine:
        entries = entries.filter(machine_name=filters.machine)
    if filters.user:
        entries = entries.filter(username=filters.user)
    if filters.action:
        entries = entries.filter(action=filters.action)
    page = Paginator(entries, 100).get_page(filters.page)
    return [
        {
            **{f: getattr(e, f) for f in ("at", "username", "via", "address", "action", "what")},
            **{"machine": e.machine_name, "target": e.target, "detail": e.detail},
            "token": str(e.api_token) if e.api_token else "",
        }
        for e in page.object_list
    ]
