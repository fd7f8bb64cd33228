from __future__ import annotations

import io
import zipfile

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from . import containers, operations
from .consumers import LOG_TAIL
from .drivers import DriverError, driver_class
from .forms import (
    ConfirmRemoveForm,
    ContainerFilterForm,
    MachineForm,
    ProviderAccountForm,
    account_kinds,
    options_form_for,
)
from .lib.ssh import public_key_of
from .models import ClientCertificate, Container, Driver, Machine, Operation
from .provision import certs, usercerts


def _roles(request: HttpRequest) -> dict:
    user = request.user
    return {
        "can_operate": user.has_perm("machines.operate_machine"),
        "can_admin": user.has_perm("machines.add_machine"),
    }


@require_GET
@permission_required("machines.view_machine", raise_exception=True)
def machine_list(request: HttpRequest) -> HttpResponse:
    machines = Machine.objects.select_related("driver").order_by("name")
    template = "machines/list.html#machine_rows" if request.htmx else "machines/list.html"
    return render(request, template, {"machines": machines, **_roles(request)})


def _container_table(request: HttpRequest, template: str, ctx: dict) -> HttpResponse:
    # The filter form asks for the table alone; its socket then follows the new filter.
    if request.htmx and request.htmx.target == "containers-live":
        template = "machines/containers.html#container_table"
    return render(request, template, ctx)


@require_GET
@permission_required("machines.view_machine", raise_exception=True)
def machine_detail(request: HttpRequest, name: str) -> HttpResponse:
    machine = get_object_or_404(Machine.objects.select_related("driver"), name=name)
    filter_form = ContainerFilterForm(request.GET)
    ctx = {
        "machine": machine,
        "operations": list(machine.operations.select_related("requested_by")[:20]),
        "containers": filter_form.rows(machine),
        "filter": filter_form,
        **_roles(request),
    }
    if machine.ssh_private_key:
        ctx["ssh_public_key"] = public_key_of(machine.ssh_private_key)
    if ctx["can_operate"]:
        ctx["client_cert"] = _client_cert_context(request, machine)
    return _container_table(request, "machines/detail.html", ctx)


@require_GET
@permission_required("machines.view_machine", raise_exception=True)
def fleet(request: HttpRequest) -> HttpResponse:
    """Every container of every machine, in one table with a search."""
    filter_form = ContainerFilterForm(request.GET)
    ctx = {
        "containers": filter_form.rows(),
        "filter": filter_form,
        "fleet": True,
        **_roles(request),
    }
    return _container_table(request, "machines/containers.html", ctx)


@require_POST
@permission_required("machines.operate_machine", raise_exception=True)
def container_action(request: HttpRequest, name: str, container_id: str, action: str):
    machine = get_object_or_404(Machine.objects.select_related("driver"), name=name)
    if action not in containers.CONTAINER_ACTIONS:
        raise Http404(f"Unknown container action {action!r}")
    try:
        notice = containers.container_action(machine, container_id, action, request.user)
        error = False
    except containers.ContainerActionError as e:
        notice, error = str(e), True
    # The outcome goes to the notice above the table; the row follows from the engine's
    # events, for every viewer.
    return render(request, "machines/containers.html#notice", {"notice": notice, "error": error})


@require_GET
@permission_required("machines.operate_machine", raise_exception=True)
def container_logs(request: HttpRequest, name: str, container_id: str) -> HttpResponse:
    """The panel that follows a container's log. Operators only: logs can hold secrets."""
    machine = get_object_or_404(Machine, name=name)
    container = get_object_or_404(Container, machine=machine, container_id=container_id)
    return render(
        request,
        "machines/containers.html#log_panel",
        {"machine": machine, "container": container, "tail": LOG_TAIL},
    )


