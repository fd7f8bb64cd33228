"""The pages and their actions over HTTP: machine page, connect panel, client certificates,
container actions on a real engine, the fleet view and its search."""

from __future__ import annotations

import contextlib
import io
import time
import uuid
import zipfile
from datetime import timedelta

import docker.errors
import pytest
from django.urls import reverse
from django.utils import timezone

from machines.lib.hostimage import BARE_HOST_IMAGE
from machines.models import Container, Operation
from machines.pki import certs, usercerts
from machines.templatetags.dashboard import compact_duration, docker_status

from .clientcerts import provisioned
from .fleet import make_machine

# -- the machine page ---------------------------------------------------------------------


@pytest.mark.django_db
def test_machine_page_shows_engine_info(viewer_client, generic_machine):
    generic_machine.engine_info = {
        "os": "Debian GNU/Linux 12 (bookworm)",
        "kernel": "6.1.0-40-amd64",
        "cpus": 4,
        "memory": 8 * 1024**3,
        "storage_driver": "overlay2",
        "api_version": "1.41",
    }
    generic_machine.save()
    provisioned(generic_machine, trusted=False)
    page = viewer_client.get(reverse("machines:detail", args=["web-1"])).content.decode()
    for text in (
        "Debian GNU/Linux 12 (bookworm)",
        "6.1.0-40-amd64",
        "4 CPUs, 8.0\xa0GB",
        "overlay2",
    ):
        assert text in page
    expires = generic_machine.tls_server_expires_at
    assert f'valid until <time datetime="{expires:%Y-%m-%dT%H:%M:%S}' in page


@pytest.mark.django_db
def test_connect_panel_says_not_provisioned_yet(operator_client, generic_machine):
    page = operator_client.get(reverse("machines:detail", args=["web-1"])).content.decode()
    assert "Not provisioned yet" in page
    assert "client-bundle.zip" not in page and "DOCKER_CERT_PATH" not in page


@pytest.mark.django_db
def test_connect_panel_gives_env_for_each_shell_and_a_docker_context(
    operator_client, viewer_client, generic_machine
):
    provisioned(generic_machine, trusted=False)
    url = reverse("machines:detail", args=["web-1"])
    page = operator_client.get(url).content.decode()
    certs_dir = "$HOME/.docker/dockerdash/web-1"
    assert f'export DOCKER_CERT_PATH="{certs_dir}"' in page
    assert 'export DOCKER_HOST="tcp://192.0.2.10:2376"' in page
    assert 'set -gx DOCKER_HOST "tcp://192.0.2.10:2376";' in page
    assert '$Env:DOCKER_CERT_PATH = "$HOME\\.docker\\dockerdash\\web-1"' in page
    assert (
        'docker context create web-1 --docker "host=tcp://192.0.2.10:2376,'
        f'ca={certs_dir}/ca.pem,cert={certs_dir}/cert.pem,key={certs_dir}/key.pem"'
    ) in page
    assert reverse("machines:client_bundle", args=["web-1"]) in page
    # Viewers see how to connect but not the key to the engine.
    page = viewer_client.get(url).content.decode()
    assert "docker context create web-1" in page
    assert reverse("machines:client_bundle", args=["web-1"]) not in page
    assert "for operators and admins" in page


@pytest.mark.django_db
def test_client_bundle_is_the_ca_and_a_certificate_of_the_users_own(
    operator_client, generic_machine
):
    url = reverse("machines:client_bundle", args=["web-1"])
    assert operator_client.get(url).status_code == 404  # nothing to give yet
    provisioned(generic_machine, trusted=False)
    # As provisioning records it once the engine runs with the users' client CA.
    usercerts.record_trust(generic_machine, usercerts.get_or_create_ca())
    response = operator_client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="web-1-certs.zip"'
    assert response["Cache-Control"] == "no-store"
    ca = certs.ca_for_machine(generic_machine)
    with zipfile.ZipFile(io.BytesIO(response.content)) as bundle:
        assert sorted(bundle.namelist()) == ["ca.pem", "cert.pem", "key.pem"]
        assert bundle.read("ca.pem").decode() == ca.cert
        assert bundle.read("cert.pem").decode() != ca.client_cert
        assert bundle.read("key.pem").decode() != ca.client_key
        assert bundle.getinfo("key.pem").external_attr >> 16 == 0o600


