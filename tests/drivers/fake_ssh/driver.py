"""fake-ssh: hands out a host of the test fleet that is already running, as a driver that
takes over an existing server would; provisioning, TLS and the rest are dockerdash's own.

It is a whole driver added as the README's "Adding a driver" says: this package and one
registry line (DOCKERDASH_EXTRA_DRIVERS=fake-ssh=tests.drivers.fake_ssh.driver.FakeSSHDriver).
"""

from __future__ import annotations

import io
import tarfile
from typing import TYPE_CHECKING

import docker.errors
from django import forms

from machines.drivers.base import BaseDriver, DriverError, SSHAddress
from machines.engine import clients
from machines.lib.ssh import public_key_of, wait_for_ssh

if TYPE_CHECKING:
    from machines.models import Machine


class FakeSSHSettingsForm(forms.Form):
    engine = forms.CharField(label="Test engine", help_text="the test fleet's engine URL")


class FakeSSHOptionsForm(forms.Form):
    container = forms.CharField(label="Host container", help_text="a running host's name")


class FakeSSHDriver(BaseDriver):
    kind = "fake-ssh"
    label = "Fake SSH"
    description = "a running host of the test fleet"
    settings_form = FakeSSHSettingsForm
    options_form = FakeSSHOptionsForm
    removes_host = False  # the test that started the host removes it

    def _container(self, machine: Machine):
        client = clients.client(self.settings["engine"], timeout=15)
        try:
            return client.containers.get(machine.driver_options["container"])
        except docker.errors.NotFound:
            raise DriverError(f"No host container {machine.driver_options['container']}") from None

    def create(self, machine: Machine, log=print) -> None:
        container = self._container(machine)
        key = (public_key_of(machine.ssh_private_key) + " fake-ssh\n").encode()
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo("root/.ssh/authorized_keys")
            info.size, info.mode = len(key), 0o600
            tar.addfile(info, io.BytesIO(key))
        container.put_archive("/", archive.getvalue())
        machine.ip = self.ip(machine)
        log(f"Handed out {container.name} at {machine.ip}")
        with wait_for_ssh(machine.ip, 22, "root", machine.ssh_private_key, "") as session:
            machine.ssh_host_key = session.host_key

    def remove(self, machine: Machine) -> None:
        return None

    def state(self, machine: Machine) -> str:
        running = self._container(machine).status == "running"
        return machine.State.RUNNING if running else machine.State.STOPPED

    def ip(self, machine: Machine) -> str:
        networks = self._container(machine).attrs["NetworkSettings"]["Networks"]
        return next(n["IPAddress"] for n in networks.values() if n.get("IPAddress"))

    def ssh_address(self, machine: Machine) -> SSHAddress:
        return SSHAddress(machine.ip, 22, "root")
