"""generic: an existing Linux host reached over SSH (docker-machine's `-d generic`)."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

from django import forms

from machines.drivers.base import BaseDriver, DriverError, SSHAddress
from machines.lib.ssh import (
    HostKeyChanged,
    SSHError,
    SSHSession,
    public_key_of,
    wait_for_ssh,
)
from machines.validation import is_host, validate_ssh_user

if TYPE_CHECKING:
    from machines.models import Machine

STATE_TIMEOUT = 3
REBOOT_TIMEOUT = 300
# What changes when a host has rebooted: the kernel's boot id on a machine or VM, the start
# time of PID 1 in a container (which shares its kernel with its parent).
BOOT_MARKER = "cat /proc/sys/kernel/random/boot_id; cut -d' ' -f22 /proc/1/stat"
# Backgrounded, so that the command returns before the host goes down under the session.
REBOOT = "(sleep 1; systemctl reboot || reboot || shutdown -r now) >/dev/null 2>&1 &"


def validate_private_key(text: str) -> None:
    try:
        public_key_of(text)
    except ValueError as e:
        raise forms.ValidationError(str(e)) from None


class GenericOptionsForm(forms.Form):
    ip_address = forms.CharField(
        label="IP address or host name",
        max_length=255,
        help_text="--generic-ip-address",
        widget=forms.TextInput(attrs={"placeholder": "203.0.113.10"}),
    )
    ssh_user = forms.CharField(
        label="SSH user",
        initial="root",
        max_length=64,
        help_text="--generic-ssh-user; a non-root user needs passwordless sudo",
        validators=[validate_ssh_user],
    )
    ssh_port = forms.IntegerField(
        label="SSH port", initial=22, min_value=1, max_value=65535, help_text="--generic-ssh-port"
    )
    ssh_key = forms.CharField(
        label="SSH private key",
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": "-----BEGIN OPENSSH PRIVATE KEY-----"}
        ),
        help_text="--generic-ssh-key. Leave empty to generate an Ed25519 key; then add its "
        "public key (shown on the machine page) to the host's authorized_keys.",
        validators=[validate_private_key],
    )
    engine_port = forms.IntegerField(
        label="Engine port",
        initial=2376,
        min_value=1,
        max_value=65535,
        help_text="--generic-engine-port",
    )

    def clean_ip_address(self) -> str:
        value = self.cleaned_data["ip_address"].strip()
        # The same rule as the model's (Machine.ip), with the form's own short message.
        if not is_host(value):
            raise forms.ValidationError("Enter an IP address or a host name.")
        return value


class GenericDriver(BaseDriver):
    kind = "generic"
    label = "Generic"
    description = "an existing host over SSH"
    options_form = GenericOptionsForm
    default_settings = {}
    # As docker-machine: rm forgets the machine and leaves the host (--purge undoes our config).
    removes_host = False
    can_purge = True
    docker_machine_name = "generic"
    cli_file_fields = frozenset({"ssh_key"})

    def apply_options(self, machine: Machine, options: dict) -> None:
        machine.ip = options["ip_address"]
        machine.ssh_user = options.get("ssh_user") or "root"
        machine.ssh_port = options.get("ssh_port") or 22
        machine.engine_port = options.get("engine_port") or 2376
        if options.get("ssh_key"):
            machine.ssh_private_key = options["ssh_key"].strip() + "\n"
        machine.driver_options = {}

    def create(self, machine: Machine, log=print) -> None:
        # The host exists already; creating it means proving we can reach it.
        addr = self.ssh_address(machine)
        log(f"Waiting for SSH on {addr.host}:{addr.port} as {addr.user}")
        with wait_for_ssh(
            addr.host, addr.port, addr.user, machine.ssh_private_key, machine.ssh_host_key
        ) as session:
            machine.ssh_host_key = session.host_key

    def restart(self, machine: Machine) -> None:
        """Reboot the host over SSH and wait until it is back (a new boot, SSH answering)."""
        addr = self.ssh_address(machine)
        with self._session(machine) as session:
            before = session.check(BOOT_MARKER)
            status, output = session.run(session.as_root(REBOOT), timeout=30)
            if status != 0:
                session.check_sudo(output)
                raise DriverError(f"Rebooting {addr.host} failed: {output.strip()}")
        deadline = time.monotonic() + REBOOT_TIMEOUT
        last = "it did not go down"
        while time.monotonic() < deadline:
            try:
                with self._session(machine, timeout=5) as session:
                    if session.check(BOOT_MARKER, timeout=10) != before:
                        return
            except HostKeyChanged:
                raise
            except SSHError as e:
                last = str(e)
            time.sleep(0.5)
        raise DriverError(
            f"{addr.host} did not come back from its reboot within {REBOOT_TIMEOUT} s ({last})"
        )

    def _session(self, machine: Machine, timeout: float = 10) -> SSHSession:
        addr = self.ssh_address(machine)
        return SSHSession(
            addr.host,
            addr.port,
            addr.user,
            machine.ssh_private_key,
            machine.ssh_host_key,
            timeout=timeout,
        )

    def remove(self, machine: Machine) -> None:
        # As docker-machine: forget the machine, leave the host alone (`rm --purge` first undoes
        # dockerdash's Docker configuration on it; see operations.do_remove).
        return None

    def state(self, machine: Machine) -> str:
        from machines.models import Machine as M

        try:
            with socket.create_connection((machine.ip, machine.ssh_port), timeout=STATE_TIMEOUT):
                return M.State.RUNNING
        except TimeoutError:
            return M.State.TIMEOUT
        except OSError:
            return M.State.STOPPED

    def ip(self, machine: Machine) -> str:
        return machine.ip

    def ssh_address(self, machine: Machine) -> SSHAddress:
        return SSHAddress(machine.ip, machine.ssh_port, machine.ssh_user)
