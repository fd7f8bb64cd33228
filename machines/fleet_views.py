"""The views of fleet-wide work: a machine's tags, and bulk actions on a selection."""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from . import live
from .forms import TagsForm
from .models import Machine


@require_POST
@permission_required("machines.operate_machine", raise_exception=True)
def machine_tags(request: HttpRequest, name: str) -> HttpResponse:
    """Replace a machine's tags (validated by the model, as create, the CLI and import are)."""
    machine = get_object_or_404(Machine.objects.select_related("driver"), name=name)
    form = TagsForm(request.POST, instance=machine)
    saved = form.is_valid()
    if saved:
        form.save()
        live.machine_changed(machine)
    context = {"machine": machine, "tags_form": form, "saved": saved, "can_operate": True}
    # htmx swaps only 2xx answers: the form with its error is the answer it must show.
    status = 200 if saved or request.htmx else 400
    return render(request, "machines/detail.html#tags_form", context, status=status)
