"""Machines (list, detail, create, actions, tags), operations (detail, log, cancel) and the
drivers a machine can be created with."""

from __future__ import annotations

from datetime import datetime

from django.core.paginator import Paginator
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, JsonResponse
from ninja import Field, Query, Router, Schema, Status
from ninja.errors import HttpError

from machines.api import calls
from machines.api.auth import get_machine, need, visible
from machines.models import Driver, Machine, Operation
from machines.operations.actions import BUTTONS as ACTIONS
from machines.services.inspect import ls_row
from machines.services.listing import MachineFilterForm, page_size

router = Router(tags=["machines"])
MAX_PER_PAGE = 1000


class Error(Schema):
    detail: str


class MachineOut(Schema):
    id: int = Field(description="for the machine's websockets (dockerdash ssh)")
    name: str
    driver: str
    driver_name: str
    state: str
    state_label: str
    url: str
    ip: str
    docker_version: str
    last_error: str
    response_time_ms: int | None
    tags: dict[str, str]
    engine_labels: list[str]
    last_seen: datetime | None
    created_at: datetime


class MachinePage(Schema):
    count: int
    page: int
    pages: int
    results: list[MachineOut]


class OperationOut(Schema):
    id: int
    active: bool
    machine: str
    kind: str
    status: str
    step: int
    steps_total: int
    step_name: str
    error: str
    created_at: datetime
    finished_at: datetime | None


class LogLine(Schema):
    seq: int
    kind: str
    text: str


class MachineFilter(Schema):
    q: str = Field("", max_length=200, description="search: name, driver, state, tag, error")
    state: str = ""
    driver: str = ""
    tag: str = Field("", max_length=200, description="key=value, or key (has the tag)")
    sort: str = "name"
    page: int = Field(1, ge=1, le=1_000_000)
    per_page: int = Field(0, ge=0, le=MAX_PER_PAGE, description="0: the list page's size")


class CreateIn(Schema):
    name: str = Field(..., max_length=63)
    driver: str = Field(
        "", max_length=100, description="a driver kind or configured name; empty: the default"
    )
    settings: dict[str, str | int | bool | None] = Field(
        default_factory=dict, description="a provider account's settings (made once, reused)"
    )
    options: dict[str, str | int | bool | None] = Field(
        default_factory=dict, description="the driver's options, as GET /drivers lists them"
    )
    tags: dict[str, str] = Field(default_factory=dict)
    engine_labels: list[str] = Field(default_factory=list)
    engine_insecure_registries: list[str] = Field(default_factory=list)
    engine_registry_mirrors: list[str] = Field(default_factory=list)
    engine_storage_driver: str = ""
    engine_env: list[str] = Field(default_factory=list)
    engine_opts: list[str] = Field(default_factory=list)
    engine_install_url: str = ""
    tls_san: list[str] = Field(default_factory=list)


class ActionFlags(Schema):
    force: bool = False
    purge: bool = False
    client_certs: bool = False


class TagsIn(Schema):
    tags: dict[str, str]


# What machine_out reads: the list loads no key, certificate or engine facts.
LIST_FIELDS = (
    "name",
    "id",
    "driver__kind",
    "driver__name",
    "state",
    "engine_url",
    "ip",
    "engine_port",
    "docker_version",
    "last_error",
    "response_time_ms",
    "tags",
    "engine_labels",
    "last_seen",
    "created_at",
)


STATE_LABELS = dict(Machine.State.choices)


def _row_out(row: dict) -> dict:
    """machine_out() of a values() row: a thousand rows without model instances."""
    out = {
        k: row[k] for k in LIST_FIELDS if "__" not in k and k not in ("engine_port", "engine_url")
    }
    return out | {
        "driver": row["driver__kind"],
        "driver_name": row["driver__name"],
        "state_label": STATE_LABELS.get(row["state"], row["state"]),
        "url": Machine.url_of(row["engine_url"], row["ip"], row["engine_port"]),
    }


def machine_out(m: Machine) -> dict:
    # ls's row (services/inspect), with the state's value beside its label.
    return {
        "id": m.pk,
        **ls_row(m),
        "state": m.state,
        "state_label": m.get_state_display(),
        "last_seen": m.last_seen,
        "created_at": m.created_at,
    }


def operation_out(op: Operation) -> dict:
    return {
        "id": op.pk,
        "active": op.is_active,
        "machine": op.machine_name,
        **{f: getattr(op, f) for f in ("kind", "status", "step", "steps_total", "step_name")},
        **{f: getattr(op, f) for f in ("error", "created_at", "finished_at")},
    }


ERRORS = {400: Error, 401: Error, 403: Error, 404: Error, 409: Error, 422: Error, 429: Error}


@router.get("/machines", response={200: MachinePage, **ERRORS})
def list_machines(request: HttpRequest, filters: Query[MachineFilter]):
    """The machines this token sees, with the list page's search, filters and sort."""
    need(request, "machines.view_machine")
    form = MachineFilterForm(filters.dict(exclude={"per_page"}), user=request.user)
    if form.errors:
        raise HttpError(422, " ".join(e for errs in form.errors.values() for e in errs))
    machines = visible(request, form.queryset()).values(*LIST_FIELDS)
    paginator = Paginator(machines, filters.per_page or page_size())
    page = paginator.get_page(filters.page)
    body = {
        "count": paginator.count,
        "page": page.number,
        "pages": paginator.num_pages,
        "results": [_row_out(row) for row in page.object_list],
    }
    # Built here as the document says (MachinePage): a thousand rows through pydantic again
    # would double the time of the list.
    return JsonResponse(body, encoder=DjangoJSONEncoder)


