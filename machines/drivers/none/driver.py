"""none: attach an engine made elsewhere, by URL (docker-machine's `-d none`)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from cryptography import x509
from django import forms

from machines.drivers.base import BaseDriver
from machines.lib.ssh import public_key_of
from machines.validation import validate_engine_url

if TYPE_CHECKING:
    from machines.models import Machine

PEM_HELP = "PEM text; for a tcp:// engine, with the two below"


def _certificate(text: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(text.strip().encode())
    except ValueError:
        raise forms.ValidationError("This is not a PEM certificate.") from None


class NoneOptionsForm(forms.Form):
    url = forms.CharField(
        label="Engine URL",
        max_length=255,
        help_text="tcp://HOST:2376 (with TLS), ssh://user@host or unix:///var/run/docker.sock. "
        "ssh:// uses this server's ~/.ssh (config, keys, known_hosts: unknown hosts are "
        "refused).",
        widget=forms.TextInput(attrs={"placeholder": "tcp://203.0.113.10:2376"}),
    )
    tls_ca_cert = forms.CharField(
        label="CA certificate",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=PEM_HELP,
    )
    tls_client_cert = forms.CharField(
        label="Client certificate", required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    tls_client_key = forms.CharField(
        label="Client key",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Stored encrypted, never shown again.",
    )

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        validate_engine_url(url)  # the model's own parser: what it accepts, env can print
        return url

    def clean_tls_ca_cert(self) -> str:
        text = self.cleaned_data["tls_ca_cert"].strip()
        if text:
            _certificate(text)
        return text

    def clean_tls_client_cert(self) -> str:
        text = self.cleaned_data["tls_client_cert"].strip()
        if text:
            _certificate(text)
        return text

    def clean_tls_client_key(self) -> str:
        text = self.cleaned_data["tls_client_key"].strip()
        if text:
            try:
                public_key_of(text)
            except ValueError as e:
                raise forms.ValidationError(str(e)) from None
        return text

    def clean(self):
        data = super().clean()
        tls = [data.get(k) for k in ("tls_ca_cert", "tls_client_cert", "tls_client_key")]
        if data.get("url", "").startswith("tcp://") and not all(tls):
            raise forms.ValidationError(
                "A tcp:// engine is reached only with TLS: give its CA certificate, a client "
                "certificate and the client key."
            )
        return data


class NoneDriver(BaseDriver):
    kind = "none"
    label = "None"
    description = "attach an existing engine by URL"
    options_form = NoneOptionsForm
    default_settings = {}
    provisioned = False
    cli_default = True
    attaches_engines = True
    docker_machine_name = "none"
    removes_host = False
    issues_certificates = False
    # docker-machine's none driver took `--url`; the TLS files are paths on the command line.
    cli_flag_names = {
        "url": "--url",
        "tls_ca_cert": "--tls-ca-cert",
        "tls_client_cert": "--tls-client-cert",
        "tls_client_key": "--tls-client-key",
    }
    cli_file_fields = frozenset({"tls_ca_cert", "tls_client_cert", "tls_client_key"})

    def apply_options(self, machine: Machine, options: dict) -> None:
        machine.engine_url = options["url"]
        machine.driver_options = {"url": options["url"]}
        if options.get("tls_ca_cert"):
            machine.driver_options["tls_ca"] = _attach_ca(
                options["tls_ca_cert"], options["tls_client_cert"], options["tls_client_key"]
            )

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


def _attach_ca(ca_pem: str, cert_pem: str, key_pem: str) -> str:
    """Keep the engine's CA and our client certificate as a CA of their own (without the
    CA's key: dockerdash never issues with it). Returns its name."""
    from machines.models import CertificateAuthority

    digest = hashlib.sha256((ca_pem + cert_pem).encode()).hexdigest()[:12]
    name = f"attached-{digest}"
    CertificateAuthority.objects.update_or_create(
        name=name,
        defaults={
            "cert": ca_pem + "\n",
            "key": "",
            "client_cert": cert_pem + "\n",
            "client_key": key_pem + "\n",
            "expires_at": _certificate(ca_pem).not_valid_after_utc,
            "client_expires_at": _certificate(cert_pem).not_valid_after_utc,
        },
    )
    return name