@require_GET
@permission_required("machines.operate_machine", raise_exception=True)
def client_bundle(request: HttpRequest, name: str) -> HttpResponse:
    """ca.pem (to verify the engine), and a new client certificate and key of the user's own,
    for the docker CLI. A new certificate each time; the dashboard's own key never leaves."""
    machine = get_object_or_404(Machine, name=name)
    if not machine.tls_server_cert:
        raise Http404(f"{machine.name} has no TLS certificates yet (not provisioned)")
    if problem := usercerts.download_problem(machine):
        return HttpResponse(problem, status=409, content_type="text/plain; charset=utf-8")
    _, cert, key_pem = usercerts.issue(request.user, machine)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for filename, pem in (("ca.pem", certs.ca_for_machine(machine).cert), ("cert.pem", cert)):
            bundle.writestr(filename, pem)
        key = zipfile.ZipInfo("key.pem")
        key.external_attr = 0o600 << 16  # unzip keeps the private key private
        bundle.writestr(key, key_pem, zipfile.ZIP_DEFLATED)
    response = HttpResponse(buffer.getvalue(), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{machine.name}-certs.zip"'
    response["Cache-Control"] = "no-store"
    return response


def _client_cert_context(request: HttpRequest, machine: Machine) -> dict:
    return {
        "problem": usercerts.download_problem(machine) if machine.tls_server_cert else None,
        "latest": usercerts.latest_for(request.user, machine),
        "days": settings.CLIENT_CERT_DAYS,
    }


@require_GET
@permission_required("machines.operate_machine", raise_exception=True)
def client_cert(request: HttpRequest, name: str) -> HttpResponse:
    """The Connect panel's line about the user's own certificate (pushed panels lack it)."""
    machine = get_object_or_404(Machine, name=name)
    ctx = {"machine": machine, "client_cert": _client_cert_context(request, machine)}
    return render(request, "machines/detail.html#client_cert", ctx)


@require_GET
@permission_required("machines.revoke_clientcertificate", raise_exception=True)
def client_certificates(request: HttpRequest) -> HttpResponse:
    """Who holds which certificate, which engines still trust a revoked users' CA, and the
    button that revokes them all."""
    ctx = {
        "certificates": ClientCertificate.objects.select_related("issuer")[:200],
        "users_ca": usercerts.get_or_create_ca(),
        "pending": usercerts.rotation_candidates(),
        "still_trusting": list(usercerts.still_trusting_revoked()),
        "days": settings.CLIENT_CERT_DAYS,
    }
    return render(request, "machines/client_certificates.html", ctx)


@require_POST
@permission_required("machines.revoke_clientcertificate", raise_exception=True)
def revoke_client_certificates(request: HttpRequest) -> HttpResponse:
    if request.POST.get("confirm") != "revoke":
        messages.error(request, 'Type "revoke" to confirm: nothing was revoked.')
        return redirect("machines:client_certificates")
    _, count = usercerts.revoke_all()
    ops, busy = operations.request_client_ca_rotation(user=request.user)
    messages.success(
        request,
        f"Revoked {count} certificate(s) under a new users' client CA; rotating it on "
        f"{len(ops)} machine(s).",
    )
    _report_busy(request, busy)
    return redirect("machines:client_certificates")


@require_POST
@permission_required("machines.revoke_clientcertificate", raise_exception=True)
def rotate_client_ca(request: HttpRequest) -> HttpResponse:
    """Retry: a rotation on every machine not yet running with the current users' CA."""
    ops, busy = operations.request_client_ca_rotation(user=request.user)
    messages.info(request, f"Rotating the users' client CA on {len(ops)} machine(s).")
    _report_busy(request, busy)
    return redirect("machines:client_certificates")


def _report_busy(request: HttpRequest, busy: list[str]) -> None:
    if busy:
        messages.error(
            request,
            f"Busy, not rotated yet: {', '.join(busy)}. Retry once their operations end.",
        )


@permission_required("machines.add_machine", raise_exception=True)
def machine_create(request: HttpRequest) -> HttpResponse:
    form = MachineForm(request.POST or None)
    driver = None
    if request.method == "POST":
        if form.is_valid():
            driver = form.cleaned_data["driver"]
        options = options_form_for(driver, request.POST)
        if form.is_valid() and options is not None and options.is_valid():
            machine = form.save(commit=False)
            try:
                operations.create_machine(machine, options.cleaned_data, user=request.user)
            except ValidationError as e:
                # What the driver's options put on the machine, checked by the model.
                options.add_error(None, e)
            else:
                messages.success(request, f"Creating {machine.name}")
                if request.htmx:
                    return HttpResponseClientRedirect(machine.get_absolute_url())
                return redirect(machine)
        status = 400
    else:
        driver = Driver.objects.order_by("name").first()
        form.initial["driver"] = driver
        options = options_form_for(driver)
        status = 200
    return render(
        request, "machines/create.html", {"form": form, "options": options}, status=status
    )


@require_GET
@permission_required("machines.add_machine", raise_exception=True)
def driver_fields(request: HttpRequest) -> HttpResponse:
    """The chosen driver's fields; for a provider account, filled from its API, keeping what
    the page had chosen (a new region asks again for the sizes offered there)."""
    driver = Driver.objects.filter(pk=request.GET.get("driver") or 0).first()
    chosen = {k.removeprefix("opt-"): v for k, v in request.GET.items() if k.startswith("opt-")}
    options = options_form_for(driver, initial=chosen)
    return render(request, "machines/create.html#driver_fields", {"options": options})


# -- provider accounts ----------------------------------------------------------------------


def _accounts():
    kinds = dict(account_kinds())
    accounts = Driver.objects.filter(kind__in=kinds).annotate(machine_count=Count("machines"))
    accounts = list(accounts.order_by("name"))
    for account in accounts:  # each provider names its API URL setting its own way
        setting = getattr(driver_class(account.kind), "api_url_setting", "api_url")
        account.api_url = account.settings.get(setting, "")
    return accounts


def _tested(account: Driver) -> tuple[str, bool]:
    """What the provider says of the account's token: a sentence, and whether it worked."""
    try:
        return account.get_driver().test_connection(), True
    except DriverError as e:
        return str(e), False


@permission_required("machines.add_driver", raise_exception=True)
def providers(request: HttpRequest) -> HttpResponse:
    """The provider accounts (tokens never shown again), and a form to add one."""
    kinds = account_kinds()
    form = ProviderAccountForm(request.POST or None, initial={"kind": kinds[0][0]})
    settings_form = form.settings_form(request.POST or None)
    if request.method == "POST" and form.is_valid() and settings_form and settings_form.is_valid():
        account = form.save_with(settings_form)
        result, ok = _tested(account)
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
    result, ok = _tested(account)
    ctx = {"account": account, "result": result, "ok": ok}
    return render(request, "machines/providers.html#test_result", ctx)


@require_POST
@permission_required("machines.delete_driver", raise_exception=True)
def provider_remove(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(Driver, pk=pk, kind__in=dict(account_kinds()))
    if count := account.machines.count():
        messages.error(request, f"{account.name} still has {count} machine(s): remove them first.")
    else:
        account.delete()
        messages.success(request, f"Removed the account {account.name}.")
    return redirect("machines:providers")


def _row_response(request: HttpRequest, machine: Machine) -> HttpResponse:
    machine = Machine.objects.select_related("driver").get(pk=machine.pk)
    return render(
        request, "machines/list.html#machine_row", {"machine": machine, **_roles(request)}
    )


@require_POST
@permission_required("machines.operate_machine", raise_exception=True)
def machine_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    machine = get_object_or_404(Machine, name=name)
    if action not in operations.BUTTONS:
        return HttpResponse(f"Unknown action {action!r}", status=404)
    try:
        operations.request(machine, action, user=request.user)
    except operations.OperationConflict as e:
        if request.htmx:
            return HttpResponse(str(e), status=409)
        messages.error(request, str(e))
        return redirect(machine)
    if request.htmx:
        return _row_response(request, machine)
    return redirect(machine)


@permission_required("machines.delete_machine", raise_exception=True)
def machine_remove(request: HttpRequest, name: str) -> HttpResponse:
    machine = get_object_or_404(Machine, name=name)
    form = ConfirmRemoveForm(request.POST or None, machine=machine)
    if request.method == "POST" and form.is_valid():
        try:
            operations.request(
                machine,
                Operation.Kind.REMOVE,
                user=request.user,
                args={"force": bool(request.POST.get("force"))},
            )
        except operations.OperationConflict as e:
            form.add_error(None, str(e))
        else:
            messages.success(request, f"Removing {machine.name}")
            if request.htmx:
                return HttpResponseClientRedirect(machine.get_absolute_url())
            return redirect(machine)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "machines/remove.html", {"machine": machine, "form": form}, status=status
    )


@require_POST
@permission_required("machines.operate_machine", raise_exception=True)
def operation_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    op = get_object_or_404(Operation, pk=pk)
    if operations.cancel(op):
        messages.info(request, f"Cancelling {op.kind} of {op.machine_name}")
    else:
        messages.error(request, "This operation has already ended.")
    if op.machine:
        return redirect(op.machine)
    return redirect("machines:list")
