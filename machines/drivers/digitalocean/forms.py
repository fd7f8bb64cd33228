"""The digitalocean driver's forms: its `machine create` flags, as docker-machine's."""

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
from machines.drivers.generic.driver import validate_private_key

PUBLIC_API = "https://api.digitalocean.com"
# DigitalOcean's rule for tag names (its API reference, "Tags").
TAG_RE = re.compile(r"\A[a-zA-Z0-9_:\-]{1,255}\Z")
FINGERPRINT_RE = r"\A([0-9a-f]{2}:){15}[0-9a-f]{2}\Z"


class DigitalOceanSettingsForm(forms.Form):
    access_token = token_field(
        "Access token",
        "A personal access token with read and write scope (Applications & API in the "
        "control panel).",
    )
    api_url = api_url_field(PUBLIC_API)
    dashboard_address = dashboard_address_field()


class DigitalOceanOptionsForm(CloudOptionsForm):
    region = forms.CharField(
        required=False, help_text="region slug, e.g. nyc3; empty: the account's first choice"
    )
    size = forms.CharField(
        required=False, help_text="size slug; empty: the smallest that runs Docker (1 GB)"
    )
    image = forms.CharField(required=False, help_text="image slug; empty: debian-12-x64")
    ssh_user = forms.CharField(
        label="SSH user",
        initial="root",
        validators=[RegexValidator(r"\A[a-z_][a-z0-9_.-]*\Z", "Not a valid user name.")],
    )
    ssh_port = forms.IntegerField(label="SSH port", initial=22, min_value=1, max_value=65535)
    ssh_key_fingerprint = forms.CharField(
        label="SSH key fingerprint",
        required=False,
        validators=[RegexValidator(FINGERPRINT_RE, "An MD5 fingerprint, aa:bb:...:ff.")],
        help_text="use this key already registered at DigitalOcean (with the SSH key below) "
        "instead of a fresh key pair",
    )
    ssh_key = forms.CharField(
        label="SSH private key",
        required=False,
        validators=[validate_private_key],
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="the private key of that fingerprint (or of a key to register); empty: a "
        "fresh Ed25519 key pair for this machine",
    )
    ipv6 = forms.BooleanField(label="IPv6", required=False)
    private_networking = forms.BooleanField(label="Private networking", required=False)
    backups = forms.BooleanField(label="Backups", required=False, help_text="billed extra")
    monitoring = forms.BooleanField(label="Monitoring agent", required=False)
    userdata = forms.CharField(
        label="User data",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="cloud-init user data run at first boot",
    )
    tags = forms.CharField(required=False, help_text="extra droplet tags, comma-separated")

    def clean_tags(self) -> list[str]:
        tags = [t.strip() for t in self.cleaned_data["tags"].split(",") if t.strip()]
        for tag in tags:
            if not TAG_RE.fullmatch(tag):
                raise forms.ValidationError(
                    f"{tag!r} is not a tag: letters, digits, ':', '-' and '_' only."
                )
        return tags

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("ssh_key_fingerprint") and not cleaned.get("ssh_key"):
            self.add_error(
                "ssh_key", "Give the private key of that fingerprint (--digitalocean-ssh-key-path)."
            )
        return cleaned