@pytest.mark.django_db
def test_buttons_are_those_the_role_and_the_driver_allow(
    admin_client_, operator_client, generic_machine
):
    url = reverse("machines:detail", args=["web-1"])
    page = operator_client.get(url).content.decode()
    for action in ("restart", "provision", "regenerate-certs", "upgrade"):
        assert reverse("machines:action", args=["web-1", action]) in page
    # An existing host over SSH can be rebooted, not started or stopped by dockerdash.
    for action in ("start", "stop", "kill"):
        assert reverse("machines:action", args=["web-1", action]) not in page
    # An engine attached by URL: nothing to start or provision.
    make_machine("none", name="attached", state="running")
    attached = operator_client.get(reverse("machines:detail", args=["attached"])).content
    assert b"/machines/attached/restart/" not in attached
    assert b"/machines/attached/provision/" not in attached
    assert reverse("machines:remove", args=["web-1"]) not in page
    assert reverse("machines:remove", args=["web-1"]) in admin_client_.get(url).content.decode()
    listing = admin_client_.get(reverse("machines:list")).content.decode()
    assert "Regenerate certs" in listing and reverse("machines:remove", args=["web-1"]) in listing


@pytest.mark.django_db
def test_list_row_shows_the_running_operation(viewer_client, generic_machine):
    Operation.objects.create(
        machine=generic_machine,
        machine_name="web-1",
        kind="provision",
        status="running",
        step=4,
        steps_total=7,
        step_name="Install Docker",
    )
    page = viewer_client.get(reverse("machines:list")).content.decode()
    assert "provision 4/7…" in page and 'title="Provision: Install Docker"' in page


@pytest.mark.django_db
def test_operations_history_replays_finished_logs_and_connects_running_ones(
    viewer_client, generic_machine
):
    done = Operation.objects.create(
        machine=generic_machine, machine_name="web-1", kind="start", status="succeeded"
    )
    done.log_lines.create(seq=1, text="web-1 is running at 192.0.2.10")
    running = Operation.objects.create(
        machine=generic_machine, machine_name="web-1", kind="restart", status="running"
    )
    page = viewer_client.get(reverse("machines:detail", args=["web-1"])).content.decode()
    assert "web-1 is running at 192.0.2.10" in page
    assert f'ws-connect="/ws/operations/{running.pk}/"' in page
    assert f'ws-connect="/ws/operations/{done.pk}/"' not in page
    assert f'ws-connect="/ws/machines/{generic_machine.pk}/?after={running.pk}"' in page


# -- relative times ---------------------------------------------------------------------------


def test_times_read_compactly():
    assert [compact_duration(s) for s in (0, 12, 59, 60, 3599, 3600, 47 * 3600, 49 * 3600)] == [
        "0 s",
        "12 s",
        "59 s",
        "1 min",
        "59 min",
        "1 h",
        "47 h",
        "2 d",
    ]


def test_docker_status_keeps_counting_from_when_it_was_observed():
    observed = timezone.now() - timedelta(minutes=2)
    up = Container(status="Up 3 minutes (healthy)", updated_at=observed)
    html = docker_status(up)
    assert html.startswith("Up <time") and html.endswith("5 min</time> (healthy)")
    exited = Container(status="Exited (137) About an hour ago", updated_at=observed)
    assert docker_status(exited).startswith("Exited (137) <time")
    assert docker_status(exited).endswith("1 h</time> ago")
    assert docker_status(Container(status="Created", updated_at=observed)) == "Created"


# -- the fleet view ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_fleet_lists_every_machines_containers_with_search(viewer_client):
    alpha = make_machine("none", name="alpha", state="running")
    beta = make_machine("none", name="beta", state="running")
    now = timezone.now()
    for machine, name, state, image in (
        (alpha, "shop-web", "running", "nginx:1.27"),
        (alpha, "shop-db", "exited", "postgres:17"),
        (beta, "blog-web", "running", "nginx:1.27"),
    ):
        Container.objects.create(
            machine=machine,
            container_id=uuid.uuid4().hex,
            name=name,
            state=state,
            image=image,
            created=now,
        )
    url = reverse("machines:fleet")
    page = viewer_client.get(url).content.decode()
    assert all(n in page for n in ("shop-web", "shop-db", "blog-web", ">alpha</a>", ">beta</a>"))
    assert 'ws-connect="/ws/containers/"' in page

    def rows(**query) -> str:
        return viewer_client.get(
            url, query, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="containers-live"
        ).content.decode()

    partial = rows(q="nginx")
    assert partial.startswith('<div id="containers-live"') and "<html" not in partial
    assert "shop-web" in partial and "blog-web" in partial and "shop-db" not in partial
    # The table's socket follows the same filter.
    assert 'ws-connect="/ws/containers/?q=nginx"' in partial
    assert "blog-web" in rows(q="BETA") and "shop-web" not in rows(q="BETA")
    only = rows(state="exited")
    assert "shop-db" in only and "shop-web" not in only
    assert "No container matches." in rows(q="nothing-like-this")


# -- container actions on a real engine ------------------------------------------------------


