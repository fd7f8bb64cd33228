"""The alert pages: history and open alerts (everyone), rules and channels (admins), and
the history charts of a machine or container (a partial of the machine page and the
container panel)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from machines.alerts import metrics, notify, state
from machines.alerts.history import live_context
from machines.alerts.rules import KINDS
from machines.audit import log as audit
from machines.models import AuditEntry
from machines.models.alerts import Alert, AlertRule, NotificationChannel
from machines.services import rights
from machines.web.alertforms import ChannelForm, RuleForm, SilenceForm
from machines.web.roles import machine_for

ADMIN = "machines.add_machine"


def _roles(request: HttpRequest) -> dict:
    return {
        "can_operate": request.user.has_perm("machines.operate_machine"),
        "can_admin": request.user.has_perm(ADMIN),
    }


def _fleet_wide(request: HttpRequest) -> None:
    """The fleet's alerts name every machine: for global roles only (a team member sees
    their machines' charts on the machines' pages)."""
    if not rights.sees_all(request.user):
        raise Http404("No such page.")


def _audit(request: HttpRequest, what: str, target: str, detail: str = "", **kw) -> None:
    audit.record(
        AuditEntry.Action.ALERTS, what, user=request.user, target=target, detail=detail, **kw
    )


@require_GET
@permission_required("machines.view_machine", raise_exception=True)
def alert_history(request: HttpRequest) -> HttpResponse:
    _fleet_wide(request)
    return render(request, "alerts/history.html", {**live_context(), **_roles(request)})


@require_POST
@permission_required("machines.operate_machine", raise_exception=True)
def acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    _fleet_wide(request)
    alert = get_object_or_404(Alert, pk=pk)
    state.acknowledge(alert, request.user)
    _audit(
        request,
        "acknowledge alert",
        alert.rule.name,
        alert.message,
        machine_name=alert.machine_name,
    )
    if request.htmx:
        return render(
            request, "alerts/history.html#alerts_live", {**live_context(), **_roles(request)}
        )
    return redirect("machines:alerts")


def _rules_context(request: HttpRequest, **extra) -> dict:
    rules = list(AlertRule.objects.prefetch_related("channels"))
    for rule in rules:
        rule.info = KINDS[rule.kind]
        rule.form = extra.pop(f"form_{rule.pk}", None) or RuleForm(
            instance=rule, prefix=f"r{rule.pk}"
        )
    return {
        "rules": rules,
        "channels": NotificationChannel.objects.all(),
        "channel_form": extra.pop("channel_form", None) or ChannelForm(),
        **_roles(request),
        **extra,
    }


@permission_required(ADMIN, raise_exception=True)
def rules(request: HttpRequest) -> HttpResponse:
    return render(request, "alerts/rules.html", _rules_context(request))


@require_POST
@permission_required(ADMIN, raise_exception=True)
def rule_edit(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(AlertRule, pk=pk)
    form = RuleForm(request.POST, instance=rule, prefix=f"r{rule.pk}")
    if form.is_valid():
        form.save()
        changed = ", ".join(
            f"{k}={form.cleaned_data[k]}" for k in form.changed_data if k != "channels"
        )
        if "channels" in form.changed_data:
            changed += (
                f"{', ' if changed else ''}channels={', '.join(map(str, rule.channels.all()))}"
            )
        _audit(request, "change alert rule", rule.name, changed)
        messages.success(request, f"Saved the rule “{rule.name}”.")
        return redirect("machines:alert_rules")
    return render(request, "alerts/rules.html", _rules_context(request, **{f"form_{pk}": form}))


@require_POST
@permission_required(ADMIN, raise_exception=True)
def rule_silence(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(AlertRule, pk=pk)
    form = SilenceForm(request.POST)
    if form.is_valid():
        state.silence(rule, form.cleaned_data["minutes"])
        _audit(request, "silence alert rule", rule.name, f"{form.cleaned_data['minutes']} min")
        messages.success(
            request, f"“{rule.name}”: " + ("silenced." if rule.silenced else "notices on.")
        )
    else:
        messages.error(request, "Give the silence in minutes, from 0 to 10080 (a week).")
    return redirect("machines:alert_rules")


@require_POST
@permission_required(ADMIN, raise_exception=True)
def channel_add(request: HttpRequest) -> HttpResponse:
    form = ChannelForm(request.POST)
    if form.is_valid():
        channel = form.save()
        _audit(request, "add alert channel", channel.name, channel.get_kind_display())
        messages.success(request, f"Added the channel “{channel.name}”.")
        return redirect("machines:alert_rules")
    return render(request, "alerts/rules.html", _rules_context(request, channel_form=form))


@require_POST
@permission_required(ADMIN, raise_exception=True)
def channel_remove(request: HttpRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(NotificationChannel, pk=pk)
    channel.delete()
    _audit(request, "remove alert channel", channel.name)
    messages.success(request, f"Removed the channel “{channel.name}”.")
    return redirect("machines:alert_rules")


@require_POST
@permission_required(ADMIN, raise_exception=True)
def channel_test(request: HttpRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(NotificationChannel, pk=pk)
    delivery = notify.send_test(channel)
    if delivery.status == delivery.Status.SENT:
        result, error = f"Test notice sent to “{channel.name}”.", False
    else:
        result, error = f"Sending to “{channel.name}” failed: {delivery.last_error}", True
    channel.refresh_from_db()
    ctx = {"channel": channel, "result": result, "error": error, **_roles(request)}
    return render(request, "alerts/rules.html#channel_row", ctx)


@require_GET
@permission_required("machines.view_machine", raise_exception=True)
def chart(request: HttpRequest, name: str) -> HttpResponse:
    """A machine's (or, with ?container=, a container's) history over ?range=1h|24h|7d|30d."""
    machine = machine_for(request, name, "machines.view_machine")
    container = request.GET.get("container", "")[:255]
    span = request.GET.get("range", "24h")
    if span not in metrics.RANGES:
        span = "24h"
    data = metrics.series(machine.pk, container, metrics.RANGES[span])
    ctx = {
        "machine": machine,
        "container": container,
        "span": span,
        "ranges": list(metrics.RANGES),
        "data": data,
        "socket": f"/ws/machines/{machine.pk}/metrics/",
    }
    return render(request, "alerts/charts.html#chart", ctx)
