"""The views of fleet-wide work: a machine's tags, and bulk actions on a selection."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from machines.operations import actions as operations
from machines.services import bulk as bulks
from machines.services import machines as services
from machines.services import rights
from machines.web.forms import TagsForm
from machines.web.roles import machine_for


@require_POST
@permission_required("machines.operate_machine", raise_exception=True)
def machine_tags(request: HttpRequest, name: str) -> HttpResponse:
    """Replace a machine's tags (validated by the model, as create, the CLI and import are)."""
    machine = machine_for(request, name, "machines.operate_machine")
    form = TagsForm(request.POST, instance=machine)
    saved = form.is_valid()
    if saved:
        try:
            services.edit_tags(request.user, machine, replace=form.cleaned_data["tags"])
        except services.InvalidInput as e:
            form.add_error("tags", str(e))
            saved = False
    context = {"machine": machine, "tags_form": form, "saved": saved, "can_operate": True}
    # htmx swaps only 2xx answers: the form with its error is the answer it must show.
    status = 200 if saved or request.htmx else 400
    return render(request, "machines/detail.html#tags_form", context, status=status)


@require_POST
@permission_required("machines.operate_machine", raise_exception=True)
def bulk_request(request: HttpRequest) -> HttpResponse:
    """One operation per machine of the selection (or the filter), then their summary."""
    admin = request.user.has_perm("machines.delete_machine")
    if request.POST.get("action") == operations.Kind.REMOVE and not admin:
        raise PermissionDenied("Only admins remove machines.")
    form = bulks.BulkForm(request.POST, admin=admin, user=request.user)
    if not form.is_valid():
        errors = [e for field_errors in form.errors.values() for e in field_errors]
        messages.error(request, " ".join(errors))
        return redirect(reverse("machines:list") + form.filter.query_string())
    kind = form.cleaned_data["action"]
    bulk = bulks.request_bulk(
        kind,
        form.machines,
        user=request.user,
        selection=form.selection,
        args=bulks.args_for(kind),
    )
    return redirect(bulk)


@require_GET
@permission_required("machines.view_machine", raise_exception=True)
def bulk_detail(request: HttpRequest, pk: int) -> HttpResponse:
    bulk = get_object_or_404(rights.visible_bulks(request.user), pk=pk)
    ops = list(bulk.operations.order_by("machine_name"))
    context = {
        "bulk": bulk,
        "operations": ops,
        "counts": bulk.counts(),
        "label": operations.ACTIONS[bulk.kind].label,
    }
    return render(request, "machines/bulk.html", context)


@require_POST
@permission_required("machines.add_machine", raise_exception=True)
def retry_create(request: HttpRequest, name: str) -> HttpResponse:
    """Run a machine's failed create again, without removing it first."""
    machine = machine_for(request, name, "machines.add_machine")
    try:
        services.request_action(request.user, machine, operations.Kind.CREATE)
    except services.OperationConflict as e:
        notice, error = str(e), True
    else:
        notice, error = f"Retrying the create of {machine.name}.", False
    if not request.htmx:
        (messages.error if error else messages.success)(request, notice)
        return redirect(machine)
    context = {"notice": notice, "error": error}
    return render(request, "machines/detail.html#machine_notice", context)
