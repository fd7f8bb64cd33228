"""The audit log's page: filters (who, what, machine, time range), pages of entries, and the
same selection as CSV. Read only: nothing here changes or deletes an entry."""

from __future__ import annotations

import csv
import io

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from machines.models import AuditEntry
from machines.services import rights

PAGE = 100
CSV_COLUMNS = [
    "time",
    "user",
    "via",
    "address",
    "action",
    "what",
    "machine",
    "target",
    "detail",
    "seconds",
    "operation status",
]


class AuditFilterForm(forms.Form):
    who = forms.CharField(required=False, max_length=150, label="Who")
    action = forms.ChoiceField(
        required=False, choices=[("", "anything"), *AuditEntry.Action.choices], label="What"
    )
    machine = forms.CharField(required=False, max_length=63, label="Machine")
    since = forms.DateTimeField(
        required=False, label="From", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = forms.DateTimeField(
        required=False, label="Until", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )

    def __init__(self, data=None, *args, user, **kwargs):
        self.user = user
        super().__init__(data or {}, *args, **kwargs)
        self.is_valid()

    def entries(self):
        data = self.cleaned_data if self.is_bound else {}
        # A team admin reads the entries of their groups' machines only.
        entries = rights.visible(
            self.user, AuditEntry.objects.select_related("operation", "machine"), "machine__"
        )
        if who := data.get("who", "").strip():
            entries = entries.filter(username__iexact=who)
        if action := data.get("action"):
            entries = entries.filter(action=action)
        if machine := data.get("machine", "").strip():
            entries = entries.filter(machine_name__iexact=machine)
        if since := data.get("since"):
            entries = entries.filter(at__gte=since)
        if until := data.get("until"):
            entries = entries.filter(at__lte=until)
        return entries


@require_GET
@permission_required("machines.view_auditentry", raise_exception=True)
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET, user=request.user)
    page = Paginator(form.entries(), PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    ctx = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "retention": settings.AUDIT_RETENTION_DAYS,
    }
    return render(request, "machines/audit.html", ctx)


def _cell(value: object) -> str:
    """A value as a CSV cell a spreadsheet shows as text: a leading =, +, - or @ would make
    it a formula (container and image names come from whoever runs containers)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _row(entry: AuditEntry) -> list[str]:
    duration = entry.duration
    return [
        _cell(v)
        for v in (
            entry.at.isoformat(),
            entry.username,
            entry.via,
            entry.address or "",
            entry.action,
            entry.what,
            entry.machine_name,
            entry.target,
            entry.detail,
            f"{duration.total_seconds():.0f}" if duration is not None else "",
            entry.operation.status if entry.operation_id else "",
        )
    ]


@require_GET
@permission_required("machines.view_auditentry", raise_exception=True)
def audit_export(request: HttpRequest) -> HttpResponse:
    # Built whole: under ASGI Django would read a streamed body into memory first anyway.
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for entry in AuditFilterForm(request.GET, user=request.user).entries().iterator(chunk_size=500):
        writer.writerow(_row(entry))
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="dockerdash-audit-{stamp}.csv"'
    return response
