"""What a deploy would change, in words, from a compose file as the docker CLI resolves it
(the real CLI) against services as Swarm describes them; secrets never shown."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from machines.engine import stackcli, stackdiff
from machines.models import Cluster, Stack
from machines.services import stacks
from machines.services.errors import InvalidInput

COMPOSE = """\
services:
  web:
    image: shop/web:${TAG}
    environment:
      TOKEN: ${TOKEN}
      MODE: fast
    deploy:
      replicas: 2
    ports:
      - target: 8080
        published: 8081
        mode: host
"""


def test_the_diff_names_image_replicas_env_and_ports_and_hides_secrets():
    old = stackdiff.wanted(stackcli.resolve(COMPOSE, {"TAG": "1", "TOKEN": "a"}), "shop")
    new = stackdiff.wanted(
        stackcli.resolve(
            COMPOSE.replace("replicas: 2", "replicas: 4").replace("8081", "8082"),
            {"TAG": "2", "TOKEN": "b-secret"},
        ),
        "shop",
    )
    lines = stackdiff.diff(old, new, {"TOKEN"})
    assert lines == [
        "shop_web: image shop/web:1 → shop/web:2",
        "shop_web: replicas 2 → 4",
        "shop_web: env TOKEN=(secret)",
        "shop_web: ports 8081:8080/host → 8082:8080/host",
    ]
    assert stackdiff.diff(old, old, set()) == []
    assert stackdiff.diff({}, old, set()) == ["shop_web: new, image shop/web:1, 2 replicas"]
    assert stackdiff.diff(old, {}, set()) == ["shop_web: removed"]


@pytest.mark.django_db
def test_a_bad_compose_file_is_refused_in_the_cli_words_and_viewers_may_not_deploy(viewer):
    cluster = Cluster.objects.create(name="c1")
    bad = Stack(cluster=cluster, name="bad", compose="services: [\n")
    with pytest.raises(InvalidInput) as refused:
        stacks.save_stack(None, bad)
    assert str(refused.value) == (
        "The compose file is not valid: yaml: line 1: did not find expected node content."
    )
    stack = Stack.objects.create(cluster=cluster, name="shop", compose=COMPOSE)
    with pytest.raises(PermissionDenied, match="You may not deploy stacks"):
        stacks.deploy(viewer, stack)


@pytest.mark.django_db
def test_the_pages_refuse_a_viewer_and_the_webhook_needs_its_key(viewer_client, client):
    cluster = Cluster.objects.create(name="c1")
    stack = Stack.objects.create(cluster=cluster, name="shop", compose=COMPOSE)
    assert viewer_client.get("/clusters/c1/stacks/shop/").status_code == 200
    assert viewer_client.post("/clusters/c1/stacks/shop/deploy/").status_code == 403
    assert viewer_client.post("/clusters/", {"name": "x", "tag": "env=a"}).status_code == 403
    assert client.post(f"/hooks/stacks/{stack.pk}/wrong/").status_code == 404
