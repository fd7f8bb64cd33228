"""`machine create --swarm CLUSTER [--swarm-master]`, as docker-machine's flags were: the
first manager starts the cluster, the next machine joins it as a worker, in a shell."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.engine


def nodes(cli, manager: str) -> set[str]:
    """The swarm's nodes as the manager's own docker CLI lists them (over `machine ssh`)."""
    listing = "docker node ls --format '{{.Hostname}}:{{.ManagerStatus}}:{{.Status}}'"
    return set(cli("machine", "ssh", manager, listing).stdout.split())


def test_create_with_swarm_flags_forms_a_cluster(container_cli, engine_url):
    cli = container_cli
    first, second = (f"cs-{uuid.uuid4().hex[:6]}" for _ in range(2))
    cluster = f"c{uuid.uuid4().hex[:6]}"
    flags = ["machine", "create", "-d", "container", "--container-engine", engine_url]
    refused = cli(*flags, "--swarm", cluster, first, check=False)
    assert refused.returncode != 0
    assert f"There is no cluster {cluster}: start it with --swarm-master" in refused.stderr

    made = cli(*flags, "--swarm", cluster, "--swarm-master", first)
    assert f"Join the cluster {cluster} as manager" in made.stdout, made.stdout
    assert made.stdout.rstrip().endswith("Done")
    joined = cli(*flags, "--swarm", cluster, second)
    assert f"Join the cluster {cluster} as worker" in joined.stdout, joined.stdout
    assert joined.stdout.rstrip().endswith("Done")

    assert nodes(cli, first) == {f"{first}:Leader:Ready", f"{second}::Ready"}

    removed = cli("machine", "rm", "-y", second)
    assert f"Successfully removed {second}" in removed.stdout
    assert nodes(cli, first) == {f"{first}:Leader:Ready"}
    # The last manager leaves too (and its volume goes with it).
    assert f"Successfully removed {first}" in cli("machine", "rm", "-y", first).stdout
