"""The hetzner driver's forms: its `machine create` flags (as the community docker-machine
driver for Hetzner Cloud had them), HCLOUD_TOKEN and HCLOUD_ENDPOINT as the hcloud CLI."""

from __future__ import annotations

import re

from django import forms
from django.core.validators import RegexValidator

from machines.drivers.cloud import (
    CloudOptionsForm,
    api_url_field,
    dashboard_address_field,
    token_field,
)

PUBLIC_API = "https://api.hetzner.cloud/v1"
# Hetzner Cloud's label syntax (API reference, "Labels"): an optional DNS-like prefix.
_NAME = r"[a-z0-9A-Z](?:[a-z0-9A-Z\-_.]{0,61}[a-z0-9A-Z])?"
LABEL_KEY_RE = re.compile(rf"\A(?:{_NAME}(?:\.{_NAME})*/)?{_NAME}\Z")
LABEL_VALUE_RE = re.compile(rf"\A(?:{_NAME})?\Z")
OURS = "dockerdash/"


class HetznerSettingsForm(forms.Form):
    api_token = token_field(
        "API token",
        "A Read & Write API token of the project (Security > API tokens in the Cloud Console).",
    )
    api_url = api_url_field(PUBLIC_API)
    dashboard_address = dashboard_address_field()


class HetznerOptionsForm(CloudOptionsForm):
    region_field = "server_location"
    size_field = "server_type"

    server_location = forms.CharField(
        label="Location", required=False, help_text="e.g. fsn1; empty: the account's first"
    )
    server_type = forms.CharField(
        label="Server type",
        required=False,
        help_text="e.g. cx22; empty: the smallest that runs Docker",
    )
    image = forms.CharField(required=False, help_text="image name; empty: debian-12")
    ssh_user = forms.CharField(
        label="SSH user",
        initial="root",
        validators=[RegexValidator(r"\A[a-z_][a-z0-9_.-]*\Z", "Not a valid user name.")],
    )
    ssh_port = forms.IntegerField(label="SSH port", initial=22, min_value=1, max_value=65535)
    networks = forms.CharField(
        required=False, help_text="private networks to attach, by ID or name, comma-separated"
    )
    firewalls = forms.CharField(
        required=False,
        help_text="firewalls to apply besides the machine's own, by ID or name, comma-separated",
    )
    user_data = forms.CharField(
        label="User data",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="cloud-init user data run at first boot",
    )
    labels = forms.CharField(required=False, help_text="extra labels, key=value, comma-separated")

    def _names(self, field: str) -> list[str]:
        return [item.strip() for item in self.cleaned_data[field].split(",") if item.strip()]

    def clean_networks(self) -> list[str]:
        return self._names("networks")

    def clean_firewalls(self) -> list[str]:
        return self._names("firewalls")

    def clean_labels(self) -> dict[str, str]:
        labels = {}
        for item in self._names("labels"):
            key, sep, value = item.partition("=")
            if not sep or not LABEL_KEY_RE.fullmatch(key) or not LABEL_VALUE_RE.fullmatch(value):
                raise forms.ValidationError(
                    f"{item!r} is not a label: key=value, letters, digits, '-', '_' and '.'."
                )
            if key.startswith(OURS):
                raise forms.ValidationError(f"Labels under {OURS} are dockerdash's own.")
            labels[key] = value
        return labels
