"""The panels that open inside a machine's page: a container's stats, a terminal in a
container, a root shell on the host. Each is a fragment with its own websocket."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from machines.engine.streams.terminal import TerminalError, parse_command
from machines.models import Container, Machine
from machines.templatetags.dashboard import compact_duration
from machines.web.roles import machine_for, roles


@require_GET
@permission_required("machines.view_machine", raise_exception=True)
def container_panel(request: HttpRequest, name: str, container_id: str) -> HttpResponse:
    """A container's panel: its live stats, and (for operators) its terminal and logs."""
    machine = machine_for(request, name, "machines.view_machine")
    container = get_object_or_404(Container, machine=machine, container_id=container_id)
    ctx = {"machine": machine, "container": container, **roles(request)}
    return render(request, "machines/terminal.html#container_panel", ctx)


def _terminal(request: HttpRequest, machine: Machine, ctx: dict, socket_path: str):
    ctx = {
        "machine": machine,
        "socket_path": socket_path,
        "idle": compact_duration(settings.TERMINAL_IDLE_SECONDS),
        **ctx,
    }
    return render(request, "machines/terminal.html#terminal_panel", ctx)


@require_GET
@permission_required("machines.operate_machine", raise_exception=True)
def container_terminal(request: HttpRequest, name: str, container_id: str) -> HttpResponse:
    """A terminal in a running container: its shell (bash, else sh) or the command asked for.

    The panel only holds the terminal; the exec starts when its websocket connects (the
    consumer checks the role again, and the command)."""
    machine = machine_for(request, name, "machines.operate_machine")
    container = get_object_or_404(Container, machine=machine, container_id=container_id)
    command = request.GET.get("cmd", "")
    error = ""
    try:
        parse_command(command)
    except TerminalError as e:
        error = str(e)
    path = f"/ws/machines/{machine.pk}/containers/{container.container_id}/terminal/"
    ctx = {"container": container, "command": command, "error": error}
    return _terminal(request, machine, ctx, path)


@require_GET
@permission_required("machines.add_machine", raise_exception=True)
def host_shell(request: HttpRequest, name: str) -> HttpResponse:
    """A root shell on the machine's host, over its SSH connection with the pinned host key."""
    machine = machine_for(request, name, "machines.add_machine")
    if not (machine.driver_class.provisioned and machine.ssh_host_key):
        raise Http404(f"{machine.name} has no SSH connection of dockerdash's (not provisioned).")
    return _terminal(request, machine, {"host": True}, f"/ws/machines/{machine.pk}/shell/")