@pytest.fixture
def engine_container(db, engine_url, parent, host_images):
    """A factory: a container started on the test engine, stored as its machine's watcher would."""
    machine = make_machine("none", name="local", state="running", engine_url=engine_url)
    started = []

    def start(command: str, **kwargs) -> Container:
        name = f"ui-{uuid.uuid4().hex[:8]}"
        running = parent.containers.run(
            host_images[BARE_HOST_IMAGE],
            ["sh", "-c", command],
            name=name,
            detach=True,
            network_mode="none",
            **kwargs,
        )
        started.append(running)
        return Container.objects.create(
            machine=machine, container_id=running.id, name=name, state="running"
        )

    yield start
    for running in started:
        with contextlib.suppress(docker.errors.NotFound):  # removed by the test
            running.remove(force=True)


# With an init as PID 1, a stop ends it at once (PID 1 itself ignores SIGTERM).
QUICK = "while true; do sleep 0.1; done"


def _post(client, container: Container, action: str):
    url = reverse(
        "machines:container_action",
        args=[container.machine.name, container.container_id, action],
    )
    return client.post(url, HTTP_HX_REQUEST="true")


def _state(parent, container: Container) -> str:
    return parent.api.inspect_container(container.container_id)["State"]["Status"]


def _wait_for_state(parent, container: Container, state: str, started_after: str = "") -> None:
    deadline = time.monotonic() + 30
    while True:
        now = parent.api.inspect_container(container.container_id)["State"]
        if now["Status"] == state and now["StartedAt"] > started_after:
            return
        assert time.monotonic() < deadline, f"{container.name} never became {state}: {now}"
        time.sleep(0.1)


@pytest.mark.engine
def test_operator_acts_on_a_container(operator_client, engine_container, parent):
    container = engine_container(QUICK, init=True)
    for action, doing, done, state in (
        ("pause", "Pausing", "Paused", "paused"),
        ("unpause", "Unpausing", "Unpaused", "running"),
        ("restart", "Restarting", "Restarted", "running"),
        ("stop", "Stopping", "Stopped", "exited"),
        ("start", "Starting", "Started", "running"),
        ("kill", "Killing", "Killed", "exited"),
    ):
        started = parent.api.inspect_container(container.container_id)["State"]["StartedAt"]
        response = _post(operator_client, container, action)
        assert response.status_code == 200
        body = response.content.decode()
        assert body.startswith('<div id="container-notice" class="notice"')
        # Done within the second the request waits, or said to be under way.
        assert f"{done} {container.name}." in body or f"{doing} {container.name}…" in body, body
        _wait_for_state(parent, container, state, started if action == "restart" else "")
    body = _post(operator_client, container, "remove").content.decode()
    assert f"Removed {container.name}." in body
    assert not parent.containers.list(all=True, filters={"id": container.container_id})


@pytest.mark.engine
def test_a_slow_stop_answers_at_once_and_finishes_behind(operator_client, engine_container, parent):
    container = engine_container("sleep 600")  # PID 1 ignores SIGTERM: docker waits 10 s
    started = time.monotonic()
    body = _post(operator_client, container, "stop").content.decode()
    assert time.monotonic() - started < 3
    assert f"Stopping {container.name}…" in body
    assert _state(parent, container) == "running"
    _wait_for_state(parent, container, "exited")


@pytest.mark.engine
def test_what_the_engine_refuses_is_said_in_the_notice(operator_client, engine_container):
    container = engine_container(QUICK, init=True)
    assert "Unpaused" not in (body := _post(operator_client, container, "unpause").content.decode())
    assert 'class="notice error"' in body and "is not paused" in body


@pytest.mark.django_db
def test_container_actions_refuse_unknown_actions_and_containers(operator_client, viewer_client):
    machine = make_machine("none", name="local", state="running")
    container = Container.objects.create(machine=machine, container_id="c0ffee", name="web")
    url = reverse("machines:container_action", args=["local", "c0ffee", "explode"])
    assert operator_client.post(url).status_code == 404
    gone = reverse("machines:container_action", args=["local", "deadbeef", "stop"])
    assert "not on the machine" in operator_client.post(gone).content.decode()
    assert _post(viewer_client, container, "stop").status_code == 403


@pytest.mark.django_db
def test_log_panel_is_for_operators(operator_client, viewer_client):
    machine = make_machine("none", name="local", state="running")
    Container.objects.create(machine=machine, container_id="c0ffee", name="web")
    url = reverse("machines:container_logs", args=["local", "c0ffee"])
    panel = operator_client.get(url).content.decode()
    assert f'ws-connect="/ws/machines/{machine.pk}/containers/c0ffee/logs/"' in panel
    assert viewer_client.get(url).status_code == 403
    assert (
        operator_client.get(reverse("machines:container_logs", args=["local", "x"])).status_code
        == 404
    )
