"""The driver interface, a small Python cousin of libmachine's.

A driver creates and controls the *host*; it never installs Docker. Once `create()` has
returned, the host answers SSH at `ssh_address()` with the machine's key, and the shared
provisioner (or, until it exists, the operation itself) takes over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from django import forms

if TYPE_CHECKING:
    from machines.models import Machine


class DriverError(Exception):
    """A driver could not do what was asked; the message is shown to the user as it is."""


class NotSupported(DriverError):
    """The driver cannot do this action at all (never a silent no-op)."""


@dataclass(frozen=True)
class SSHAddress:
    host: str
    port: int
    user: str


class DriverSettingsForm(forms.Form):
    """Settings of a configured Driver (the provider): parent engine, credentials, ..."""


class MachineOptionsForm(forms.Form):
    """Per-machine options of a driver: the equivalent of docker-machine's create flags."""


class BaseDriver:
    kind: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str] = ""
    settings_form: ClassVar[type[forms.Form]] = DriverSettingsForm
    options_form: ClassVar[type[forms.Form]] = MachineOptionsForm
    #: Which keys of the settings are secrets (stored encrypted, never shown).
    secret_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: dict | None = None, secrets: dict | None = None) -> None:
        self.settings = settings or {}
        self.secrets = secrets or {}

    def _unsupported(self, action: str) -> NotSupported:
        return NotSupported(f"{self.kind} driver cannot {action} a host")

    def apply_options(self, machine: Machine, options: dict) -> None:
        """Store the cleaned options form on the machine (fields or driver_options)."""
        machine.driver_options = options

    # The lifecycle. Each returns when the host has reached the asked state or raises.
    def create(self, machine: Machine, log=print) -> None:
        raise self._unsupported("create")

    def start(self, machine: Machine) -> None:
        raise self._unsupported("start")

    def stop(self, machine: Machine) -> None:
        raise self._unsupported("stop")

    def restart(self, machine: Machine) -> None:
        raise self._unsupported("restart")

    def kill(self, machine: Machine) -> None:
        raise self._unsupported("kill")

    def remove(self, machine: Machine) -> None:
        raise self._unsupported("remove")

    def state(self, machine: Machine) -> str:
        """One of Machine.State's values, observed now."""
        raise self._unsupported("observe the state of")

    def ip(self, machine: Machine) -> str:
        raise self._unsupported("report the IP of")

    def ssh_address(self, machine: Machine) -> SSHAddress:
        raise self._unsupported("give SSH access to")
