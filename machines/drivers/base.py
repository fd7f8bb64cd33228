"""The driver interface, a small Python cousin of libmachine's.

A driver creates and controls the *host*; it never installs Docker. Once `create()` has
returned, the host answers SSH at `ssh_address()` with the machine's key, and the shared
provisioning steps take over (for drivers that say `provisioned = True`).

Everything a page, the CLI or an operation asks of a driver ("can it restart?", "does rm
remove the host?", "which flags does `create` take?") is answered here, from the class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from django import forms

from machines import fields
from machines.lib.errors import DriverError, NotSupported

if TYPE_CHECKING:
    from machines.models import Machine


@dataclass(frozen=True)
class SSHAddress:
    host: str
    port: int
    user: str


@dataclass(frozen=True)
class CLIFlag:
    """One `machine create` flag: `--<kind>-<field>` unless the driver names it otherwise."""

    flag: str
    field: str
    form: str  # "options" (per machine) or "settings" (the configured driver)
    help: str
    is_file: bool  # the flag takes a path; the field gets the file's text
    env: str = ""  # the environment variable that gives its value when the flag is not given


#: Per-machine options that are secrets at rest (OptionsJSONField): cloud-init user data.
SECRET_OPTIONS = fields.SECRET_OPTIONS


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
    #: Settings of the row every installation gets (None: no default row, e.g. needs a token).
    #: `machine create` without -d uses this driver (docker-machine's none: attach by URL).
    cli_default: ClassVar[bool] = False
    #: Its machines are an engine reached by URL: what an imported docker-machine machine
    #: becomes when its driver is not one of dockerdash's.
    attaches_engines: ClassVar[bool] = False
    #: The name of the same driver in docker-machine's stores (config.json's DriverName).
    docker_machine_name: ClassVar[str] = ""
    default_settings: ClassVar[dict | None] = None

    # Capabilities: every "can it?" question is answered by these (and `supports()`).
    #: It hands over a host that dockerdash provisions over SSH (Docker, TLS, upgrades).
    provisioned: ClassVar[bool] = True
    #: `rm` removes the host itself (else dockerdash only forgets it).
    removes_host: ClassVar[bool] = True
    #: `rm --purge` can undo dockerdash's Docker configuration on a host that stays.
    can_purge: ClassVar[bool] = False
    #: The engine is reached with the dashboard's certificates on the machine's IP.
    issues_certificates: ClassVar[bool] = True

    #: Form fields whose CLI flag takes a file path (the field receives the file's text).
    cli_file_fields: ClassVar[frozenset[str]] = frozenset()
    #: CLI flags named otherwise than `--<kind>-<field>` (docker-machine's names), by field.
    cli_flag_names: ClassVar[dict[str, str]] = {}
    #: Environment variables giving a flag's value when it is not given, by field
    #: (docker-machine's DIGITALOCEAN_ACCESS_TOKEN and the like).
    cli_env: ClassVar[dict[str, str]] = {}
    #: Configured as provider accounts (a token, an API URL) on the dashboard's Providers page.
    has_accounts: ClassVar[bool] = False

    def __init__(self, settings: dict | None = None, secrets: dict | None = None) -> None:
        self.settings = settings or {}
        self.secrets = secrets or {}
        #: Where a lifecycle method reports progress (an operation sets its log here).
        self.log: Callable[[str], None] = lambda text: None

    @classmethod
    def supports(cls, action: str) -> bool:
        """Whether the driver implements a lifecycle action (start, stop, restart, kill)."""
        return getattr(cls, action) is not getattr(BaseDriver, action)

    @classmethod
    def cli_flags(cls) -> list[CLIFlag]:
        """The flags of `machine create -d KIND`, from the options and settings forms."""
        flags: list[CLIFlag] = []
        for source, form_class in (("options", cls.options_form), ("settings", cls.settings_form)):
            for field, form_field in form_class.base_fields.items():
                name = cls.cli_flag_names.get(field) or f"--{cls.kind}-{field.replace('_', '-')}"
                if any(f.flag == name for f in flags):
                    continue  # a per-machine option wins over the driver's default of it
                help_text = str(form_field.help_text or form_field.label or field)
                env = cls.cli_env.get(field, "")
                if env:
                    help_text = f"{help_text} (env {env})"
                is_file = field in cls.cli_file_fields
                flags.append(CLIFlag(name, field, source, help_text, is_file, env))
        return flags

    @classmethod
    def complete_cli_settings(cls, given: dict) -> dict:
        """The settings flags given to `machine create`, completed from where the provider's
        own tools look when a flag is left out (AWS's shared credentials files)."""
        return given

    def _unsupported(self, action: str) -> NotSupported:
        return NotSupported(f"{self.kind} driver cannot {action} a host")

    @classmethod
    def validate_settings(cls, settings: dict) -> None:
        """The settings form's validators over stored settings: the Django admin edits a
        provider's settings as JSON, past the form, and the model runs this (ValidationError
        naming the setting)."""
        errors = {}
        for key, value in settings.items():
            field = cls.settings_form.base_fields.get(key)
            if field is None or not isinstance(value, str) or value in field.empty_values:
                continue
            try:
                field.run_validators(value)
            except forms.ValidationError as e:
                errors[key] = e.messages
        if errors:
            raise forms.ValidationError(
                "; ".join(f"{key}: {' '.join(m)}" for key, m in errors.items()), code="invalid"
            )

    @classmethod
    def split_settings(cls, values: dict) -> tuple[dict, dict]:
        """A cleaned settings form as (settings, secrets): secrets are stored encrypted."""
        given = {k: v for k, v in values.items() if v not in ("", None)}
        secrets = {k: v for k, v in given.items() if k in cls.secret_fields}
        return {k: v for k, v in given.items() if k not in cls.secret_fields}, secrets

    def bind_options_form(self, data=None, **kwargs) -> forms.Form:
        """The options form for this configured driver: a cloud account fills its choices
        (regions, sizes, images) from its provider's API."""
        return self.options_form(data, **kwargs)

    def test_connection(self) -> str:
        """What the provider says of these settings, in a sentence (raises DriverError)."""
        raise self._unsupported("test the connection of")

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


__all__ = ["BaseDriver", "CLIFlag", "DriverError", "NotSupported", "SSHAddress"]
