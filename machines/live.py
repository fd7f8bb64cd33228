"""The only place that knows group names and publishes to websockets.

Model changes become rendered HTML fragments (the same named partials the pages use) sent
with group_send; consumers forward them to browsers, where htmx swaps them in by id.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.template.loader import render_to_string

log = logging.getLogger(__name__)

MACHINES = "machines"


def machine_group(machine_id: int) -> str:
    return f"machine-{machine_id}"


def operation_group(operation_id: int) -> str:
    return f"operation-{operation_id}"


def containers_group(machine_id: int) -> str:
    return f"containers-{machine_id}"


def _send(group: str, event_type: str, html: str) -> None:
    _group_send(group, {"type": event_type, "html": html})


_loop: asyncio.AbstractEventLoop | None = None


def bind_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Publish through this loop (the server's or worker's) from whatever thread we are in.

    The in-memory channel layer lives on one loop; a plain thread (an engine watcher, a
    health check) calling async_to_sync would run it on a loop of its own and lose messages.
    """
    global _loop
    _loop = loop


def _group_send(group: str, event: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
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


def machine_changed(machine, *, created: bool = False) -> None:
    """The machine's stored state changed (or it is new): its row on the list and its page."""
    # Viewers must not even see action buttons, so the row goes out in two renderings and
    # each consumer forwards the one its user's role allows.
    row = {"machine": machine, "oob": True, "created": created}
    _group_send(
        MACHINES,
        {
            "type": "machine.changed",
            "html": render_to_string("machines/list.html#machine_row_oob", row),
            "html_operator": render_to_string(
                "machines/list.html#machine_row_oob", {**row, "can_operate": True}
            ),
        },
    )
    _send(
        machine_group(machine.pk),
        "machine.changed",
        render_to_string("machines/detail.html#machine_summary", row),
    )


def machine_removed(machine_id: int, name: str) -> None:
    html = f'<tr id="machine-{machine_id}" hx-swap-oob="delete"></tr>'
    _send(MACHINES, "machine.changed", html)
    _send(machine_group(machine_id), "machine.changed", html)


def log_lines_added(operation, lines) -> None:
    html = render_to_string(
        "machines/detail.html#log_lines_oob", {"operation": operation, "lines": lines}
    )
    _send(operation_group(operation.pk), "operation.log", html)


def operation_changed(operation) -> None:
    html = render_to_string("machines/detail.html#operation_oob", {"operation": operation})
    _send(operation_group(operation.pk), "operation.changed", html)
    if operation.machine_id:
        _send(machine_group(operation.machine_id), "operation.changed", html)


def container_changed(container, *, created: bool = False) -> None:
    """One container of a machine's engine appeared or changed: its row in the table."""
    # A changed row replaces itself by id; a new one is appended to its table.
    html = render_to_string(
        "machines/detail.html#container_row_oob", {"container": container, "created": created}
    )
    _send(containers_group(container.machine_id), "containers.changed", html)


def container_removed(machine_id: int, row_id: int) -> None:
    html = f'<tr id="container-{row_id}" hx-swap-oob="delete"></tr>'
    _send(containers_group(machine_id), "containers.changed", html)
