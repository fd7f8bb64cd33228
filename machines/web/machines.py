from __future__ import annotations

import io
import zipfile

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from machines.engine import containers
from machines.engine.streams.logs import LOG_TAIL
from machines.lib.ssh import public_key_of
from machines.models import ClientCertificate, Container, Driver, Machine, Operation, rows
from machines.operations import actions as operations
from machines.pki import usercerts
from machines.services import bulk, certificates, rights
from machines.services import machines as services
from machines.services.listing import ContainerFilterForm, MachineFilterForm
from machines.web.forms import (
    ConfirmRemoveForm,
    MachineForm,
    TagsForm,
    options_form_for,
)
from machines.web.roles import machine_for, roles


@require_GET
@permission_required("machines.view_machine", raise_exception=True)
def machine_list(request: HttpRequest) -> HttpResponse:
    """One page of machines, searched, filtered and sorted on the server (query in the URL);
    the filter form asks for the list alone, whose socket then follows the new filter."""
    filter_form = MachineFilterForm(request.GET, user=request.user)
    page = filter_form.get_page()
    ctx = {"filter": filter_form, "page": page, "machines": page.object_list, **roles(request)}
    if ctx["can_operate"]:
        ctx["bulk_actions"] = bulk.choices(admin=request.user.has_perm("machines.delete_machine"))
        ctx["bulk_concurrency"] = settings.BULK_CONCURRENCY
    if request.htmx and request.htmx.target == "machine-list":
        response = render(request, "machines/list.html#machine_list", ctx)
        # The address bar gets the view's own query (no empty parameters): bookmarkable.
        response["HX-Push-Url"] = request.path + filter_form.query_string()
        return response
    if request.htmx:
        return render(request, "machines/list.html#machine_rows", ctx)
    counts = rows.state_counts(rights.visible_machines(request.user))
    ctx |= {"counts": counts, "counts_total": sum(c["count"] for c in counts)}
    ctx["fleet_empty"] = ctx["counts_total"] == 0
    return render(request, "machines/list.html", ctx)


def _container_table(request: HttpRequest, template: str, ctx: dict) -> HttpResponse:
    # The filter form asks for the table alone; its socket then follows the new filter.
    if request.htmx and request.htmx.target == "containers-live":
        response = render(request, "machines/containers.html#container_table", ctx)
        response["HX-Push-Url"] = request.path + ctx["filter"].query_string()
        return response
    return render(request, template, ctx)


@require_GET
@permission_required("machines.view_machine", raise_exception=True)
def machine_detail(request: HttpRequest, name: str) -> HttpResponse:
    machine = machine_for(request, name, "machines.view_machine")
    filter_form = ContainerFilterForm(request.GET, user=request.user)
    page = filter_form.get_page(machine)
    ctx = {
        "machine": machine,
        "operations": list(machine.operations.select_related("requested_by")[:20]),
        "containers": page.object_list,
        "page": page,
        "filter": filter_form,
        **roles(request, machine),
    }
    if machine.ssh_private_key:
        ctx["ssh_public_key"] = public_key_of(machine.ssh_private_key)
    if ctx["can_operate"]:
        ctx["client_cert"] = _client_cert_context(request, machine)
        ctx["tags_form"] = TagsForm(instance=machine)
    return _container_table(request, "machines/detail.html", ctx)


@require_GET
@permission_required("machines.view_machine", raise_exception=True)
def fleet(request: HttpRequest) -> HttpResponse:
    """Every container of every machine, in one table with a search."""
    filter_form = ContainerFilterForm(request.GET, user=request.user)
    page = filter_form.get_page()
    ctx = {
        "containers": page.object_list,
        "page": page,
        "filter": filter_form,
        "fleet": True,
        **roles(request),
    }
    return _container_table(request, "machines/containers.html", ctx)


@require_POST
@permission_required("machines.operate_machine", raise_exception=True)
def container_action(request: HttpRequest, name: str, container_id: str, action: str):
    machine = machine_for(request, name, "machines.operate_machine")
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
    machine = machine_for(request, name, "machines.operate_machine")
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
    machine = machine_for(request, name, "machines.operate_machine")
    if not machine.tls_server_cert:
        raise Http404(f"{machine.name} has no TLS certificates yet (not provisioned)")
    if problem := usercerts.download_problem(machine):
        return HttpResponse(problem, status=409, content_type="text/plain; charset=utf-8")
    files = certificates.issue_download(request.user, machine)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for filename in ("ca.pem", "cert.pem"):
            bundle.writestr(filename, files[filename])
        key = zipfile.ZipInfo("key.pem")
        key.external_attr = 0o600 << 16  # unzip keeps the private key private
        bundle.writestr(key, files["key.pem"], zipfile.ZIP_DEFLATED)
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
    machine = machine_for(request, name, "machines.operate_machine")
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
    count = certificates.revoke_all(request.user)
    ops, busy = certificates.rotate_client_ca(request.user)
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
    ops, busy = certificates.rotate_client_ca(request.user)
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
                swarm = {k: form.cleaned_data[k] for k in ("swarm", "swarm_role")}
                services.create_machine(request.user, machine, options.cleaned_data, swarm=swarm)
            except services.InvalidInput as e:
                form.add_error("swarm", str(e))
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


def _row_response(request: HttpRequest, machine: Machine) -> HttpResponse:
    machine = Machine.objects.select_related("driver").get(pk=machine.pk)
    rows.with_operations([machine])
    return render(request, "machines/list.html#machine_row", {"machine": machine, **roles(request)})


@require_POST
@permission_required("machines.operate_machine", raise_exception=True)
def machine_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    machine = machine_for(request, name, "machines.operate_machine")
    if action not in operations.BUTTONS:
        return HttpResponse(f"Unknown action {action!r}", status=404)
    try:
        op = services.request_action(request.user, machine, action)
    except services.OperationConflict as e:
        if request.htmx and request.htmx.target == "machine-notice":
            return _notice(request, str(e), error=True)
        if request.htmx:
            return HttpResponse(str(e), status=409)
        messages.error(request, str(e))
        return redirect(machine)
    if request.htmx and request.htmx.target == "machine-notice":
        # The machine's page: its log appears below by itself (pushed).
        return _notice(request, f"{op.get_kind_display()} of {machine.name} requested.")
    if request.htmx:
        return _row_response(request, machine)
    return redirect(machine)


def _notice(request: HttpRequest, text: str, *, error: bool = False) -> HttpResponse:
    context = {"notice": text, "error": error}
    return render(request, "machines/detail.html#machine_notice", context)


@permission_required("machines.delete_machine", raise_exception=True)
def machine_remove(request: HttpRequest, name: str) -> HttpResponse:
    machine = machine_for(request, name, "machines.delete_machine")
    form = ConfirmRemoveForm(request.POST or None, machine=machine)
    if request.method == "POST" and form.is_valid():
        try:
            services.request_action(
                request.user,
                machine,
                Operation.Kind.REMOVE,
                args={"force": bool(request.POST.get("force"))},
            )
        except services.OperationConflict as e:
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
    ops = rights.visible(request.user, Operation.objects.all(), "machine__")
    op = get_object_or_404(ops, pk=pk)
    if services.cancel_operation(request.user, op):
        messages.info(request, f"Cancelling {op.kind} of {op.machine_name}")
    else:
        messages.error(request, "This operation has already ended.")
    if op.machine:
        return redirect(op.machine)
    return redirect("machines:list")
