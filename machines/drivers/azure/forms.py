"""The azure driver's forms: its `machine create` flags, as docker-machine's azure driver had
them (and its AZURE_* environment variables), plus the tenant a service principal needs
today, tags and the Resource Manager's URL."""

from __future__ import annotations

import ipaddress
import re

from django import forms
from django.core.validators import RegexValidator

from machines.drivers.cloud import CloudOptionsForm, api_url_field, dashboard_address_field
from machines.drivers.cloud.forms import parse_ports, refuse_reserved, validate_token

# Resource Manager and Entra ID (login) endpoints of each national cloud, by the names
# docker-machine's --azure-environment took.
ENVIRONMENTS = {
    "AzurePublicCloud": ("https://management.azure.com", "https://login.microsoftonline.com"),
    "AzureChinaCloud": ("https://management.chinacloudapi.cn", "https://login.chinacloudapi.cn"),
    "AzureUSGovernmentCloud": (
        "https://management.usgovcloudapi.net",
        "https://login.microsoftonline.us",
    ),
}
DEFAULT_LOCATION = "westus"  # docker-machine's
DEFAULT_IMAGE = "Debian:debian-12:12-gen2:latest"
STORAGE_TYPES = ["Standard_LRS", "StandardSSD_LRS", "Premium_LRS", "StandardSSD_ZRS"]
GUID = r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
NAME_RE = r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,78}[A-Za-z0-9_]\Z|\A[A-Za-z0-9]\Z"
URN_RE = re.compile(r"\A[^:\s]+:[^:\s]+:[^:\s]+:[^:\s]+\Z")
TAG_KEY_RE = re.compile(r"\A[^<>%&\\?/,=]{1,512}\Z")
OURS = "dockerdash-"


def _regex(pattern: str, message: str) -> RegexValidator:
    return RegexValidator(pattern, message)


def _secret(label: str, help_text: str = "") -> forms.CharField:
    return forms.CharField(
        label=label,
        help_text=help_text,
        validators=[validate_token],
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )


class AzureSettingsForm(forms.Form):
    subscription_id = forms.CharField(
        label="Subscription ID", validators=[_regex(rf"\A{GUID}\Z", "A subscription's GUID.")]
    )
    tenant_id = forms.CharField(
        label="Tenant ID",
        validators=[_regex(rf"\A({GUID}|[A-Za-z0-9.-]{{3,253}})\Z", "A tenant's GUID or domain.")],
        help_text="the Entra ID (Azure AD) tenant of the service principal",
    )
    client_id = forms.CharField(
        label="Client ID",
        validators=[_regex(rf"\A{GUID}\Z", "An application (client) ID.")],
        help_text="of a service principal with the role the README names on the subscription",
    )
    client_secret = _secret("Client secret")
    environment = forms.ChoiceField(
        required=False,
        initial="AzurePublicCloud",
        choices=[(e, e) for e in ENVIRONMENTS],
        help_text="the Azure cloud: its Resource Manager and sign-in endpoints",
    )
    resource_manager_url = api_url_field("the environment's Resource Manager")
    dashboard_address = dashboard_address_field()


