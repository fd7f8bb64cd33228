"""none: attach an engine made elsewhere, by URL (docker-machine's `-d none`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms

from .base import BaseDriver

if TYPE_CHECKING:
    from machines.models import Machine


class NoneOptionsForm(forms.Form):
    url = forms.CharField(
        label="Engine URL",
        max_length=255,
        help_text="tcp://HOST:2376 (with TLS), ssh://user@host or unix:///var/run/docker.sock",
        widget=forms.TextInput(attrs={"placeholder": "tcp://203.0.113.10:2376"}),
    )

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        if not url.startswith(("tcp://", "ssh://", "unix://")):
            raise forms.ValidationError("The URL must start with tcp://, ssh:// or unix://.")
        return url


class NoneDriver(BaseDriver):
    kind = "none"
    label = "None"
    description = "An existing Docker engine, attached by its URL."
    options_form = NoneOptionsForm

    def apply_options(self, machine: Machine, options: dict) -> None:
        machine.engine_url = options["url"]
        machine.driver_options = {"url": options["url"]}

    def create(self, machine: Machine, log=print) -> None:
        log(f"Attaching the engine at {machine.engine_url}")

    def remove(self, machine: Machine) -> None:
        return None

    def state(self, machine: Machine) -> str:
        # As docker-machine's none driver: there is no host to observe, only the engine,
        # whose reachability the health check and the engine watcher report.
        from machines.models import Machine as M

        return M.State.RUNNING

    def ip(self, machine: Machine) -> str:
        return machine.ip
