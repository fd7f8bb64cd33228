"""The container driver against the real test engine: real systemd hosts, real sshd."""

from __future__ import annotations

import re
import socket
import threading

import docker
import pytest

from machines.drivers.container.driver import ContainerDriver
from machines.lib.hostimage import BARE_HOST_IMAGE
from machines.lib.ssh import SSHSession, generate_key
from machines.models import Driver, Machine, Operation

from .fleet import make_machine, run_operation

pytestmark = pytest.mark.engine


def _ssh(machine: Machine) -> SSHSession:
    """SSH as a user would: the machine's own key, and its pinned host key."""
    return SSHSession(machine.ip, 22, "root", machine.ssh_private_key, machine.ssh_host_key)


def _container(parent, machine: Machine):
    return parent.containers.get(f"dockerdash-{machine.name}")


def test_create_gives_a_running_host_answering_ssh_with_the_machines_key(running_machine, parent):
    machine = running_machine
    assert machine.state == Machine.State.RUNNING
    assert not machine.ip.startswith("172.17.")  # clear of the nested engines' bridge
    assert machine.ssh_host_key.startswith(("ssh-ed25519 ", "ecdsa-sha2-", "ssh-rsa "))
    with _ssh(machine) as ssh:
        assert ssh.check("hostname").strip() == machine.name
        assert ssh.check("cat /proc/1/comm").strip() == "systemd"
        state = ssh.run("systemctl is-system-running")[1].strip()
        assert state in ("running", "degraded"), state
        assert "docker.io" in ssh.check("dpkg-query -W docker.io")
    op = machine.operations.get()
    assert (op.kind, op.status) == ("create", "succeeded")
    lines = [line.text for line in op.log_lines.all()]
    assert re.fullmatch(r"\[1/\d+\] Create the host with the container driver", lines[0])
    assert any(line.startswith("SSH answers after") for line in lines)
    assert lines[-1] == "Done"
    assert _container(parent, machine).status == "running"


def test_a_key_other_than_the_machines_is_refused(running_machine):
    other, _ = generate_key()
    with pytest.raises(Exception, match="authentication"):
        SSHSession(running_machine.ip, 22, "root", other, running_machine.ssh_host_key)


def test_stop_start_kill_restart(running_machine, parent):
    machine = running_machine
    container_id = _container(parent, machine).id

    assert run_operation(machine, Operation.Kind.STOP).status == "succeeded"
    machine.refresh_from_db()
    assert machine.state == Machine.State.STOPPED
    assert _container(parent, machine).status == "exited"

    assert run_operation(machine, Operation.Kind.START).status == "succeeded"
    machine.refresh_from_db()
    assert machine.state == Machine.State.RUNNING
    assert _container(parent, machine).id == container_id  # the same host, not a new one
    with _ssh(machine) as ssh:  # the pinned host key still matches: same host
        assert ssh.check("hostname").strip() == machine.name

    assert run_operation(machine, Operation.Kind.KILL).status == "succeeded"
    machine.refresh_from_db()
    assert machine.state == Machine.State.STOPPED

    assert run_operation(machine, Operation.Kind.RESTART).status == "succeeded"
    machine.refresh_from_db()
    assert machine.state == Machine.State.RUNNING
    with _ssh(machine) as ssh:
        ssh.check("true")
    kinds = list(machine.operations.order_by("created_at").values_list("kind", "status"))
    assert kinds == [
        ("create", "succeeded"),
        ("stop", "succeeded"),
        ("start", "succeeded"),
        ("kill", "succeeded"),
        ("restart", "succeeded"),
    ]


def test_remove_deletes_the_container_and_forgets_the_machine(running_machine, parent):
    machine = running_machine
    name, container_name = machine.name, f"dockerdash-{machine.name}"
    op = run_operation(machine, Operation.Kind.REMOVE)
    assert op.status == "succeeded", op.error
    assert not Machine.objects.filter(name=name).exists()
    with pytest.raises(docker.errors.NotFound):
        parent.containers.get(container_name)
    with pytest.raises(docker.errors.NotFound):
        parent.volumes.get(f"dockerdash-{name}-docker")
    # The operation (and its log) outlives the machine.
    op.refresh_from_db()
    assert op.machine is None and op.machine_name == name


