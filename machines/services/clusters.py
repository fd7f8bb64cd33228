"""Clusters: made from picked machines or a tag, their nodes changed, their join tokens
rotated; every change checked against the user's rights here (operate machines, for each
machine the cluster touches)."""

from __future__ import annotations

import contextlib

from django.core.exceptions import ValidationError
from django.db import transaction

from machines.audit import log as audit
from machines.engine import swarm
from machines.lib.errors import DriverError
from machines.models import AuditEntry, Cluster, ClusterNode, Machine, Operation
from machines.operations import actions
from machines.operations.swarmsteps import reachable_manager
from machines.services import rights
from machines.services.errors import InvalidInput
from machines.validation import parse_tag

Role = ClusterNode.Role
NODE_CHANGES = {
    "drain": {"availability": "drain"},
    "pause": {"availability": "pause"},
    "activate": {"availability": "active"},
    "promote": {"role": "manager"},
    "demote": {"role": "worker"},
}


def require_cluster(user, cluster: Cluster | None, what: str) -> None:
    """Operators by their global role only: a cluster spans machines of any team, so a
    team's role on some machines does not reach it (per-team clusters: not built yet)."""
    rights.require_global(user, rights.OPERATE, what)


def machines_for(names: list[str], tag: str) -> list[Machine]:
    """The picked machines, or those carrying the tag (`key` or `key=value`), by name."""
    if tag:
        try:
            key, value = parse_tag(tag)
        except ValueError as e:
            raise InvalidInput(f"{e}.") from None
        found = [
            m
            for m in Machine.objects.order_by("name")
            if key in m.tags and ("=" not in tag or m.tags[key] == value)
        ]
        if not found:
            raise InvalidInput(f"No machine carries the tag {tag}.")
        return found
    found = list(Machine.objects.filter(name__in=names).order_by("name"))
    missing = set(names) - {m.name for m in found}
    if missing:
        raise InvalidInput(f"No machine named {', '.join(sorted(missing))}.")
    # The order picked: the first is the first manager.
    return sorted(found, key=lambda m: names.index(m.name))


def create_cluster(
    user, name: str, machines: list[Machine], *, managers: int = 1, via: str = "web"
) -> Operation:
    """Record the cluster and its nodes (the first `managers` machines manage) and request
    the operation that inits the swarm on the first and joins the others."""
    require_cluster(user, None, "create clusters")
    if managers not in (1, 3):
        raise InvalidInput("A cluster has 1 or 3 managers (an odd number keeps a quorum).")
    if len(machines) < managers:
        raise InvalidInput(f"{managers} managers need at least {managers} machines.")
    taken = ClusterNode.objects.filter(machine__in=machines).select_related("machine", "cluster")
    if taken:
        n = taken[0]
        raise InvalidInput(f"{n.machine.name} is in the cluster {n.cluster.name} already.")
    for machine in machines:
        if not machine.driver_class.provisioned or machine.state != Machine.State.RUNNING:
            raise InvalidInput(f"{machine.name} is not a running, provisioned machine.")
    cluster = Cluster(name=name, created_by=user if getattr(user, "pk", None) else None)
    try:
        cluster.full_clean()
    except ValidationError as e:
        raise InvalidInput(" ".join(e.messages)) from None
    with transaction.atomic():
        cluster.save()
        for n, machine in enumerate(machines):
            role = Role.MANAGER if n < managers else Role.WORKER
            ClusterNode.objects.create(cluster=cluster, machine=machine, role=role)
        op = actions.request(
            machines[0],
            Operation.Kind.CLUSTER_CREATE,
            user=user,
            via=via,
            args={"cluster": cluster.pk},
        )
    return op


def add_node(user, cluster: Cluster, machine: Machine, role: str, via: str = "web") -> Operation:
    require_cluster(user, cluster, "add machines to clusters")
    if role not in Role.values:
        raise InvalidInput("A machine joins as manager or worker.")
    if ClusterNode.objects.filter(machine=machine).exists():
        raise InvalidInput(f"{machine.name} is in a cluster already.")
    with transaction.atomic():
        ClusterNode.objects.create(cluster=cluster, machine=machine, role=role)
        return actions.request(
            machine, Operation.Kind.CLUSTER_JOIN, user=user, via=via, args={"cluster": cluster.pk}
        )


def change_node(user, cluster: Cluster, machine_name: str, change: str) -> None:
    """drain / pause / activate / promote / demote / remove one node, through a manager."""
    require_cluster(user, cluster, "change cluster nodes")
    node = cluster.nodes.filter(machine__name=machine_name).select_related("machine").first()
    if node is None or not node.node_id:
        raise InvalidInput(f"{machine_name} is not a node of {cluster.name}.")
    if change != "remove" and change not in NODE_CHANGES:
        raise InvalidInput(f"{change!r} is not a node change.")
    manager = reachable_manager(cluster, exclude=node.machine if change == "remove" else None)
    if change == "remove":
        # A dead host cannot leave: its node is removed from the manager's list all the same.
        with contextlib.suppress(DriverError):
            swarm.leave(node.machine)
        swarm.remove_node(manager, node.node_id)
        node.delete()
    else:
        swarm.update_node(manager, node.node_id, **NODE_CHANGES[change])
        if "role" in NODE_CHANGES[change]:
            ClusterNode.objects.filter(pk=node.pk).update(role=NODE_CHANGES[change]["role"])
    audit.record(
        AuditEntry.Action.CLUSTER,
        f"{change} node {machine_name} of cluster {cluster.name}",
        user=user,
        machine=node.machine if change != "remove" else None,
        machine_name=machine_name,
        target=cluster.name,
    )


def rotate_tokens(user, cluster: Cluster) -> None:
    """New join tokens (a leaked one then joins nothing); the old are forgotten."""
    require_cluster(user, cluster, "rotate join tokens")
    from django.utils import timezone

    tokens = swarm.rotate_tokens(reachable_manager(cluster))
    cluster.worker_token, cluster.manager_token = tokens["worker"], tokens["manager"]
    cluster.tokens_rotated_at = timezone.now()
    cluster.save()
    audit.record(
        AuditEntry.Action.CLUSTER,
        f"rotated the join tokens of {cluster.name}",
        user=user,
        target=cluster.name,
    )


def nodes(cluster: Cluster) -> list[dict]:
    """The nodes as a manager sees them now, each with its machine's name."""
    rows = swarm.nodes(reachable_manager(cluster))
    by_id = {n.node_id: n.machine.name for n in cluster.nodes.select_related("machine")}
    for row in rows:
        row["machine"] = by_id.get(row["id"], "")
    return rows
