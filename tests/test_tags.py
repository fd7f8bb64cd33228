"""Tags: key=value on machines, set at create (form and CLI), edited later (page and CLI),
filtered on (`ls --filter tag=`), taken from docker-machine's engine labels when asked."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from machines.models import Driver, Machine, Operation

from .dmstores import DockerMachineStore

pytestmark = pytest.mark.django_db


def _machine(name: str, **tags: str) -> Machine:
    generic = Driver.objects.get_or_create(name="generic", defaults={"kind": "generic"})[0]
    return Machine.objects.create(name=name, driver=generic, ip="192.0.2.30", tags=tags)


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("machine", *args, stdout=out, stderr=err)
    except SystemExit as e:
        return int(e.code), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_tags_set_at_create_in_the_form(admin_client_):
    generic = Driver.objects.get(name="generic")
    data = {
        "name": "db-1",
        "driver": generic.pk,
        "tags": "env=prod\nteam=data",
        "opt-ip_address": "192.0.2.20",
        "opt-ssh_user": "root",
        "opt-ssh_port": "22",
        "opt-engine_port": "2376",
    }
    assert admin_client_.post(reverse("machines:create"), data).status_code == 302
    assert Machine.objects.get(name="db-1").tags == {"env": "prod", "team": "data"}
    # A tag that is not one: said, and nothing written.
    response = admin_client_.post(
        reverse("machines:create"), {**data, "name": "db-2", "tags": "x;y"}
    )
    assert response.status_code == 400
    assert "&#x27;x;y&#x27; is not a tag" in response.content.decode()
    assert not Machine.objects.filter(name="db-2").exists()
    assert Operation.objects.filter(machine_name="db-2").count() == 0


def test_the_cli_sets_removes_and_filters_by_tags():
    _machine("web-1", env="prod", team="web")
    _machine("web-2", env="test")
    assert _cli("tag", "web-1") == (0, "env=prod\nteam=web\n", "")
    code, out, _ = _cli("tag", "web-2", "env=staging", "zone=eu-1")
    assert code == 0 and out == "env=staging\nzone=eu-1\n"
    code, out, _ = _cli("tag", "web-1", "--rm", "team")
    assert code == 0 and out == "env=prod\n"
    assert Machine.objects.get(name="web-1").tags == {"env": "prod"}
    assert _cli("ls", "-q", "--filter", "tag=env=staging")[1].split() == ["web-2"]
    assert _cli("ls", "-q", "--filter", "tag=env")[1].split() == ["web-1", "web-2"]
    assert _cli("ls", "--format", "{{.Name}} {{.Tags}}", "--filter", "tag=zone")[1] == (
        "web-2 env=staging,zone=eu-1\n"
    )
    # Refusals say why and change nothing.
    code, _, err = _cli("tag", "web-1", "bad key=1")
    assert code == 1 and "is not a tag" in err
    code, _, err = _cli("tag", "web-1", "--rm", "nope")
    assert code == 1 and err.strip() == "web-1 has no tag nope"
    code, _, err = _cli("ls", "--filter", "tag=a;b")
    assert code == 1 and "is not a tag" in err
    assert Machine.objects.get(name="web-1").tags == {"env": "prod"}


def test_operators_edit_tags_on_the_page_and_viewers_cannot(operator_client, viewer_client):
    machine = _machine("web-3", env="prod")
    page = operator_client.get(reverse("machines:detail", args=["web-3"])).content.decode()
    assert '<span class="tag">env=prod</span>' in page and "Edit tags" in page
    assert (
        "Edit tags"
        not in viewer_client.get(reverse("machines:detail", args=["web-3"])).content.decode()
    )
    url = reverse("machines:tags", args=["web-3"])
    assert viewer_client.post(url, {"tags": "env=dev"}).status_code == 403
    response = operator_client.post(url, {"tags": "env=dev, team=ops"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Saved." in response.content.decode()
    machine.refresh_from_db()
    assert machine.tags == {"env": "dev", "team": "ops"}
    response = operator_client.post(url, {"tags": "env=dev oops=a b=c;d"}, HTTP_HX_REQUEST="true")
    assert "is not a tag" in response.content.decode()
    machine.refresh_from_db()
    assert machine.tags == {"env": "dev", "team": "ops"}


def test_import_takes_engine_labels_as_tags_only_when_asked(tmp_path):
    store = DockerMachineStore(tmp_path / "store")
    config = store.add("dm-1", driver="none", URL="tcp://127.0.0.1:1")
    config["HostOptions"]["EngineOptions"]["Labels"] = ["env=lab", "owner=alice", "note=a b"]
    store.write_config("dm-1", config)
    store.add("dm-2", driver="none", URL="tcp://127.0.0.1:1")
    code, out, _ = _cli("import-docker-machine", "--storage-path", str(store.root))
    assert code == 0, out
    assert Machine.objects.get(name="dm-1").tags == {}
    Machine.objects.all().delete()
    code, out, _ = _cli(
        "import-docker-machine", "--storage-path", str(store.root), "--tags-from-labels"
    )
    assert code == 0, out
    assert Machine.objects.get(name="dm-1").tags == {"env": "lab", "owner": "alice"}
    assert "dm-1: label not taken as a tag: 'note=a b' is not a tag" in out
    assert Machine.objects.get(name="dm-2").tags == {"env": "lab"}


@pytest.mark.django_db(transaction=True)
def test_tags_set_at_create_on_the_command_line(tmp_path):
    code, out, err = _cli(
        "create", "-d", "none", "--url", f"unix://{tmp_path}/docker.sock",
        "--tag", "env=prod", "--tag", "team=web", "eng-9",
    )  # fmt: skip
    assert Machine.objects.get(name="eng-9").tags == {"env": "prod", "team": "web"}, out + err
    code, _, err = _cli("create", "-d", "none", "--url", "unix:///x.sock", "--tag", "a b", "e-10")
    assert code == 1 and "is not a tag" in err
    assert not Machine.objects.filter(name="e-10").exists()