def test_a_half_created_machine_is_removed_cleanly(new_machine, parent):
    # The container exists but was never started (as after a crash in the middle of create).
    machine = new_machine()
    driver = machine.get_driver()
    client = driver.client()
    driver._ensure_network(client)
    driver._create_container(
        client,
        machine,
        machine.driver_options["image"],
        "dockerdash-machines",
        client.info(),
        print,
    )
    assert _container(parent, machine).status == "created"
    op = run_operation(machine, Operation.Kind.REMOVE)
    assert op.status == "succeeded", op.error
    with pytest.raises(docker.errors.NotFound):
        _container(parent, machine)
    assert not Machine.objects.filter(pk=machine.pk).exists()


def test_two_machines_get_different_ssh_host_keys(new_machine):
    a, b = new_machine(), new_machine()
    for m in (a, b):
        assert run_operation(m, Operation.Kind.CREATE).status == "succeeded"
        m.refresh_from_db()
    assert a.ssh_host_key != b.ssh_host_key
    with _ssh(a) as ssh_a, _ssh(b) as ssh_b:
        fp = "cat /etc/ssh/ssh_host_ed25519_key.pub"
        assert ssh_a.check(fp) != ssh_b.check(fp)


def test_bare_image_boots_without_docker(new_machine):
    # The driver alone (a create operation would go on to install Docker).
    machine = new_machine(image=BARE_HOST_IMAGE)
    machine.get_driver().create(machine)
    machine.save()
    with _ssh(machine) as ssh:
        status, _ = ssh.run("command -v docker")
        assert status != 0


def _machine_on(engine: str, name: str) -> Machine:
    driver = Driver.objects.create(
        name=f"parent-{name}", kind="container", settings={"engine": engine}
    )
    return make_machine(driver, name=name)


@pytest.mark.django_db(transaction=True)
def test_parent_engine_down_gives_a_clear_error_and_state_error(tmp_path):
    engine = f"unix://{tmp_path}/docker.sock"  # nothing listens there: the engine is down
    machine = _machine_on(engine, "down-1")
    op = run_operation(machine, Operation.Kind.CREATE)
    assert op.status == "failed"
    assert op.error.startswith(f"Parent engine {engine} is not reachable")
    machine.refresh_from_db()
    assert machine.state == Machine.State.ERROR
    assert f"Parent engine {engine} is not reachable" in machine.last_error
    assert op.log_lines.last().text.startswith("Failed: Parent engine")


@pytest.mark.django_db(transaction=True)
def test_parent_engine_that_never_answers_fails_within_its_timeout(tmp_path, monkeypatch):
    # A listener that accepts and then says nothing, like a hung daemon.
    path = tmp_path / "hung.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(16)
    accepted = []
    threading.Thread(
        target=lambda: [accepted.append(server.accept()) for _ in range(16)], daemon=True
    ).start()
    monkeypatch.setattr(ContainerDriver, "client", _short_timeout_client)
    machine = _machine_on(f"unix://{path}", "hung-1")
    op = run_operation(machine, Operation.Kind.CREATE)
    server.close()
    assert op.status == "failed"
    assert "does not answer" in op.error
    machine.refresh_from_db()
    assert machine.state == Machine.State.ERROR


_original_client = ContainerDriver.client


def _short_timeout_client(self, timeout: float = 15):
    return _original_client(self, timeout=1)


def test_unsupported_actions_of_any_driver_raise(db):
    from machines.drivers import NotSupported, driver_class

    generic = driver_class("generic")()
    machine = Machine(name="x", ip="192.0.2.1")
    for action in ("start", "stop", "kill"):
        with pytest.raises(NotSupported, match=f"generic driver cannot {action} a host"):
            getattr(generic, action)(machine)
    with pytest.raises(NotSupported, match="none driver cannot stop a host"):
        driver_class("none")().stop(machine)
