"""The amazonec2 driver's forms: its `machine create` flags, as docker-machine's amazonec2
driver had them (and its AWS_* environment variables)."""

from __future__ import annotations

import re

from django import forms
from django.core.validators import RegexValidator

from machines.drivers.cloud import CloudOptionsForm, api_url_field, dashboard_address_field
from machines.drivers.cloud.forms import parse_ports, refuse_reserved, validate_token
from machines.drivers.generic.driver import validate_private_key

PUBLIC_API = "https://ec2.REGION.amazonaws.com"
DEFAULT_REGION = "us-east-1"
DEFAULT_ROOT_SIZE = 16
VOLUME_TYPES = ["gp3", "gp2", "io1", "io2", "st1", "sc1", "standard"]
# AWS's rules for tag keys and values (EC2 User Guide, "Tag restrictions"); "aws:" is AWS's.
TAG_RE = re.compile(r"\A[\w .:/=+\-@]{1,128}\Z")
TAG_VALUE_RE = re.compile(r"\A[\w .:/=+\-@]{0,256}\Z")
GROUP_RE = re.compile(r"\A[A-Za-z0-9 ._:/()#@\[\]+=&;{}!$*-]{1,255}\Z")
OURS = "dockerdash:"


def _regex(pattern: str, message: str) -> RegexValidator:
    return RegexValidator(pattern, message)


