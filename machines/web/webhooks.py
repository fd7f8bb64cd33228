"""The Webhooks page (admins): register a URL for kinds of events, see each hook's deliveries,
enable a disabled hook again, remove one."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from machines.models import Webhook, WebhookDelivery
from machines.models.webhooks import EVENTS
from machines.services import hooks


class WebhookForm(forms.Form):
    url = forms.URLField(max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(choices=EVENTS, widget=forms.CheckboxSelectMultiple)


@permission_required("machines.view_webhook", raise_exception=True)
def webhooks(request: HttpRequest) -> HttpResponse:
    form = WebhookForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        try:
            _, secret = hooks.register(
                request.user, form.cleaned_data["url"], form.cleaned_data["events"]
            )
        except hooks.InvalidInput as e:
            form.add_error(None, str(e))
        else:
            form = WebhookForm()
    ctx = {
        "form": form,
        "secret": secret,
        "hooks": Webhook.objects.all(),
        "deliveries": WebhookDelivery.objects.select_related("webhook")[:50],
    }
    return render(request, "machines/webhooks.html", ctx, status=400 if form.errors else 200)


@require_POST
@permission_required("machines.change_webhook", raise_exception=True)
def enable_webhook(request: HttpRequest, pk: int) -> HttpResponse:
    hooks.enable(request.user, get_object_or_404(Webhook, pk=pk))
    messages.success(request, "Webhook enabled again.")
    return redirect("machines:webhooks")


@require_POST
@permission_required("machines.delete_webhook", raise_exception=True)
def remove_webhook(request: HttpRequest, pk: int) -> HttpResponse:
    hooks.remove(request.user, get_object_or_404(Webhook, pk=pk))
    messages.success(request, "Webhook removed.")
    return redirect("machines:webhooks")
