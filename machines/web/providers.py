"""The Providers page: cloud provider accounts (a token, an optional API URL), for admins."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from machines.drivers import driver_class
from machines.models import Driver
from machines.services import drivers
from machines.services.errors import InvalidInput
from machines.web.forms import ProviderAccountForm, account_kinds


def _accounts():
    kinds = dict(account_kinds())
    accounts = Driver.objects.filter(kind__in=kinds).annotate(machine_count=Count("machines"))
    accounts = list(accounts.order_by("name"))
    for account in accounts:  # each provider names its API URL setting its own way
        setting = getattr(driver_class(account.kind), "api_url_setting", "api_url")
        account.api_url = account.settings.get(setting, "")
    return accounts


@permission_required("machines.add_driver", raise_exception=True)
def providers(request: HttpRequest) -> HttpResponse:
    """The provider accounts (tokens never shown again), and a form to add one."""
    kinds = account_kinds()
    form = ProviderAccountForm(request.POST or None, initial={"kind": kinds[0][0]})
    settings_form = form.settings_form(request.POST or None)
    if request.method == "POST" and form.is_valid() and settings_form and settings_form.is_valid():
        data = form.cleaned_data
        account = drivers.add_account(
            request.user, data["name"], data["kind"], settings_form.cleaned_data
        )
        result, ok = drivers.test_account(account)
        if ok:
            messages.success(request, f"Added {account.name}. {result}")
        else:
            messages.error(request, f"Added {account.name}, but its test failed: {result}")
        return redirect("machines:providers")
    ctx = {"form": form, "settings_form": settings_form, "accounts": _accounts()}
    status = 400 if request.method == "POST" else 200
    return render(request, "machines/providers.html", ctx, status=status)


@require_GET
@permission_required("machines.add_driver", raise_exception=True)
def provider_fields(request: HttpRequest) -> HttpResponse:
    form = ProviderAccountForm(initial={"kind": request.GET.get("kind", "")})
    return render(
        request, "machines/providers.html#provider_fields", {"settings_form": form.settings_form()}
    )


@require_POST
@permission_required("machines.add_driver", raise_exception=True)
def provider_test(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(Driver, pk=pk, kind__in=dict(account_kinds()))
    result, ok = drivers.test_account(account)
    ctx = {"account": account, "result": result, "ok": ok}
    return render(request, "machines/providers.html#test_result", ctx)


@require_POST
@permission_required("machines.delete_driver", raise_exception=True)
def provider_remove(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(Driver, pk=pk, kind__in=dict(account_kinds()))
    try:
        drivers.remove_account(request.user, account)
    except InvalidInput as e:
        messages.error(request, str(e))
    else:
        messages.success(request, f"Removed the account {account.name}.")
    return redirect("machines:providers")
