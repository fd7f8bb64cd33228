"""The kvm driver's forms, which are also its `machine create` flags (--kvm-<field>)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from machines.validation import CONTROL_RE, SSH_USER_RE, is_host

CACHE_MODES = ("default", "none", "writethrough", "writeback", "directsync", "unsafe")
IO_MODES = ("threads", "native", "io_uring")
DEFAULT_USER = "dockerdash"

# libvirt's transports that reach a hypervisor and nothing else: ext runs a command, unix
# takes any socket path, tcp is unauthenticated; their parameters (command, keyfile,
# socket, no_verify, ...) name programs and files on the dashboard's host. Only no_tty stays.
URI_SCHEMES = ("qemu", "qemu+ssh", "qemu+libssh", "qemu+libssh2", "qemu+tls")
URI_PATHS = ("/system", "/session")
URI_HELP = (
    "Enter a libvirt URI: qemu:///system, or qemu+ssh://[user@]host[:port]/system "
    "(also qemu+libssh, qemu+libssh2, qemu+tls), with no parameter but no_tty=1"
)


def uri_problem(uri: str) -> str | None:
    """What is wrong with a libvirt URI for dockerdash, or None."""
    if CONTROL_RE.search(uri) or " " in uri:
        return "it holds spaces or control characters"
    parts = urlsplit(uri)
    if parts.scheme not in URI_SCHEMES or not uri.startswith(f"{parts.scheme}://"):
        return f"its transport is not one of {', '.join(URI_SCHEMES)}"
    if parts.path not in URI_PATHS or parts.fragment or parts.password is not None:
        return "its path is not /system or /session (or it holds a password or a #)"
    if parts.scheme == "qemu" and parts.netloc:
        return "qemu:/// is this host's hypervisor: a remote one takes qemu+ssh:// or qemu+tls://"
    if parts.scheme != "qemu":
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if not (parts.hostname and is_host(parts.hostname)) or not port_ok:
            return "its host or port is not an address, a host name or a port"
        if parts.username is not None and not SSH_USER_RE.fullmatch(parts.username):
            return "its user is not a user name"
    params = parse_qsl(parts.query, keep_blank_values=True)
    if any(key != "no_tty" or value not in ("0", "1") for key, value in params):
        return "its only parameter may be no_tty=1 (others run commands or open files here)"
    return None


def validate_connect_uri(value: str) -> None:
    if value and (problem := uri_problem(value)):
        raise ValidationError(
            "%(help)s: %(problem)s.",
            code="invalid_uri",
            params={"help": URI_HELP, "problem": problem},
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
        validators=[validate_connect_uri],
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
        help_text="a qcow2 cloud image of Debian or Ubuntu: a file in the image folder "
        "(DOCKERDASH_KVM_IMAGE_DIR) or an http(s) URL on a public address. Empty: dockerdash's "
        "Debian 12 with Docker (built once).",
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