@router.post("/machines", response={202: OperationOut, **ERRORS})
def create_machine(request: HttpRequest, body: CreateIn):
    """Create a machine with a driver's options (as the create page's forms define them)."""
    need(request, "machines.add_machine")
    return Status(202, operation_out(calls.create_machine(request.user, body.dict())))


@router.get("/machines/{name}", response={200: MachineOut, **ERRORS})
def machine_detail(request: HttpRequest, name: str):
    need(request, "machines.view_machine")
    return machine_out(get_machine(request, name))


@router.get("/machines/{name}/inspect", response={200: dict, **ERRORS})
def machine_inspect(request: HttpRequest, name: str):
    """What `machine inspect NAME` prints, the same document."""
    need(request, "machines.view_machine")
    return calls.inspect(get_machine(request, name))


@router.get("/machines/{name}/operations", response={200: list[OperationOut], **ERRORS})
def machine_operations(request: HttpRequest, name: str):
    need(request, "machines.view_machine")
    return [operation_out(op) for op in get_machine(request, name).operations.all()[:50]]


@router.post("/machines/{name}/actions/{action}", response={202: OperationOut, **ERRORS})
def machine_action(request: HttpRequest, name: str, action: str, flags: Query[ActionFlags]):
    """start, stop, restart, kill, provision, upgrade, regenerate-certs (client_certs) or
    rm (force, purge): what the machine's state allows."""
    body = flags
    if action == Operation.Kind.REMOVE:
        need(request, "machines.delete_machine")
        args = {"force": body.force, "purge": body.purge}
    elif action in ACTIONS:
        need(request, "machines.operate_machine")
        args = {"client_certs": True} if body.client_certs else None
        if action != Operation.Kind.REGENERATE_CERTS:
            args = None
    else:
        known = ", ".join([*ACTIONS, Operation.Kind.REMOVE])
        raise HttpError(404, f"Unknown action {action!r}: use one of {known}.")
    machine = get_machine(request, name)
    return Status(202, operation_out(calls.request_action(request.user, machine, action, args)))


@router.put("/machines/{name}/tags", response={200: MachineOut, **ERRORS})
def machine_tags(request: HttpRequest, name: str, body: TagsIn):
    """Replace a machine's tags."""
    need(request, "machines.operate_machine")
    return machine_out(calls.set_tags(request.user, get_machine(request, name), body.tags))


def _operation(request: HttpRequest, pk: int) -> Operation:
    need(request, "machines.view_machine")
    op = Operation.objects.filter(pk=pk).first()
    linked = op is not None and op.machine_id is not None
    if linked and not visible(request).filter(pk=op.machine_id).exists():
        # Unless its machine was removed since the first read (the end of an `rm` being
        # followed): the operation stays, unlinked, as the removal's record.
        op = Operation.objects.filter(pk=pk, machine__isnull=True).first()
    if op is None:
        raise HttpError(404, f"No operation {pk}.")
    return op


@router.get("/operations/{pk}", response={200: OperationOut, **ERRORS}, tags=["operations"])
def operation_detail(request: HttpRequest, pk: int):
    return operation_out(_operation(request, pk))


@router.get("/operations/{pk}/log", response={200: list[LogLine], **ERRORS}, tags=["operations"])
def operation_log(
    request: HttpRequest,
    pk: int,
    after: int = Query(0, ge=0, le=2**31),
    verbose: bool = False,
):
    """The log lines after sequence number `after` (steps only unless verbose)."""
    lines = _operation(request, pk).log_lines.filter(seq__gt=after).order_by("seq")
    if not verbose:
        lines = lines.exclude(kind="detail")
    return [{"seq": x.seq, "kind": x.kind, "text": x.text} for x in lines[:2000]]


@router.post("/operations/{pk}/cancel", response={200: OperationOut, **ERRORS}, tags=["operations"])
def operation_cancel(request: HttpRequest, pk: int):
    need(request, "machines.operate_machine")
    op = _operation(request, pk)
    if not calls.cancel(request.user, op):
        raise HttpError(409, "This operation has already ended.")
    op.refresh_from_db()
    return operation_out(op)


class DriverOut(Schema):
    name: str
    kind: str


class FlagOut(Schema):
    kind: str
    flag: str
    field: str
    form: str
    is_file: bool
    boolean: bool
    help: str
    env: str


@router.get("/drivers", response={200: list[DriverOut], **ERRORS}, tags=["drivers"])
def drivers(request: HttpRequest):
    """The configured drivers (a create names one, or a kind)."""
    need(request, "machines.view_machine")
    return [{"name": d.name, "kind": d.kind} for d in Driver.objects.order_by("name")]


@router.get("/drivers/flags", response={200: list[FlagOut], **ERRORS}, tags=["drivers"])
def driver_flags(request: HttpRequest):
    """Every driver's `machine create` flags and the form field each one fills."""
    need(request, "machines.view_machine")
    return calls.create_flags()
