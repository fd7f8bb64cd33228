"""The kvm driver's forms, which are also its `machine create` flags (--kvm-<field>)."""

from __future__ import annotations

from django import forms
from django.core.validators import RegexValidator

CACHE_MODES = ("default", "none", "writethrough", "writeback", "directsync", "unsafe")
IO_MODES = ("threads", "native", "io_uring")
DEFAULT_USER = "dockerdash"

uri_validator = RegexValidator(
    r"\A[a-z][a-z0-9+]*://[^\s]*\Z",
    "Enter a libvirt URI such as qemu:///system or qemu+ssh://user@host/system.",
)
network_validator = RegexValidator(
    r"\A[A-Za-z0-9][A-Za-z0-9_.:-]*\Z", "Enter the name of a libvirt network (virsh net-list)."
)
user_validator = RegexValidator(r"\A[a-z_][a-z0-9_-]{0,31}\Z", "Not a valid user name.")


class KVMSettingsForm(forms.Form):
    connect_uri = forms.CharField(
        label="libvirt URI",
        required=False,
        max_length=500,
        validators=[uri_validator],
        help_text="qemu:///system, or qemu+ssh://user@host/system for a KVM server (libvirt's "
        "own SSH transport, with the keys of the account running dockerdash). Empty: "
        "LIBVIRT_DEFAULT_URI, else qemu:///system.",
    )


class KVMOptionsForm(forms.Form):
    cpu_count = forms.IntegerField(
        label="CPUs", initial=1, min_value=1, max_value=64, help_text="virtual CPUs"
    )
    memory = forms.IntegerField(
        label="Memory (MiB)", initial=1024, min_value=512, max_value=1 << 20, help_text="MiB"
    )
    disk_size = forms.IntegerField(
        label="Disk size (MiB)",
        initial=20000,
        min_value=4096,
        max_value=1 << 24,
        help_text="MiB; a copy-on-write disk, only what is written takes space",
    )
    network = forms.CharField(
        label="libvirt network",
        required=False,
        max_length=100,
        validators=[network_validator],
        help_text="a network of the hypervisor (virsh net-list). Empty: default "
        "(or DOCKERDASH_KVM_NETWORK)",
    )
    cache_mode = forms.ChoiceField(
        label="Disk cache mode",
        choices=[(m, m) for m in CACHE_MODES],
        initial="default",
        help_text=", ".join(CACHE_MODES),
    )
    io_mode = forms.ChoiceField(
        label="Disk I/O mode",
        choices=[(m, m) for m in IO_MODES],
        initial="threads",
        help_text=", ".join(IO_MODES),
    )
    image = forms.CharField(
        label="Image",
        required=False,
        max_length=2000,
        help_text="a qcow2 cloud image of Debian or Ubuntu: a path on the dashboard's host or "
        "an http(s) URL. Empty: dockerdash's Debian 12 with Docker (built once).",
    )
    ssh_user = forms.CharField(
        label="SSH user",
        initial=DEFAULT_USER,
        max_length=32,
        validators=[user_validator],
        help_text="made by cloud-init with the machine's key and passwordless sudo",
    )

    def clean_ssh_user(self) -> str:
        user = self.cleaned_data["ssh_user"]
        if user == "root":
            raise forms.ValidationError(
                "Root logins stay disabled on VMs: pick another user (it gets passwordless sudo)."
            )
        return user

    def clean_image(self) -> str:
        image = self.cleaned_data["image"].strip()
        if image.startswith("-") or any(c.isspace() for c in image):
            raise forms.ValidationError("Enter a file path or an http(s) URL.")
        if "://" in image and not image.startswith(("http://", "https://")):
            raise forms.ValidationError("Only http(s) URLs can be downloaded.")
        return image

    def clean(self) -> dict:
        data = super().clean()
        # QEMU opens the disk with O_DIRECT for native AIO: the host's page cache must be off.
        if data.get("io_mode") == "native" and data.get("cache_mode") not in ("none", "directsync"):
            self.add_error("io_mode", "native I/O needs the cache mode none or directsync.")
        return data