class AzureOptionsForm(CloudOptionsForm):
    region_field = "location"
    any_image = True

    resource_group = forms.CharField(
        label="Resource group",
        initial="docker-machine",
        validators=[_regex(r"\A[\w().-]{1,89}[\w()-]\Z", "A resource group's name.")],
        help_text="made if missing (and then deleted with its last machine)",
    )
    location = forms.CharField(initial=DEFAULT_LOCATION, help_text="e.g. westeurope")
    size = forms.CharField(
        required=False, help_text="e.g. Standard_B1s; empty: the smallest that runs Docker (1 GB)"
    )
    image = forms.CharField(
        required=False,
        help_text=f"publisher:offer:sku:version; empty: {DEFAULT_IMAGE} (arm64 for Arm sizes)",
    )
    ssh_user = forms.CharField(
        label="SSH user",
        initial="docker-user",
        validators=[_regex(r"\A[a-z_][a-z0-9_.-]{0,63}\Z", "Not a valid user name.")],
    )
    docker_port = forms.IntegerField(
        label="Docker port", initial=2376, min_value=1, max_value=65535
    )
    vnet = forms.CharField(
        label="Virtual network",
        initial="docker-machine-vnet",
        validators=[_regex(r"\A([\w().-]+:)?[\w.-]{2,64}\Z", "[resource-group:]name.")],
        help_text="[resource group:]name, made if missing",
    )
    subnet = forms.CharField(
        initial="docker-machine",
        validators=[_regex(r"\A[\w.-]{1,80}\Z", "A subnet's name.")],
    )
    subnet_prefix = forms.CharField(
        label="Subnet prefix", initial="192.168.0.0/16", help_text="of a subnet it makes"
    )
    availability_set = forms.CharField(
        label="Availability set",
        required=False,
        validators=[_regex(NAME_RE, "An availability set's name.")],
        help_text="made if missing; empty: none (docker-machine put every VM in one)",
    )
    open_port = forms.CharField(
        label="Open ports",
        required=False,
        help_text="more ports its security group opens, port[/tcp|/udp], comma-separated",
    )
    private_ip_address = forms.GenericIPAddressField(
        label="Private IP", required=False, protocol="IPv4", help_text="a static private IP"
    )
    use_private_ip = forms.BooleanField(
        label="Use the private IP", required=False, help_text="reach it on its private IP"
    )
    static_public_ip = forms.BooleanField(
        label="Static public IP",
        required=False,
        help_text="always so: Azure's Standard public IPs are static",
    )
    no_public_ip = forms.BooleanField(label="No public IP", required=False)
    dns = forms.CharField(
        label="DNS label",
        required=False,
        validators=[_regex(r"\A[a-z][a-z0-9-]{1,61}[a-z0-9]\Z", "A DNS label, such as web-1.")],
        help_text="LABEL.LOCATION.cloudapp.azure.com for its public IP",
    )
    storage_type = forms.ChoiceField(
        label="Disk type", initial="Standard_LRS", choices=[(s, s) for s in STORAGE_TYPES]
    )
    custom_data = forms.CharField(
        label="Custom data",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="cloud-init user data run at first boot",
    )
    tags = forms.CharField(required=False, help_text="more tags, key=value, comma-separated")

    def clean_location(self) -> str:
        value = self.cleaned_data["location"].strip().lower().replace(" ", "")
        if not re.fullmatch(r"[a-z0-9]{2,40}", value):
            raise forms.ValidationError("A location, such as westeurope.")
        return value

    def clean_image(self) -> str:
        image = self.cleaned_data["image"].strip()
        if image and not URN_RE.fullmatch(image):
            raise forms.ValidationError("An image URN: publisher:offer:sku:version.")
        return image

    def clean_subnet_prefix(self) -> str:
        try:
            return str(ipaddress.IPv4Network(self.cleaned_data["subnet_prefix"], strict=True))
        except ValueError:
            raise forms.ValidationError("A CIDR range, such as 192.168.0.0/16.") from None

    def clean_open_port(self) -> list[str]:
        return parse_ports(self.cleaned_data["open_port"])

    def clean_tags(self) -> dict[str, str]:
        tags = {}
        for item in [t.strip() for t in self.cleaned_data["tags"].split(",") if t.strip()]:
            key, sep, value = item.partition("=")
            if not sep or not TAG_KEY_RE.fullmatch(key) or len(value) > 256:
                raise forms.ValidationError(f"{item!r} is not a tag: key=value.")
            refuse_reserved(key, OURS)
            tags[key] = value
        return tags

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("no_public_ip") and not cleaned.get("use_private_ip"):
            self.add_error(
                "no_public_ip", "Without a public IP, reach it on its private one: add "
                "--azure-use-private-ip."
            )  # fmt: skip
        if cleaned.get("no_public_ip") and cleaned.get("dns"):
            self.add_error("dns", "A DNS label needs a public IP.")
        return cleaned
