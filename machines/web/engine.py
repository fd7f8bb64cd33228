"""A machine's images, volumes and networks: the page, and the actions on them (remove,
prune with a preview of what it would reclaim, pull). Operators act; viewers look."""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods

from machines import live
from machines.engine import actions as engine_actions
from machines.models import EngineObject, Machine
from machines.web.roles import machine_for, roles

Kind = EngineObject.Kind
LABELS = {Kind.IMAGE: "images", Kind.VOLUME: "volumes", Kind.NETWORK: "networks"}


@require_GET
@permission_required("machines.view_machine", raise_exception=True)
def engine_page(request: HttpRequest, name: str) -> HttpResponse:
    machine = machine_for(request, name, "machines.view_machine")
    tables = live.engine_tables(EngineObject.objects.filter(machine=machine))
    sections = [
        (Kind.IMAGE.value, "Images", tables["images"]),
        (Kind.VOLUME.value, "Volumes", tables["volumes"]),
        (Kind.NETWORK.value, "Networks", tables["networks"]),
    ]
    ctx = {"machine": machine, "sections": sections, **roles(request)}
    return render(request, "machines/engine.html", ctx)


def _notice(request: HttpRequest, text: str, *, error: bool = False) -> HttpResponse:
    return render(request, "machines/engine.html#notice", {"notice": text, "error": error})


@require_http_methods(["GET", "POST"])
@permission_required("machines.operate_machine", raise_exception=True)
def engine_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    """remove-<kind> and pull (POST); prune-<kind>s: its preview (GET), then the prune (POST)."""
    machine = machine_for(request, name, "machines.operate_machine")
    verb, _, noun = action.partition("-")
    if action == "pull" and request.method == "POST":
        try:
            pull = engine_actions.start_pull(machine, request.POST.get("image", ""), request.user)
        except engine_actions.EngineActionError as e:
            return _notice(request, str(e), error=True)
        return _notice(request, f"Pulling {pull['ref']}…")
    if verb == "remove" and noun in LABELS and request.method == "POST":
        try:
            text = engine_actions.remove(machine, noun, request.POST.get("id", ""), request.user)
        except engine_actions.EngineActionError as e:
            return _notice(request, str(e), error=True)
        return _notice(request, text)
    kind = noun.removesuffix("s")
    if verb != "prune" or kind not in LABELS:
        raise Http404(f"Unknown action {action!r}")
    return _prune(request, machine, kind, action)


def _prune(request: HttpRequest, machine: Machine, kind: str, action: str) -> HttpResponse:
    params = request.POST if request.method == "POST" else request.GET
    all_images = kind == Kind.IMAGE and params.get("all") == "1"
    ctx = {
        "machine": machine,
        "kind": kind,
        "label": LABELS[kind],
        "action": action,
        "all_images": all_images,
    }
    try:
        if request.method == "GET":
            ctx["preview"] = engine_actions.prune_preview(machine, kind, all_images=all_images)
            return render(request, "machines/engine.html#prune_preview", ctx)
        ctx["result"] = engine_actions.prune(machine, kind, request.user, all_images=all_images)
    except engine_actions.EngineActionError as e:
        ctx["error"] = str(e)
    return render(request, "machines/engine.html#prune_result", ctx)