class AmazonEC2SettingsForm(forms.Form):
    access_key = forms.CharField(
        label="Access key ID",
        validators=[_regex(r"\A[A-Z0-9]{16,128}\Z", "An access key ID, such as AKIA....")],
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="of an IAM user (or role session) allowed the EC2 actions the README lists",
    )
    secret_key = forms.CharField(
        label="Secret access key",
        validators=[validate_token],
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
    session_token = forms.CharField(
        label="Session token",
        required=False,
        validators=[validate_token],
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="only for temporary credentials (they expire: the account then needs new ones)",
    )
    endpoint = api_url_field(PUBLIC_API)
    dashboard_address = dashboard_address_field()


class AmazonEC2OptionsForm(CloudOptionsForm):
    size_field = "instance_type"
    image_field = "ami"
    any_image = True

    region = forms.CharField(
        initial=DEFAULT_REGION,
        validators=[_regex(r"\A[a-z]{2}(-[a-z]+)+-\d{1,2}\Z", "A region, such as eu-central-1.")],
        help_text="the AWS region",
    )
    zone = forms.CharField(
        initial="a",
        validators=[_regex(r"\A[a-z]\Z", "The zone's letter, such as a.")],
        help_text="the availability zone's letter",
    )
    instance_type = forms.CharField(
        label="Instance type",
        required=False,
        help_text="e.g. t3.micro; empty: the smallest that runs Docker (1 GB)",
    )
    ami = forms.CharField(
        label="AMI",
        required=False,
        validators=[_regex(r"\Aami-[0-9a-f]{8,17}\Z", "An AMI ID, such as ami-0123456789abcdef0.")],
        help_text="empty: the region's current Debian 12 AMI (Debian's own, looked up by owner)",
    )
    vpc_id = forms.CharField(
        label="VPC",
        required=False,
        validators=[_regex(r"\Avpc-[0-9a-f]{8,17}\Z", "A VPC ID, such as vpc-0123abcd.")],
        help_text="empty: the region's default VPC",
    )
    subnet_id = forms.CharField(
        label="Subnet",
        required=False,
        validators=[_regex(r"\Asubnet-[0-9a-f]{8,17}\Z", "A subnet ID, such as subnet-0123abcd.")],
        help_text="empty: the VPC's default subnet in the zone",
    )
    security_group = forms.CharField(
        label="Security groups",
        required=False,
        help_text="by name, comma-separated; missing ones are created (and deleted on rm); "
        "empty: one of its own opening only SSH and Docker",
    )
    security_group_readonly = forms.BooleanField(
        label="Security groups read-only",
        required=False,
        help_text="use the named groups as they are: add no rule, create none",
    )
    open_port = forms.CharField(
        label="Open ports",
        required=False,
        help_text="more ports its own security group opens, port[/tcp|/udp], comma-separated",
    )
    keypair_name = forms.CharField(
        label="Key pair",
        required=False,
        validators=[_regex(r"\A[\x20-\x7e]{1,255}\Z", "A key pair's name.")],
        help_text="use this key pair already in the region (with its private key below) "
        "instead of a fresh one",
    )
    ssh_key = forms.CharField(
        label="SSH private key",
        required=False,
        validators=[validate_private_key],
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="the private key of that key pair; empty: a fresh Ed25519 key pair",
    )
    ssh_user = forms.CharField(
        label="SSH user",
        initial="admin",
        validators=[_regex(r"\A[a-z_][a-z0-9_.-]*\Z", "Not a valid user name.")],
        help_text="the AMI's login user (Debian's: admin; Ubuntu's: ubuntu)",
    )
    ssh_port = forms.IntegerField(label="SSH port", initial=22, min_value=1, max_value=65535)
    root_size = forms.IntegerField(
        label="Root volume (GB)", initial=DEFAULT_ROOT_SIZE, min_value=8, max_value=16384
    )
    volume_type = forms.ChoiceField(
        label="Volume type", initial="gp3", choices=[(v, v) for v in VOLUME_TYPES]
    )
    device_name = forms.CharField(
        label="Root device",
        required=False,
        validators=[_regex(r"\A/dev/[a-z0-9]{2,12}\Z", "A device name, such as /dev/xvda.")],
        help_text="empty: the AMI's root device",
    )
    private_address_only = forms.BooleanField(
        label="Private address only", required=False, help_text="no public IP at all"
    )
    use_private_address = forms.BooleanField(
        label="Use the private address",
        required=False,
        help_text="reach it on its private IP (the dashboard runs in the VPC)",
    )
    tags = forms.CharField(
        required=False, help_text="more tags, key1,value1,key2,value2 (as docker-machine)"
    )
    request_spot_instance = forms.BooleanField(label="Spot instance", required=False)
    spot_price = forms.DecimalField(
        label="Spot price",
        required=False,
        min_value=0,
        max_digits=10,
        decimal_places=6,
        help_text="the most it pays per hour, in USD; empty: the on-demand price",
    )
    block_duration_minutes = forms.IntegerField(
        label="Spot block (minutes)", required=False, min_value=0
    )
    iam_instance_profile = forms.CharField(
        label="IAM instance profile",
        required=False,
        validators=[_regex(r"\A[\w+=,.@:/-]{1,2048}\Z", "A profile's name or ARN.")],
    )
    monitoring = forms.BooleanField(label="Detailed monitoring", required=False)
    use_ebs_optimized_instance = forms.BooleanField(label="EBS-optimized", required=False)
    userdata = forms.CharField(
        label="User data",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="cloud-init user data run at first boot",
    )
    retries = forms.IntegerField(
        initial=5,
        min_value=-1,
        max_value=20,
        help_text="how often a refused or failed API call is tried again (-1: never)",
    )

    def clean_security_group(self) -> list[str]:
        groups = split_commas(self.cleaned_data["security_group"])
        for group in groups:
            if not GROUP_RE.fullmatch(group):
                raise forms.ValidationError(f"{group!r} is not a security group's name.")
        return groups

    def clean_open_port(self) -> list[str]:
        return parse_ports(self.cleaned_data["open_port"])

    def clean_tags(self) -> dict[str, str]:
        items = split_commas(self.cleaned_data["tags"])
        if len(items) % 2:
            raise forms.ValidationError("Tags come in pairs: key1,value1,key2,value2.")
        tags = dict(zip(items[::2], items[1::2], strict=True))
        for key, value in tags.items():
            if not TAG_RE.fullmatch(key) or not TAG_VALUE_RE.fullmatch(value):
                raise forms.ValidationError(f"{key}={value} is not a tag EC2 accepts.")
            refuse_reserved(key, "aws:", OURS)
        return tags

    def clean_spot_price(self) -> str:
        price = self.cleaned_data["spot_price"]
        return "" if price is None else format(price.normalize(), "f")

    def clean_block_duration_minutes(self):
        if self.cleaned_data["block_duration_minutes"]:
            raise forms.ValidationError(
                "AWS no longer offers Spot blocks (Spot Instances with a defined duration): "
                "leave out --amazonec2-block-duration-minutes."
            )
        return None

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("keypair_name") and not cleaned.get("ssh_key"):
            self.add_error("ssh_key", "Give that key pair's private key (--amazonec2-ssh-keypath).")
        if cleaned.get("spot_price") and not cleaned.get("request_spot_instance"):
            self.add_error("spot_price", "A spot price needs --amazonec2-request-spot-instance.")
        if cleaned.get("security_group_readonly") and not cleaned.get("security_group"):
            self.add_error(
                "security_group_readonly", "Name the groups to use (--amazonec2-security-group)."
            )
        return cleaned


def split_commas(text: str) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]
