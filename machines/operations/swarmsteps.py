"""Cluster and stack work as declared actions: each runs as an operation of one machine
(the cluster's first manager, a joining machine, the manager a stack is deployed through),
so it is claimed, logged step by step, published and audited like every other action."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from machines.engine import stackcli, stackdiff, swarm, swarmservices
from machines.lib.errors import DriverError
from machines.models import Cluster, ClusterNode, Machine, Operation, StackDeploy
from machines.operations.steps import Action, Context, Step
from machines.provision.swarm import prepare_for_swarm

Kind = Operation.Kind
Role = ClusterNode.Role


def _cluster(ctx: Context) -> Cluster:
    return Cluster.objects.get(pk=ctx.op.args["cluster"])


def prepare_all(machine: Machine, ctx: Context) -> None:
    for node in _cluster(ctx).nodes.select_related("machine"):
        prepare_for_swarm(node.machine, ctx)


def init_swarm(machine: Machine, ctx: Context) -> None:
    cluster = _cluster(ctx)
    made = swarm.init(machine)
    with transaction.atomic():
        cluster.worker_token, cluster.manager_token = made["worker"], made["manager"]
        cluster.tokens_rotated_at = timezone.now()
        cluster.save()
        ClusterNode.objects.filter(machine=machine).update(
            node_id=made["node_id"], joined_at=timezone.now()
        )
    ctx.log(f"{machine.name} is the first manager, advertised at {machine.ip}:2377")


def join_node(node: ClusterNode, manager: Machine, ctx: Context) -> None:
    cluster = node.cluster
    token = cluster.manager_token if node.role == Role.MANAGER else cluster.worker_token
    node_id = swarm.join(node.machine, manager.ip, token)
    ClusterNode.objects.filter(pk=node.pk).update(node_id=node_id, joined_at=timezone.now())
    ctx.log(f"{node.machine.name} joined as {node.role}")


def join_others(machine: Machine, ctx: Context) -> None:
    others = _cluster(ctx).nodes.exclude(machine=machine).select_related("machine", "cluster")
    # Managers first: a quorum of managers exists before the workers come.
    for node in sorted(others, key=lambda n: (n.role != Role.MANAGER, n.machine.name)):
        join_node(node, machine, ctx)


def join_self(machine: Machine, ctx: Context) -> None:
    node = ClusterNode.objects.select_related("cluster").get(machine=machine)
    manager = reachable_manager(node.cluster, exclude=machine)
    join_node(node, manager, ctx)


def reachable_manager(cluster: Cluster, exclude: Machine | None = None) -> Machine:
    """A manager that answers (the first one that does), to send swarm calls to."""
    reasons = []
    for node in cluster.managers().exclude(node_id=""):
        if exclude is not None and node.machine_id == exclude.pk:
            continue
        try:
            swarm.nodes(node.machine)
            return node.machine
        except Exception as e:
            reasons.append(f"{node.machine.name}: {e}")
    if not reasons:
        raise DriverError(f"{cluster.name} has no manager that joined yet")
    raise DriverError(f"No manager of {cluster.name} answers ({'; '.join(reasons)})")


def swarm_join_rows(machine: Machine, cluster_name: str, role: str) -> None:
    """A machine created with --swarm NAME (and --swarm-master): its node row now, so that
    provisioning configures its engine for swarm mode; a new cluster for a first manager."""
    cluster = Cluster.objects.filter(name=cluster_name).first()
    if cluster is None:
        if role != Role.MANAGER:
            raise DriverError(
                f"There is no cluster {cluster_name}: start it with --swarm-master, "
                "or name an existing one"
            )
        cluster = Cluster(name=cluster_name, created_by=machine.created_by)
        cluster.full_clean()
        cluster.save()
    ClusterNode.objects.create(cluster=cluster, machine=machine, role=role or Role.WORKER)


def join_after_create(machine: Machine, ctx: Context) -> None:
    node = ClusterNode.objects.select_related("cluster").get(machine=machine)
    if not node.cluster.nodes.exclude(node_id="").exists():
        ctx.op.args["cluster"] = node.cluster.pk
        init_swarm(machine, ctx)
    else:
        join_self(machine, ctx)


def in_cluster(machine: Machine, op: Operation) -> bool:
    return ClusterNode.objects.filter(machine=machine).exclude(node_id="").exists()


def leave_cluster(machine: Machine, ctx: Context) -> None:
    """On machine rm: leave the swarm, then remove the node from the cluster's managers'
    list (the host may be gone already: the second part is what matters then)."""
    node = ClusterNode.objects.select_related("cluster").get(machine=machine)
    try:
        swarm.leave(machine)
        ctx.log(f"{machine.name} left the swarm of {node.cluster.name}")
    except Exception as e:
        ctx.log(f"{machine.name} could not leave by itself ({e}); removing its node instead")
    try:
        swarm.remove_node(reachable_manager(node.cluster, exclude=machine), node.node_id)
    except DriverError as e:
        ctx.log(f"The node stays listed in the cluster: {e}")
    node.delete()


# -- stacks ------------------------------------------------------------------------------


def _deploy(ctx: Context) -> StackDeploy:
    return StackDeploy.objects.select_related("stack__cluster").get(pk=ctx.op.args["deploy"])


def check_compose(machine: Machine, ctx: Context) -> None:
    deploy = _deploy(ctx)
    try:
        ctx.resolved = stackcli.resolve(deploy.compose, {**deploy.env, **deploy.secret_env})
    except DriverError as e:
        StackDeploy.objects.filter(pk=deploy.pk).update(status="failed", output=str(e))
        raise
    ctx.log(f"The compose file has {len(ctx.resolved.get('services') or {})} services")


def compare(machine: Machine, ctx: Context) -> None:
    deploy = _deploy(ctx)
    stack = deploy.stack
    current = {s["name"]: s for s in swarmservices.stack_state(machine, stack.name)["services"]}
    lines = stackdiff.diff(
        current, stackdiff.wanted(ctx.resolved, stack.name), set(deploy.secret_env)
    )
    StackDeploy.objects.filter(pk=deploy.pk).update(diff=lines)
    for line in lines or ["No change to the services"]:
        ctx.log(line)


def deploy_stack(machine: Machine, ctx: Context) -> None:
    deploy = _deploy(ctx)
    stack = deploy.stack
    update = {
        "parallelism": stack.update_parallelism,
        "delay": f"{stack.update_delay}s",
        "failure_action": stack.update_failure_action,
    }
    resolved = stackcli.with_update_config(ctx.resolved, update)
    variables = {**deploy.env, **deploy.secret_env}
    try:
        output = stackcli.deploy(machine, stack.name, resolved, variables)
    except DriverError as e:
        StackDeploy.objects.filter(pk=deploy.pk).update(status="failed", output=str(e))
        raise
    ctx.log_many(output.splitlines())
    images = {f"{stack.name}_{n}": s.get("image", "") for n, s in resolved["services"].items()}
    StackDeploy.objects.filter(pk=deploy.pk).update(
        status=StackDeploy.Status.SUCCEEDED, output=output, images=images
    )


SWARM_ACTIONS = [
    Action(
        Kind.CLUSTER_CREATE,
        "Create a cluster",
        [
            Step("Configure Docker on every machine for swarm mode", prepare_all),
            Step(lambda m: f"Initialise the swarm on {m.name}", init_swarm),
            Step("Join the other machines", join_others),
        ],
        needs="provisioned",
        button=False,
    ),
    Action(
        Kind.CLUSTER_JOIN,
        "Join a cluster",
        [
            Step("Configure Docker for swarm mode", prepare_for_swarm),
            Step(
                lambda m: f"Join {m.cluster_node.cluster.name} as {m.cluster_node.role}", join_self
            ),
        ],
        needs="provisioned",
        button=False,
    ),
    Action(
        Kind.STACK_DEPLOY,
        "Deploy a stack",
        [
            Step("Check the compose file with the docker CLI", check_compose),
            Step("Compare with the running services", compare),
            Step("Deploy the stack", deploy_stack),
        ],
        button=False,
    ),
]
LEAVE_CLUSTER = Step("Leave the cluster", leave_cluster, in_cluster)
JOIN_AFTER_CREATE = Step(
    lambda m: f"Join the cluster {m.cluster_node.cluster.name} as {m.cluster_node.role}",
    join_after_create,
    lambda m, op: bool(op.args.get("swarm")),
)
