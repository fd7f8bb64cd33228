"""The parts of a cloud driver's forms (and so of its CLI flags) that every provider shares:
the account's token, API URL and dashboard address; the region, size and image choices
filled from the account's catalog."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from django import forms
from django.core.exceptions import ValidationError

from machines.drivers.cloud.catalog import Catalog

TOKEN_RE = re.compile(r"\A[\x21-\x7e]{1,500}\Z")
# How many known values an error message lists before "...".
LISTED = 12


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_api_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("Enter the API's base URL, such as https://api.example.com.")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValidationError(
            "Use https: over plain http the token would cross the network readable "
            "(http is accepted for 127.0.0.1 and localhost only)."
        )


def validate_token(value: str) -> None:
    if not TOKEN_RE.fullmatch(value):
        raise ValidationError("A token is one word of printable characters, without spaces.")


def split_list(text: str) -> list[str]:
    return [item.strip() for item in re.split(r"[,\s]+", text or "") if item.strip()]


PORT_RE = re.compile(r"\A(\d{1,5})(?:/(tcp|udp))?\Z")


def parse_ports(text: str) -> list[str]:
    """Ports to open, comma-separated, as `port/protocol` ("8080" is "8080/tcp")."""
    ports = split_list(text)
    for port in ports:
        match = PORT_RE.fullmatch(port)
        if not match or not 1 <= int(match[1]) <= 65535:
            raise ValidationError(f"{port!r} is not a port, such as 8080 or 53/udp.")
    return [p if "/" in p else f"{p}/tcp" for p in ports]


def refuse_reserved(key: str, *prefixes: str) -> None:
    """A user's tag (or label) may not claim a prefix the provider or dockerdash keeps."""
    if key.lower().startswith(prefixes):
        raise ValidationError(f"Tags under {' and '.join(prefixes)} are not yours to set.")


def parse_sources(text: str) -> list[str]:
    """Addresses and CIDR ranges, comma-separated, as networks ("203.0.113.7/32")."""
    sources = []
    for item in split_list(text):
        try:
            sources.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValidationError(f"{item!r} is not an IP address or a CIDR range.") from None
    return sources


def token_field(label: str, help_text: str) -> forms.CharField:
    # Never rendered back: a token typed once is not shown again, not even to its admin.
    return forms.CharField(
        label=label,
        help_text=help_text,
        validators=[validate_token],
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )


def api_url_field(public_url: str) -> forms.CharField:
    return forms.CharField(
        label="API URL",
        required=False,
        validators=[validate_api_url],
        help_text=f"Empty: {public_url}. Another base URL for a private endpoint or a proxy.",
    )


def dashboard_address_field() -> forms.CharField:
    return forms.CharField(
        label="Dashboard's address",
        required=False,
        validators=[parse_sources],
        help_text="IP or CIDR (several: comma-separated) from which the dashboard, and you, "
        "reach the machines: their firewall opens SSH and Docker to these only. Empty: to "
        "anyone (Docker still requires the dashboard's TLS client certificates).",
    )


class CloudOptionsForm(forms.Form):
    """A cloud driver's options; its region, size and image come from the account's catalog
    (choices and defaults in the web form, defaults and checks for the CLI)."""

    region_field = "region"
    size_field = "size"
    image_field = "image"
    #: An image the catalog does not list may be given all the same (a private AMI, any
    #: Azure URN): the provider says at create whether it exists.
    any_image = False

    def __init__(self, *args, catalog: Catalog | None = None, catalog_error: str = "", **kw):
        super().__init__(*args, **kw)
        self.catalog, self.catalog_error = catalog, catalog_error
        if catalog is not None:
            self._offer(catalog)

    def _given(self, name: str) -> str:
        if self.is_bound:
            return str(self.data.get(self.add_prefix(name)) or "").strip()
        return str(self.initial.get(name) or "").strip()

    def _choose(self, catalog: Catalog) -> tuple[str, str, str]:
        """The region, size and image shown: what was given if the catalog has it there,
        else the defaults (the size that fits the region, the image that fits the size)."""
        region = self._given(self.region_field)
        if catalog.region(region) is None:
            region = catalog.default_region()
        size = self._given(self.size_field)
        if size not in {s.slug for s in catalog.sizes_in(region)}:
            size = catalog.default_size(region)
        image = self._given(self.image_field)
        if image not in {i.slug for i in catalog.images_for(catalog.size(size))}:
            image = catalog.default_image(size)
        return region, size, image

    def _offer(self, catalog: Catalog) -> None:
        region, size, image = self._choose(catalog)
        choices = {
            self.region_field: [(r.slug, r.label) for r in catalog.regions if r.available],
            self.size_field: [(s.slug, s.label(region)) for s in catalog.sizes_in(region)],
            self.image_field: [(i.slug, i.label) for i in catalog.images_for(catalog.size(size))],
        }
        chosen = {self.region_field: region, self.size_field: size, self.image_field: image}
        for name, options in choices.items():
            field = self.fields[name]
            # A change of region or size asks the page for the fitting sizes and images.
            attrs = {"data-refresh": ""} if name != self.image_field else {}
            field.widget = forms.Select(choices=options, attrs=attrs)
            field.initial = chosen[name]
            if not self.is_bound:
                self.initial[name] = chosen[name]

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.catalog_error:
            raise ValidationError(self.catalog_error)
        if self.catalog is not None:
            self._check_choices(self.catalog, cleaned)
        return cleaned

    def _check_choices(self, catalog: Catalog, cleaned: dict) -> None:
        names = (self.region_field, self.size_field, self.image_field)
        if any(name in self.errors for name in names):
            return
        region = cleaned.get(self.region_field) or catalog.default_region()
        if catalog.region(region) is None:
            known = [r.slug for r in catalog.regions if r.available]
            self.add_error(self.region_field, _unknown(region, "region", known))
            return
        size = cleaned.get(self.size_field) or catalog.default_size(region)
        offered = [s.slug for s in catalog.sizes_in(region)]
        if size not in offered:
            self.add_error(self.size_field, _unknown(size, f"size offered in {region}", offered))
            return
        given = cleaned.get(self.image_field)
        unlisted = bool(self.any_image and given and catalog.image(given) is None)
        image = (None if unlisted else given) or catalog.default_image(size)
        usable = [i.slug for i in catalog.images_for(catalog.size(size))]
        if image not in usable:
            self.add_error(self.image_field, _unknown(image, f"image for {size}", usable))
            return
        cleaned.update({names[0]: region, names[1]: size, names[2]: given if unlisted else image})


def _unknown(value: str, what: str, known: list[str]) -> str:
    listed = ", ".join(known[:LISTED]) + (", ..." if len(known) > LISTED else "")
    return f"{value!r} is not a {what} of this account (known: {listed or 'none'})."
