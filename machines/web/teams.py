"""The Teams page (admins): machine groups (a tag selector and/or named machines, with a
live preview of what they match) and teams (members, a role per group)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from machines.models.teams import ROLE_CHOICES, MachineGroup, Team
from machines.services import teams
from machines.services.errors import InvalidInput

MANAGE = teams.MANAGE


class GroupForm(forms.Form):
    name = forms.CharField(max_length=100)
    selector = forms.CharField(
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "env=prod, or a tag key alone"}),
    )
    machines = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "machine names, space-separated"}),
    )


def _names(text: str) -> list[str]:
    return text.replace(",", " ").split()


@permission_required(MANAGE, raise_exception=True)
def team_list(request: HttpRequest) -> HttpResponse:
    group_form = GroupForm(request.POST if request.POST.get("form") == "group" else None)
    if group_form.is_bound and group_form.is_valid():
        data = group_form.cleaned_data
        try:
            teams.save_group(request.user, data["name"], data["selector"], _names(data["machines"]))
        except InvalidInput as e:
            group_form.add_error(None, str(e))
        else:
            messages.info(request, f"Machine group {data['name']} saved.")
            return redirect("machines:teams")
    if request.POST.get("form") == "team":
        roles = {g.name: request.POST.get(f"role-{g.pk}", "") for g in MachineGroup.objects.all()}
        users = get_user_model().objects.filter(
            username__in=_names(request.POST.get("members", ""))
        )
        try:
            name = request.POST.get("name", "").strip()
            if not name:
                raise InvalidInput("A team needs a name.")
            teams.save_team(request.user, name, list(users), roles)
        except InvalidInput as e:
            messages.error(request, str(e))
        else:
            messages.info(request, f"Team {name} saved.")
        return redirect("machines:teams")
    groups = list(MachineGroup.objects.prefetch_related("machines"))
    for group in groups:
        group.matched, _ = teams.preview(group.selector, [m.name for m in group.machines.all()])
    ctx = {
        "group_form": group_form,
        "groups": groups,
        "teams": Team.objects.prefetch_related("members", "roles__group"),
        "role_choices": ROLE_CHOICES,
    }
    return render(request, "machines/teams.html", ctx)


@require_GET
@permission_required(MANAGE, raise_exception=True)
def group_preview(request: HttpRequest) -> HttpResponse:
    """ "This selector matches 37 machines", as the admin types."""
    try:
        count, names = teams.preview(
            request.GET.get("selector", ""), _names(request.GET.get("machines", ""))
        )
        ctx = {"count": count, "names": names}
    except ValidationError as e:
        ctx = {"error": " ".join(e.messages)}
    return render(request, "machines/teams.html#group_preview", ctx)
