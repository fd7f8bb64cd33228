"""Clusters and stacks on real engines: three container machines become a swarm (one
manager, two workers), a stack of two services is deployed with the docker CLI, its
published port answers on every node, it scales, redeploys one task at a time after
showing the diff, rolls back, survives a stopped worker, and leaves cleanly on rm."""

from __future__ import annotations

import time

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection

from machines.engine import swarm
from machines.models import Cluster, ClusterNode, Machine, Operation, Stack, StackDeploy
from machines.services import clusters, stacks
from machines.services.errors import InvalidInput

from .fleet import assert_succeeded, log_of, run_operation
from .swarmfleet import STACK, answers, run, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _services(stack: Stack) -> dict[str, dict]:
    return {s["name"]: s for s in stacks.state(stack)["services"]}


def test_cluster_and_stack_on_three_machines(three_machines, web_images, viewer):
    m1, m2, m3 = three_machines
    op = run(clusters.create_cluster(None, "demo", [m1, m2, m3], managers=1))
    assert_succeeded(op)
    cluster = Cluster.objects.get(name="demo")
    assert cluster.worker_token.startswith("SWMTKN-")
    with connection.cursor() as cursor:
        cursor.execute("SELECT worker_token FROM machines_cluster WHERE id = %s", [cluster.pk])
        raw = cursor.fetchone()[0]
    assert "SWMTKN" not in raw  # held encrypted
    nodes = clusters.nodes(cluster)
    assert [(n["machine"], n["role"], n["state"]) for n in nodes] == [
        (m1.name, "manager", "ready"),
        (m2.name, "worker", "ready"),
        (m3.name, "worker", "ready"),
    ]
    assert all(n["engine"] for n in nodes)

    old = cluster.worker_token
    clusters.rotate_tokens(None, cluster)
    assert Cluster.objects.get(pk=cluster.pk).worker_token not in ("", old)

    env = {
        "WEB_IMAGE": web_images["web1"],
        "SLEEPER_IMAGE": web_images["sleeper"],
        "MESSAGE": "v1",
    }
    stack = Stack(cluster=cluster, name="shop", compose=STACK, env=env)
    stack.secret_env = {"API_KEY": "s3cret-value"}
    stack.update_delay = 3
    stacks.save_stack(None, stack)

    # Bad input: the CLI's own message; a viewer may not deploy.
    bad = Stack(cluster=cluster, name="bad", compose="services:\n  web:\n    replicas: 3\n")
    with pytest.raises(InvalidInput, match="Additional property replicas is not allowed"):
        stacks.save_stack(None, bad)
    with pytest.raises(PermissionDenied):
        stacks.deploy(viewer, stack)

    first = stacks.preview(None, stack)
    assert f"shop_web: new, image {web_images['web1']}, global replicas" in first
    op = run(stacks.deploy(None, stack))
    assert_succeeded(op)
    assert "s3cret-value" not in "\n".join(log_of(op))

    for machine in three_machines:
        wait_for(lambda m=machine: answers(m.ip, 8081).startswith("v1 from"), what=machine.name)
    wait_for(lambda: _services(stack)["shop_worker"]["running"] == 3, what="3 workers")

    stacks.scale(None, stack, "shop_worker", 6)
    six = wait_for(
        lambda: (
            [t for t in _services(stack)["shop_worker"]["tasks"] if t["state"] == "running"]
            if _services(stack)["shop_worker"]["running"] == 6
            else None
        ),
        what="6 tasks",
    )
    assert {t["node"] for t in six} == {m1.name, m2.name, m3.name}

    # Redeploy with the image tag changed: the diff first, then one node at a time.
    stack.env = {**env, "WEB_IMAGE": web_images["web2"], "MESSAGE": "v2"}
    stacks.save_stack(None, stack)
    changes = stacks.preview(None, stack)
    assert f"shop_web: image {web_images['web1']} → {web_images['web2']}" in changes
    assert "shop_web: env API_KEY=(secret)" not in changes  # unchanged secrets stay out
    op = stacks.deploy(None, stack)
    mixes = set()

    def rolled() -> bool:
        said = [answers(m.ip, 8081) for m in three_machines]
        mixes.add(sum(s.startswith("v2") for s in said))
        return all(s.startswith("v2") for s in said)

    assert_succeeded(run(op))
    wait_for(rolled, what="v2 everywhere")
    assert mixes & {1, 2}, f"never saw a partial rollout: {mixes}"
    deploy = StackDeploy.objects.filter(stack=stack).first()
    assert f"shop_web: image {web_images['web1']} → {web_images['web2']}" in deploy.diff

    op = run(stacks.rollback(None, stack))
    assert_succeeded(op)
    wait_for(lambda: all(answers(m.ip, 8081).startswith("v1") for m in three_machines))

    # A worker stopped: the swarm sees its node down and its tasks go elsewhere.
    assert_succeeded(run_operation(m3, Operation.Kind.STOP))
    stopped = time.monotonic()
    wait_for(lambda: {n["machine"]: n["state"] for n in clusters.nodes(cluster)}[m3.name] == "down")
    print(f"node down after {time.monotonic() - stopped:.1f} s")
    wait_for(
        lambda: (
            all(
                t["node"] != m3.name
                for t in _services(stack)["shop_worker"]["tasks"]
                if t["state"] == "running" and t["desired"] == "running"
            )
            # The rollback deployed the compose file's 3 replicas again.
            and _services(stack)["shop_worker"]["running"] == 3
        ),
        what="tasks moved off the stopped node",
    )
    print(f"3 tasks running again after {time.monotonic() - stopped:.1f} s")
    clusters.change_node(None, cluster, m1.name, "drain")  # node changes go through a manager
    assert {n["machine"]: n["availability"] for n in clusters.nodes(cluster)}[m1.name] == "drain"

    # rm leaves the cluster cleanly.
    assert_succeeded(run_operation(m2, Operation.Kind.REMOVE))
    assert not ClusterNode.objects.filter(machine_id=m2.pk).exists()
    assert m2.name not in {n["hostname"] for n in swarm.nodes(m1)}
    assert Machine.objects.filter(pk=m1.pk).exists()
