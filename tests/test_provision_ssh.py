"""SSH as provisioning meets it on real hosts: sudo, pinned host keys, an OS it does not know."""

from __future__ import annotations

import pytest

from machines.engine import clients
from machines.lib.ssh import SSHSession, SudoError
from machines.models import Machine, Operation

from .fleet import assert_succeeded, boot_host, log_of, make_machine, run_operation, ssh

pytestmark = pytest.mark.engine


def _add_user(host: Machine, user: str, sudoers: str) -> None:
    """A user who logs in with the host's key; `sudoers` is its line in /etc/sudoers.d."""
    with ssh(host) as session:
        session.check(
            f"useradd -m -s /bin/sh {user} && install -d -m 700 -o {user} -g {user} "
            f"/home/{user}/.ssh && install -m 600 -o {user} -g {user} /root/.ssh/authorized_keys "
            f"/home/{user}/.ssh/authorized_keys && printf '%s\\n' '{sudoers}' > "
            f"/etc/sudoers.d/{user} && chmod 440 /etc/sudoers.d/{user}"
        )


def test_a_non_root_user_with_passwordless_sudo_provisions(new_machine):
    host = boot_host(new_machine)
    _add_user(host, "deploy", "deploy ALL=(ALL) NOPASSWD:ALL")
    machine = make_machine(ip=host.ip, ssh_user="deploy", ssh_private_key=host.ssh_private_key)
    op = run_operation(machine, Operation.Kind.CREATE)
    assert_succeeded(op)
    lines = log_of(op)
    assert f"[3/9] Connect to deploy@{host.ip}:22 over SSH" in lines
    assert "deploy becomes root with sudo -n" in lines
    machine.refresh_from_db()
    client = clients.client_for_machine(machine)
    assert client.ping()
    client.close()

    # Files over SFTP land where only root may write, with their mode, through sudo.
    with ssh(machine) as session:
        assert not session.is_root
        session.put("/etc/docker/dockerdash-test.txt", b"hello\n", mode=0o600)
        assert session.check("sudo -n stat -c '%a %U' /etc/docker/dockerdash-test.txt").strip() == (
            "600 root"
        )
        assert session.check("sudo -n cat /etc/docker/dockerdash-test.txt") == "hello"


def test_a_user_whose_sudo_wants_a_password_gets_told_so(new_machine):
    host = boot_host(new_machine)
    _add_user(host, "asker", "asker ALL=(ALL) ALL")
    machine = make_machine(ip=host.ip, ssh_user="asker", ssh_private_key=host.ssh_private_key)
    op = run_operation(machine, Operation.Kind.CREATE)
    assert op.status == Operation.Status.FAILED
    assert op.error.startswith(f"sudo asks asker for a password on {host.ip}: dockerdash runs")
    assert "asker ALL=(ALL) NOPASSWD:ALL" in op.error
    assert log_of(op)[-1] == f"Failed: {op.error}"
    machine.refresh_from_db()
    with ssh(machine) as session, pytest.raises(SudoError, match="sudo asks asker for a password"):
        session.run_script("true")


def test_a_changed_host_key_is_refused(running_machine):
    machine = running_machine
    pinned = machine.ssh_host_key
    with ssh(machine) as session:
        session.check(
            "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh"
        )
    op = run_operation(machine, Operation.Kind.PROVISION)
    assert op.status == Operation.Status.FAILED
    assert op.error.startswith(f"The SSH host key of {machine.ip}:22 has changed")
    assert "Refusing to connect" in op.error
    machine.refresh_from_db()
    assert machine.ssh_host_key == pinned  # never silently re-pinned
    # The first contact of a machine pins the key it is offered, shown as a fingerprint.
    fresh = SSHSession(machine.ip, 22, "root", machine.ssh_private_key)
    assert fresh.host_key != pinned
    fresh.close()


def test_an_unknown_os_names_itself(new_machine):
    host = boot_host(new_machine)
    with ssh(host) as session:
        session.check(
            "rm -f /etc/os-release && printf '%s\\n' 'NAME=\"Plan 10\"' 'ID=plan10' "
            "'ID_LIKE=\"bell-labs\"' 'PRETTY_NAME=\"Plan 10 from Bell Labs\"' > /etc/os-release"
        )
    machine = make_machine(ip=host.ip, ssh_private_key=host.ssh_private_key)
    op = run_operation(machine, Operation.Kind.CREATE)
    assert op.status == Operation.Status.FAILED
    assert op.error.startswith(
        'Unsupported operating system "Plan 10 from Bell Labs" (ID=plan10, ID_LIKE="bell-labs" '
        "in /etc/os-release)"
    )
    assert [line for line in log_of(op) if line.startswith("[")][-1] == (
        "[4/9] Detect the operating system"
    )
