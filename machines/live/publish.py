"""The only place that knows group names and publishes to websockets.

Model changes become rendered HTML fragments (the same named partials the pages use) sent
with group_send; consumers forward them to browsers, where htmx swaps them in by id.

A changed table row goes out both as a replacement and as an insertion (see _row_event):
each consumer knows which rows its page holds and forwards the right one, so a machine
created by the CLI or a container entering a filtered view appears, and nothing is sent
for rows a page does not show. Messages that depend on the role go out in one rendering
per role (`html`, `html_operator`, `html_admin`); consumers forward the one their user may
see.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.template.loader import render_to_string

from machines.live import wakeups
from machines.models import EngineObject, Machine

log = logging.getLogger(__name__)

MACHINES = "machines"
# Every container of every machine: the fleet view.
FLEET = "fleet"


def _unheard() -> bool:
    """A command-line process with the in-memory layer: nobody can hear it (the pages are
    another process's), so rendering fragments would only slow `machine create` down."""
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    return os.environ.get(CLI_PROCESS) == "1" and backend.endswith(".InMemoryChannelLayer")


# Set by the `machine` command line (dockerdash.cli) for its process and its children.
CLI_PROCESS = "DOCKERDASH_CLI_PROCESS"


def machine_group(machine_id: int) -> str:
    return f"machine-{machine_id}"


def operation_group(operation_id: int) -> str:
    return f"operation-{operation_id}"


def containers_group(machine_id: int) -> str:
    return f"containers-{machine_id}"


def bulk_group(bulk_id: int) -> str:
    return f"bulk-{bulk_id}"


def _send(group: str, event_type: str, html: str, **extra) -> None:
    group_send(group, {"type": event_type, "html": html, **extra})


_loop: asyncio.AbstractEventLoop | None = None


def bind_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Publish through this loop (the server's or worker's) from whatever thread we are in.

    The in-memory channel layer lives on one loop; a plain thread (an engine watcher, a
    health check) calling async_to_sync would run it on a loop of its own and lose messages.
    """
    global _loop
    _loop = loop


def group_send(group: str, event: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    # A process joins each group once for all its sockets (hub.LocalGroups).
    event = {**event, "group": group}
    try:
        loop = _loop
        if loop is not None and loop.is_running():
            try:
                current = asyncio.get_running_loop()
            except RuntimeError:
                current = None
            if current is loop:
                loop.create_task(layer.group_send(group, event))
            else:
                asyncio.run_coroutine_threadsafe(layer.group_send(group, event), loop).result(10)
        else:
            async_to_sync(layer.group_send)(group, event)
    except Exception:
        # Live views are a convenience on top of stored state: a full layer must never
        # fail the operation that changed the state. Viewers resync on reconnect.
        log.exception("Publishing to %s failed", group)


def per_role(
    template: str, context: dict, *, admin: bool = False, team_admin: bool = False
) -> dict[str, str]:
    """One rendering per role whose page differs: viewers must not even see buttons. With
    `admin`, the admins' too; with `team_admin`, a team admin's, for a page of one machine
    (where a team's role counts: its admin's buttons, without those that need creating
    machines). Fleet-wide pages go by the global role, where an admin may create."""
    operator = {**context, "can_operate": True}
    renderings = {
        "html": render_to_string(template, context),
        "html_operator": render_to_string(template, operator),
    }
    if admin:
        renderings["html_admin"] = render_to_string(
            template, {**operator, "can_admin": True, "can_create": True}
        )
    if team_admin:
        renderings["html_team_admin"] = render_to_string(template, {**operator, "can_admin": True})
    return renderings


def _row_event(event_type: str, row_id: str, tbody: str, template: str, context: dict, **kw):
    """A table row that changed, as a replacement and as an insertion into its table.

    A consumer knows which rows its page holds (its snapshot set them) and forwards one
    of the two; a row the page lacks is inserted, one it has replaced by id. A <tr> stands
    alone or in its <tbody>, never beside other elements: htmx parses a message in a
    <template>, where a <tbody> or <tr> after other elements is dropped by the parser.
    """
    where, _, tbody_id = tbody.partition(":")
    replace = per_role(template, {**context, "oob": True}, **kw)
    insert = per_role(template, context, **kw)
    return {
        "type": event_type,
        "row": row_id,
        **replace,
        **{
            f"insert_{key}": f'<tbody hx-swap-oob="{where}:#{tbody_id}">{html}</tbody>'
            for key, html in insert.items()
        },
        "html_gone": _deleted(row_id)["html_gone"],
    }


def _deleted(row_id: str, event_type: str = "") -> dict:
    """A row gone from its table: forwarded by the consumers whose page shows it."""
    html = f'<tr id="{row_id}" hx-swap-oob="delete"></tr>'
    return {"type": event_type, "row": row_id, "deleted": True, "html_gone": html}


def _machine_row(machine) -> None:
    from machines.models.rows import fields_of, with_operations

    # A copy: the caller's machine must not keep an active operation that will go stale.
    (machine,) = with_operations([copy.copy(machine)])
    event = _row_event(
        "machine.changed",
        f"machine-{machine.pk}",
        "beforeend:machine-rows",
        "machines/list.html#machine_row",
        {"machine": machine},
        admin=True,
    )
    # For the lists' filters: whether this row belongs in a view (machines.listing).
    group_send(MACHINES, {**event, "fields": fields_of(machine)})


# The counts per state the lists show: recounted when a machine's state is not the one this
# process last counted it in, and sent when they changed.
_counted_states: dict[int, str] = {}
_last_counts = [""]


def state_counts_html(*, oob: bool = True, machines=None) -> str:
    from machines.models.rows import state_counts

    counts = state_counts(machines)
    context = {"counts": counts, "counts_total": sum(c["count"] for c in counts), "oob": oob}
    return render_to_string("machines/list.html#state_counts", context)


def _counts_changed(machine_id: int, state: str | None) -> None:
    if state is not None and _counted_states.get(machine_id) == state:
        return
    if state is None:
        _counted_states.pop(machine_id, None)
    else:
        _counted_states[machine_id] = state
    html = state_counts_html()
    if html != _last_counts[0]:
        _last_counts[0] = html
        _send(MACHINES, "machine.counts", html)


def machine_changed(machine) -> None:
    """The machine's stored state changed (or it is new): its row on the list and its page.

    A new machine needs no special case: each list socket inserts the rows its page lacks
    (when the machine belongs in its view and its page has room).
    """
    if _unheard():
        return
    _machine_row(machine)
    _counts_changed(machine.pk, machine.state)
    group_send(
        machine_group(machine.pk),
        {
            "type": "machine.changed",
            **per_role(
                "machines/detail.html#machine_oob",
                {"machine": machine},
                admin=True,
                team_admin=True,
            ),
        },
    )


def machine_removed(machine_id: int, name: str) -> None:
    if _unheard():
        return
    group_send(MACHINES, _deleted(f"machine-{machine_id}", "machine.changed"))
    _counts_changed(machine_id, None)
    _send(
        machine_group(machine_id),
        "machine.changed",
        render_to_string("machines/detail.html#machine_removed", {"name": name}),
    )


def log_lines_added(operation, lines) -> None:
    wakeups.operation_progressed(operation.pk)
    if _unheard():
        return
    html = render_to_string(
        "machines/detail.html#log_lines_oob", {"operation": operation, "lines": lines}
    )
    # The sequence lets a consumer drop lines its snapshot already held.
    _send(operation_group(operation.pk), "operation.log", html, first_seq=lines[0].seq)


def operation_changed(operation) -> None:
    # First the processes on this host waiting for it (a runner, `machine create`).
    if operation.status == operation.Status.PENDING:
        wakeups.operation_requested()
    wakeups.operation_progressed(operation.pk)
    if _unheard():
        return
    head = render_to_string("machines/detail.html#operation_oob", {"operation": operation})
    _send(
        operation_group(operation.pk),
        "operation.changed",
        head,
        finished=not operation.is_active,
    )
    if operation.bulk_id and operation.status != operation.Status.PENDING:
        # (Pending: just requested with its siblings, before anyone follows the summary.)
        _bulk_operation(operation)
    if not operation.machine_id:
        return
    event = {"type": "operation.changed", "operation": operation.pk, "html": head}
    if operation.status == operation.Status.PENDING:
        # Just requested (from the list, another page, the CLI): it joins the history on
        # the machine's page, where its log then connects by itself.
        event["insert_html"] = render_to_string(
            "machines/detail.html#operation_insert", {"operation": operation}
        )
    group_send(machine_group(operation.machine_id), event)
    # The list shows an operation's progress in its machine's row.
    machine = Machine.objects.select_related("driver").filter(pk=operation.machine_id).first()
    if machine is not None:
        _machine_row(machine)


def container_changed(container) -> None:
    """One container of a machine's engine appeared or changed: its row in the tables."""
    machine = container.machine
    fields = {
        "name": container.name,
        "image": container.image,
        "state": container.state,
        "machine": machine.name,
        "machine_id": machine.pk,
        "kind": machine.driver.kind,
        "tags": dict(machine.tags or {}),
    }
    row = f"container-{container.pk}"
    # Inserted at the top: newest first, as `docker ps -a` and the snapshots order them.
    for group, tbody in (
        (containers_group(machine.pk), f"afterbegin:containers-{machine.pk}"),
        (FLEET, "afterbegin:fleet-containers"),
    ):
        context = {"container": container, "fleet": group == FLEET}
        event = _row_event(
            "containers.changed", row, tbody, "machines/containers.html#container_row", context
        )
        # For the filters of container tables: whether this row belongs in the view.
        group_send(group, {**event, "fields": fields})


def container_removed(machine_id: int, row_id: int) -> None:
    event = _deleted(f"container-{row_id}", "containers.changed")
    group_send(containers_group(machine_id), event)
    group_send(FLEET, event)


def container_notice(container, text: str, *, error: bool = False) -> None:
    """What became of an action on a container that outlasted its request (a failure)."""
    html = render_to_string(
        "machines/containers.html#notice",
        {"notice": text, "error": error, "oob": True},
    )
    _send(containers_group(container.machine_id), "containers.notice", html)
    _send(FLEET, "containers.notice", html)


# -- inside engines: images, volumes, networks; image pulls --------------------------------


def engine_group(machine_id: int) -> str:
    return f"engine-{machine_id}"


def engine_tables(objects) -> dict[str, list]:
    """A machine's engine objects by kind, as the templates name them."""
    tables: dict[str, list] = {"images": [], "volumes": [], "networks": []}
    for obj in objects.order_by("name"):
        tables[f"{obj.kind}s"].append(obj)
    return tables


def engine_changed(machine, kind: str) -> None:
    """One kind of a machine's engine objects changed: its whole table, per role."""
    rows = EngineObject.objects.filter(machine=machine, kind=kind).order_by("name")
    context = {"machine": machine, "kind": kind, "rows": list(rows), "oob": True}
    renderings = per_role("machines/engine.html#engine_table", context)
    group_send(engine_group(machine.pk), {"type": "engine.changed", **renderings})


def engine_pull(machine_id: int, pull: dict) -> None:
    """An image pull's progress: inserted into the pages that lack it, replaced in the others."""
    html = render_to_string("machines/engine.html#pull", {"pull": pull, "oob": True})
    insert = render_to_string("machines/engine.html#pull", {"pull": pull})
    row = f"pull-{pull['id']}"
    group_send(
        engine_group(machine_id),
        {
            "type": "engine.pull",
            "row": row,
            "html": html,
            "insert_html": f'<div hx-swap-oob="afterbegin:#pulls">{insert}</div>',
            "html_gone": f'<div id="{row}" hx-swap-oob="delete"></div>',
        },
    )


def engine_notice(machine_id: int, text: str, *, error: bool = False) -> None:
    html = render_to_string(
        "machines/engine.html#notice", {"notice": text, "error": error, "oob": True}
    )
    _send(engine_group(machine_id), "engine.notice", html)


def _bulk_operation(operation) -> None:
    """An operation of a bulk action changed: its line and the counts on the summary."""
    html = render_to_string("machines/bulk.html#bulk_op", {"op": operation, "oob": True})
    # Two messages: a <tr> beside another element is dropped by htmx's parser.
    _send(bulk_group(operation.bulk_id), "bulk.changed", html)
    _send(bulk_group(operation.bulk_id), "bulk.changed", _bulk_summary(operation.bulk))


def _bulk_summary(bulk) -> str:
    context = {"bulk": bulk, "counts": bulk.counts(), "oob": True}
    return render_to_string("machines/bulk.html#bulk_summary", context)


def bulk_changed(bulk) -> None:
    _send(bulk_group(bulk.pk), "bulk.changed", _bulk_summary(bulk))


def cluster_group(cluster_id: int) -> str:
    return f"cluster-{cluster_id}"


def cluster_changed(machine_id: int) -> None:
    """Something changed in the swarm a machine is a node of (a node, a service, a task's
    container): the cluster's page reads the swarm's state again (it debounces)."""
    from machines.models import ClusterNode

    cluster_id = ClusterNode.objects.filter(machine_id=machine_id).values("cluster_id").first()
    if cluster_id:
        group_send(cluster_group(cluster_id["cluster_id"]), {"type": "cluster.changed"})
