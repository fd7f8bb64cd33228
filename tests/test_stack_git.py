"""A git-backed stack on a real one-machine cluster: the compose file is fetched from a
repository served over HTTP at each deploy; a pushed change and a call to the stack's
webhook URL redeploy it. A wrong webhook key does nothing."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from machines.models import Cluster, Operation, Stack, StackDeploy
from machines.services import clusters, stacks

from .fleet import assert_succeeded
from .swarmfleet import STACK, answers, run, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _webhook(stack: Stack, key: str | None = None):
    url = reverse("machines:stack_webhook", args=[stack.pk, key or stack.webhook_key])
    return Client().post(url)


def test_a_push_and_the_webhook_redeploy_a_git_stack(registry_machine, web_images, git_repo):
    machine = registry_machine
    assert_succeeded(run(clusters.create_cluster(None, "solo", [machine])))
    cluster = Cluster.objects.get(name="solo")
    git_repo.commit("stack.yml", STACK)
    stack = Stack(
        cluster=cluster,
        name="gitshop",
        git_url=git_repo.url,
        git_branch="main",
        git_path="stack.yml",
        env={
            "WEB_IMAGE": web_images["web1"],
            "SLEEPER_IMAGE": web_images["sleeper"],
            "MESSAGE": "from-git-1",
        },
        secret_env={"API_KEY": "k"},
    )
    stacks.save_stack(None, stack)

    assert _webhook(stack, key="not-the-key").status_code == 404
    response = _webhook(stack)
    assert response.status_code == 202, response.content
    op = Operation.objects.filter(kind=Operation.Kind.STACK_DEPLOY).latest("id")
    assert_succeeded(run(op))
    wait_for(lambda: answers(machine.ip, 8081).startswith("from-git-1"), what="first deploy")

    # A change pushed to the repository: the file now sets its own message.
    git_repo.commit("stack.yml", STACK.replace("${MESSAGE}", "pushed-change"))
    assert _webhook(stack).status_code == 202
    op = Operation.objects.filter(kind=Operation.Kind.STACK_DEPLOY).latest("id")
    assert_succeeded(run(op))
    wait_for(lambda: answers(machine.ip, 8081).startswith("pushed-change"), what="redeploy")
    last = StackDeploy.objects.filter(stack=stack).first()
    assert last.requested_via == "webhook" and "MESSAGE=pushed-change" in "\n".join(last.diff)

    # An update that cannot run (an image the registry does not have): Swarm pauses it (the
    # stack's failure action) and the services say which task failed and why.
    stack.env = {**stack.env, "WEB_IMAGE": web_images["web1"].replace(":1", ":9")}
    stacks.save_stack(None, stack)
    assert_succeeded(run(stacks.deploy(None, stack)))

    def paused():
        web = next(s for s in stacks.state(stack)["services"] if s["name"] == "gitshop_web")
        failed = [t for t in web["tasks"] if t["error"]]
        return (web, failed) if web["update"] == "paused" and failed else None

    web, failed = wait_for(paused, timeout=120, what="the update paused")
    assert "update paused" in web["update_message"], web["update_message"]
    assert ":9" in failed[0]["image"] and failed[0]["error"], failed[0]
    print(f"paused: {web['update_message']} / task error: {failed[0]['error']}")

    # A branch that does not exist: refused in one sentence, nothing deployed.
    stack.git_branch = "nope"
    with pytest.raises(stacks.InvalidInput, match=r"Fetching .* failed: Remote branch nope"):
        stacks.save_stack(None, stack)
