"""The cluster pages: clusters made from picked machines or a tag, a cluster's nodes (live)
and their changes, its stacks; a stack's compose file, variables and update settings, the
diff before a deploy, its services and tasks (live), its history. Operators act."""

from __future__ import annotations

import functools
import secrets

import yaml
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from machines.engine.streams.logs import LOG_TAIL
from machines.lib.errors import DriverError
from machines.models import Cluster, Operation, Stack
from machines.services import clusters as cluster_service
from machines.services import rights
from machines.services import stacks as stack_service
from machines.services.errors import InvalidInput
from machines.web.clusterforms import ClusterForm, NodeForm, StackForm
from machines.web.roles import roles

VIEW = "machines.view_machine"
OPERATE = "machines.operate_machine"


def global_roles_only(view):
    """Clusters span machines of any team: their pages are for global roles only (a team
    member gets the 404 of a page that is not there for them, as for the fleet's alerts)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not rights.sees_all(request.user):
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return wrapped


@permission_required(VIEW, raise_exception=True)
@global_roles_only
def cluster_list(request: HttpRequest) -> HttpResponse:
    form = ClusterForm(request.POST or None)
    if request.method == "POST":
        if not request.user.has_perm(OPERATE):
            raise PermissionDenied("You may not create clusters.")
        if form.is_valid():
            data = form.cleaned_data
            try:
                names = [m.name for m in data["machines"]]
                picked = cluster_service.machines_for(names, data["tag"])
                cluster_service.create_cluster(
                    request.user, data["name"], picked, managers=data["managers"]
                )
            except InvalidInput as e:
                form.add_error(None, str(e))
            else:
                return redirect("machines:cluster", name=data["name"])
    ctx = {"form": form, "clusters": Cluster.objects.prefetch_related("nodes"), **roles(request)}
    return render(request, "clusters/list.html", ctx, status=400 if form.errors else 200)


def operations_of(cluster: Cluster):
    machines = cluster.nodes.values_list("machine_id", flat=True)
    return Operation.objects.filter(
        machine_id__in=list(machines),
        kind__in=[Operation.Kind.CLUSTER_CREATE, Operation.Kind.CLUSTER_JOIN],
    ).order_by("-id")[:5]


@permission_required(VIEW, raise_exception=True)
@global_roles_only
def cluster_detail(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_object_or_404(Cluster, name=name)
    ctx = {
        "cluster": cluster,
        "node_form": NodeForm(),
        "stack_form": StackForm(),
        "stacks": cluster.stacks.all(),
        "operations": operations_of(cluster),
        **roles(request),
    }
    return render(request, "clusters/cluster.html", ctx)


@require_POST
@permission_required(OPERATE, raise_exception=True)
@global_roles_only
def cluster_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    """add-node, rotate-tokens, or a node change (drain, activate, promote, demote, remove)."""
    cluster = get_object_or_404(Cluster, name=name)
    try:
        if action == "add-node":
            form = NodeForm(request.POST)
            if not form.is_valid():
                raise InvalidInput(" ".join(e for errs in form.errors.values() for e in errs))
            data = form.cleaned_data
            cluster_service.add_node(request.user, cluster, data["machine"], data["role"])
            messages.success(request, f"{data['machine'].name} is joining as {data['role']}.")
        elif action == "rotate-tokens":
            cluster_service.rotate_tokens(request.user, cluster)
            messages.success(request, "New join tokens; the old ones join nothing now.")
        else:
            machine = request.POST.get("machine", "")
            cluster_service.change_node(request.user, cluster, machine, action)
            messages.success(request, f"{machine}: {action} done.")
    except (InvalidInput, DriverError) as e:
        messages.error(request, str(e))
    return redirect("machines:cluster", name=name)


@permission_required(VIEW, raise_exception=True)
@global_roles_only
def stack_new(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_object_or_404(Cluster, name=name)
    return _stack_form(request, cluster, Stack(cluster=cluster))


@permission_required(VIEW, raise_exception=True)
@global_roles_only
def stack_detail(request: HttpRequest, name: str, stack: str) -> HttpResponse:
    found = get_object_or_404(
        Stack.objects.select_related("cluster"), cluster__name=name, name=stack
    )
    return _stack_form(request, found.cluster, found)


def _stack_form(request: HttpRequest, cluster: Cluster, stack: Stack) -> HttpResponse:
    form = StackForm(request.POST or None, instance=stack)
    if request.method == "POST":
        if not request.user.has_perm(OPERATE):
            raise PermissionDenied("You may not change stacks.")
        if form.is_valid():
            saved = form.save(commit=False)
            saved.env = form.cleaned_data["env_text"]
            if form.cleaned_data["secret_text"]:
                saved.secret_env = form.cleaned_data["secret_text"]
            if form.cleaned_data["deploy_key_text"]:
                saved.deploy_key = form.cleaned_data["deploy_key_text"]
            try:
                stack_service.save_stack(request.user, saved)
            except InvalidInput as e:
                form.add_error("compose" if "compose" in str(e) else None, str(e))
            else:
                messages.success(request, "Saved. Review the changes, then deploy.")
                return redirect("machines:stack", name=cluster.name, stack=saved.name)
    ctx = {
        "cluster": cluster,
        "stack": stack if stack.pk else None,
        "form": form,
        "deploys": stack.deploys.select_related("requested_by")[:20] if stack.pk else [],
        "webhook_url": _webhook_url(request, stack) if stack.pk else "",
        "service_names": _service_names(stack) if stack.pk else [],
        **roles(request),
    }
    return render(request, "clusters/stack.html", ctx, status=400 if form.errors else 200)


def _service_names(stack: Stack) -> list[str]:
    """The services the saved compose file names, as Swarm names them (for the scale form)."""
    try:
        services = (yaml.safe_load(stack.compose) or {}).get("services") or {}
    except yaml.YAMLError:
        return []
    return [f"{stack.name}_{name}" for name in services]


def _webhook_url(request: HttpRequest, stack: Stack) -> str:
    from django.urls import reverse

    return request.build_absolute_uri(
        reverse("machines:stack_webhook", args=[stack.pk, stack.webhook_key])
    )


@require_POST
@permission_required(OPERATE, raise_exception=True)
@global_roles_only
def stack_action(request: HttpRequest, name: str, stack: str, action: str) -> HttpResponse:
    """preview (the diff, as a fragment), deploy, rollback, scale."""
    found = get_object_or_404(
        Stack.objects.select_related("cluster"), cluster__name=name, name=stack
    )
    try:
        if action == "logs":
            service = request.POST.get("service", "")
            if service not in _service_names(found):
                raise InvalidInput(f"{service} is not a service of {found.name}.")
            ctx = {"stack": found, "cluster": found.cluster, "service": service, "tail": LOG_TAIL}
            return render(request, "clusters/stack.html#log_panel", ctx)
        if action == "preview":
            lines = stack_service.preview(request.user, found)
            ctx = {"stack": found, "cluster": found.cluster, "lines": lines, **roles(request)}
            return render(request, "clusters/stack.html#diff", ctx)
        if action == "deploy":
            stack_service.deploy(request.user, found)
            messages.success(request, "Deploying.")
        elif action == "rollback":
            stack_service.rollback(request.user, found)
            messages.success(request, "Rolling back to the previous deploy.")
        elif action == "scale":
            replicas = int(request.POST.get("replicas", "-1") or -1)
            stack_service.scale(request.user, found, request.POST.get("service", ""), replicas)
            messages.success(request, "Scaling.")
    except (InvalidInput, DriverError, ValueError) as e:
        if action == "preview":
            return render(request, "clusters/stack.html#diff", {"error": str(e)})
        messages.error(request, str(e))
    return redirect("machines:stack", name=name, stack=stack)


@login_not_required
@csrf_exempt
@require_POST
def stack_webhook(request: HttpRequest, pk: int, key: str) -> HttpResponse:
    """Redeploy the stack as saved: the URL's key is the signature (shown to operators on
    the stack's page); nothing else can be done with it."""
    found = Stack.objects.select_related("cluster").filter(pk=pk).first()
    if found is None or not secrets.compare_digest(found.webhook_key, key):
        return HttpResponse("Unknown webhook.\n", status=404, content_type="text/plain")
    try:
        op = stack_service.deploy(None, found, via="webhook", reason="webhook")
    except (InvalidInput, DriverError) as e:
        return HttpResponse(f"{e}\n", status=409, content_type="text/plain")
    return HttpResponse(f"Deploying (operation {op.pk}).\n", status=202, content_type="text/plain")
