"""Stacks: saved (the compose file checked by the docker CLI itself), previewed (what a
deploy would change), deployed, redeployed, rolled back, scaled; rights checked here."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.exceptions import ValidationError

from machines.engine import stackcli, stackdiff, swarmservices
from machines.lib import gitfetch
from machines.lib.errors import DriverError
from machines.models import Cluster, Operation, Stack, StackDeploy
from machines.operations import actions
from machines.operations.swarmsteps import reachable_manager
from machines.services.clusters import require_cluster
from machines.services.errors import InvalidInput


def check_compose(compose: str, variables: dict[str, str]) -> dict:
    """The compose file as the docker CLI reads it; InvalidInput with the CLI's message."""
    try:
        return stackcli.resolve(compose, variables)
    except stackcli.ComposeError as e:
        raise InvalidInput(f"The compose file is not valid: {e}") from None


def compose_of(stack: Stack) -> str:
    """The compose file as saved, or fetched now from the stack's git repository."""
    if not stack.git_url:
        return stack.compose
    folder = os.path.join(settings.DATA_DIR, "tmp")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    try:
        return gitfetch.fetch_file(
            stack.git_url, stack.git_branch, stack.git_path, key=stack.deploy_key, folder=folder
        )
    except DriverError as e:
        raise InvalidInput(f"{e}.") from None


def save_stack(user, stack: Stack) -> Stack:
    """Validate (the model's rules, then the CLI's) and save."""
    require_cluster(user, stack.cluster, "change stacks")
    try:
        stack.full_clean()
    except ValidationError as e:
        raise InvalidInput(" ".join(e.messages)) from None
    check_compose(compose_of(stack), stack.variables())
    if stack.created_by_id is None and getattr(user, "pk", None):
        stack.created_by = user
    stack.save()
    return stack


def preview(user, stack: Stack) -> list[str]:
    """What deploying the stack as saved would change, one line per change."""
    require_cluster(user, stack.cluster, "deploy stacks")
    resolved = check_compose(compose_of(stack), stack.variables())
    current = {s["name"]: s for s in state(stack)["services"]}
    return stackdiff.diff(current, stackdiff.wanted(resolved, stack.name), set(stack.secret_env))


def state(stack: Stack) -> dict:
    return swarmservices.stack_state(reachable_manager(stack.cluster), stack.name)


def deploy(
    user,
    stack: Stack,
    *,
    via: str = "web",
    reason: str = "deploy",
    source: StackDeploy | None = None,
) -> Operation:
    """Request a deploy of the stack as saved (or of an earlier deploy, for a rollback)."""
    require_cluster(user, stack.cluster, "deploy stacks")
    compose = source.compose if source else compose_of(stack)
    env = dict(source.env if source else stack.env)
    secret_env = dict(source.secret_env if source else stack.secret_env)
    check_compose(compose, {**env, **secret_env})
    manager = reachable_manager(stack.cluster)
    record = StackDeploy.objects.create(
        stack=stack,
        compose=compose,
        env=env,
        secret_env=secret_env,
        reason=reason[:100],
        requested_by=user if getattr(user, "pk", None) else None,
        requested_via=via,
    )
    return actions.request(
        manager, Operation.Kind.STACK_DEPLOY, user=user, via=via, args={"deploy": record.pk}
    )


def rollback(user, stack: Stack, *, via: str = "web") -> Operation:
    """Deploy again what the deploy before the last successful one deployed."""
    done = list(stack.deploys.filter(status=StackDeploy.Status.SUCCEEDED)[:2])
    if len(done) < 2:
        raise InvalidInput(f"{stack.name} has no earlier deploy to roll back to.")
    return deploy(user, stack, via=via, reason=f"rollback to deploy #{done[1].pk}", source=done[1])


def scale(user, stack: Stack, service: str, replicas: int) -> None:
    require_cluster(user, stack.cluster, "scale services")
    if not 0 <= replicas <= 100:
        raise InvalidInput("Replicas go from 0 to 100.")
    if not service.startswith(f"{stack.name}_"):
        raise InvalidInput(f"{service} is not a service of {stack.name}.")
    try:
        swarmservices.scale(reachable_manager(stack.cluster), service, replicas)
    except DriverError:
        raise
    except Exception as e:
        raise InvalidInput(f"Scaling {service} failed: {e}") from None


def stacks_of(cluster: Cluster):
    return cluster.stacks.order_by("name")
