"""The dashboard's CA, the engines' server certificates and the dashboard's client certificate.

One CA per dashboard signs a server certificate per machine and one client certificate that the
dashboard and its own CLI (`machine env` on the dashboard's host) present to every engine. That
client key never leaves the dashboard: people get certificates of their own from the users'
client CA (usercerts.py), which engines trust next to this one. Keys are ECDSA P-256: fast
to make, and accepted by Go (dockerd, the docker CLI) and by Python's ssl.

Python 3.13 verifies chains strictly (VERIFY_X509_STRICT): a CA needs a critical basicConstraints
CA=true, keyUsage keyCertSign/cRLSign and key identifiers, and leaf certificates need an authority
key identifier. docker-machine's CA had none of these.

Rotating the CA (`regenerate-certs --client-certs`) keeps the previous one as a retired row: the
machines whose server certificates it signed stay reachable with its client certificate until they
get new certificates themselves; a retired CA is deleted once no machine uses it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from machines.models import CertificateAuthority
from machines.pki import tlsfiles

if TYPE_CHECKING:
    from machines.models import Machine

CURRENT = "default"
CA_DAYS = 10 * 365
CERT_DAYS = 3 * 365
# A server certificate closer than this to its end is re-issued by the next provisioning.
RENEW_BEFORE = dt.timedelta(days=30)
# Clocks of hosts drift; a certificate valid from "now" would be refused for a while by a host
# whose clock is a little behind.
BACKDATE = dt.timedelta(hours=1)
ORGANIZATION = "dockerdash"


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
        ]
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    # ECDSA keys sign (TLS handshakes, or certificates for a CA); they never encipher.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_usage(server: bool) -> list[tuple[x509.ExtensionType, bool]]:
    return [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(ca=False), True),
        (
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            False,
        ),
    ]


def _sign(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer_cert: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    days: int,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    now = timezone.now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def new_ca_cert(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA certificate (and its key) that may sign leaf certificates only."""
    key = _new_key()
    cert = _sign(
        _name(f"{common_name} {timezone.now():%Y-%m-%d %H:%M:%S}"),
        key.public_key(),
        None,
        key,
        CA_DAYS,
        [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (_key_usage(ca=True), True),
        ],
    )
    return cert, key


def sign_client_cert(
    common_name: str, issuer_cert: x509.Certificate, issuer_key, days: int
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A client certificate (and its new key) for TLS client authentication only."""
    key = _new_key()
    cert = _sign(
        _name(common_name), key.public_key(), issuer_cert, issuer_key, days, _leaf_usage(False)
    )
    return cert, key


def _make_ca(name: str) -> CertificateAuthority:
    cert, key = new_ca_cert("dockerdash CA")
    client, client_key = sign_client_cert("dockerdash client", cert, key, CERT_DAYS)
    return CertificateAuthority(
        name=name,
        cert=_cert_pem(cert),
        key=_key_pem(key),
        client_cert=_cert_pem(client),
        client_key=_key_pem(client_key),
        expires_at=cert.not_valid_after_utc,
        client_expires_at=client.not_valid_after_utc,
    )


def get_or_create_ca() -> CertificateAuthority:
    """The current CA, made on first use (safely when several processes race to make it)."""
    ca = CertificateAuthority.objects.filter(name=CURRENT).first()
    if ca is not None:
        return ca
    ca = _make_ca(CURRENT)
    try:
        with transaction.atomic():
            ca.save()
    except IntegrityError:
        return CertificateAuthority.objects.get(name=CURRENT)
    return ca


def rotate_ca() -> CertificateAuthority:
    """A new current CA and client certificate; the previous CA is kept, retired."""
    with transaction.atomic():
        old = CertificateAuthority.objects.select_for_update().filter(name=CURRENT).first()
        if old is not None:
            old.name = f"retired-{timezone.now():%Y%m%d%H%M%S%f}"
            old.save(update_fields=["name"])
        ca = _make_ca(CURRENT)
        ca.save()
    prune_tls_cache()
    return ca


def issuer_of(server_cert_pem: str) -> CertificateAuthority | None:
    """The CA (current, retired or imported) that signed a server certificate, if stored.

    Decided by the signature, not by key identifiers: certificates made by older tools
    (docker-machine's among them) carry none.
    """
    if not server_cert_pem:
        return None
    cert = load(server_cert_pem)
    for ca in CertificateAuthority.objects.order_by("-created_at"):
        try:
            cert.verify_directly_issued_by(load(ca.cert))
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    return None


def ca_for_machine(machine: Machine) -> CertificateAuthority:
    """The CA to trust for this machine's engine: the one an attached engine came with, or
    the one that signed its server certificate, or the dashboard's."""
    if name := machine.driver_options.get("tls_ca"):
        attached = CertificateAuthority.objects.filter(name=name).first()
        if attached is not None:
            return attached
    return issuer_of(machine.tls_server_cert) or get_or_create_ca()


def prune_retired_cas() -> int:
    """Delete retired CAs that no machine's server certificate depends on any more."""
    from machines.models import Machine

    in_use = {
        ca.pk
        for cert in Machine.objects.exclude(tls_server_cert="").values_list(
            "tls_server_cert", flat=True
        )
        if (ca := issuer_of(cert)) is not None
    }
    # Only CAs this module retired: imported and attached ones belong to their engines.
    retired = CertificateAuthority.objects.filter(name__startswith="retired-").exclude(
        pk__in=in_use
    )
    deleted = retired.delete()[0]
    if deleted:
        prune_tls_cache()
    return deleted


def is_dashboards(ca: CertificateAuthority) -> bool:
    """Whether dockerdash made this CA (current or retired), rather than an imported store or
    an attached engine: only engines under such a CA have dockerdash's trusted bundle."""
    return ca.name == CURRENT or ca.name.startswith("retired-")


def prune_tls_cache() -> int:
    """Delete the cached key files of credentials no CA row holds any more (rotated CAs'),
    and make what stays private again. Returns how many entries went."""
    live = [(ca.cert, ca.client_cert, ca.client_key) for ca in CertificateAuthority.objects.all()]
    return tlsfiles.prune(live)


def _san(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)


def server_names(machine: Machine) -> list[str]:
    """What the engine's certificate must name: its IP (or DNS name), host name, localhost."""
    names = [machine.ip, machine.name, "localhost", "127.0.0.1", *machine.tls_san]
    seen: list[str] = []
    for name in names:
        name = (name or "").strip()
        if name and name not in seen:
            seen.append(name)
    return seen


def issue_server_cert(machine: Machine, ca: CertificateAuthority) -> None:
    """A new server certificate (and key) for the machine's engine, stored on the machine."""
    ca_key = serialization.load_pem_private_key(ca.key.encode(), password=None)
    key = _new_key()
    names = server_names(machine)
    cert = _sign(
        _name(machine.name),
        key.public_key(),
        load(ca.cert),
        ca_key,
        CERT_DAYS,
        [
            *_leaf_usage(server=True),
            (x509.SubjectAlternativeName([_san(n) for n in names]), False),
        ],
    )
    machine.tls_server_cert = _cert_pem(cert)
    machine.tls_server_key = _key_pem(key)
    machine.tls_server_expires_at = cert.not_valid_after_utc
    machine.tls_server_serial = format(cert.serial_number, "x")


def names_in(cert_pem: str) -> list[str]:
    """The subject alternative names of a certificate, as text."""
    try:
        san = load(cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in san.value.get_values_for_type(x509.IPAddress)] + list(
        san.value.get_values_for_type(x509.DNSName)
    )


def covers(cert_pem: str, name: str) -> bool:
    if not cert_pem or not name:
        return False
    try:
        name = str(ipaddress.ip_address(name))
    except ValueError:
        name = name.lower()
    return name in [n.lower() for n in names_in(cert_pem)]


def server_cert_problem(machine: Machine, ca: CertificateAuthority) -> str | None:
    """Why the machine's server certificate must be re-issued, or None if it is still good."""
    if not machine.tls_server_cert or not machine.tls_server_key:
        return "no server certificate yet"
    issuer = issuer_of(machine.tls_server_cert)
    if issuer is None or issuer.pk != ca.pk:
        return "it was signed by another CA"
    cert = load(machine.tls_server_cert)
    if cert.not_valid_after_utc - timezone.now() < RENEW_BEFORE:
        return f"it expires on {cert.not_valid_after_utc:%Y-%m-%d}"
    missing = [n for n in server_names(machine) if not covers(machine.tls_server_cert, n)]
    if missing:
        return f"it does not name {', '.join(missing)}"
    return None


def bundle_dir(machine_name: str) -> Path:
    return Path(settings.CERTS_DIR) / machine_name


def write_client_bundle(machine: Machine, folder: Path | None = None) -> Path:
    """ca.pem, cert.pem and key.pem for the docker CLI (DOCKER_CERT_PATH), private to the
    user: in the data folder, or in `folder` (docker-machine's store layout, for its users'
    scripts)."""
    ca = ca_for_machine(machine)
    folder = folder or bundle_dir(machine.name)
    folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)
    files = (("ca.pem", ca.cert), ("cert.pem", ca.client_cert), ("key.pem", ca.client_key))
    for name, pem in files:
        path = folder / name
        partial = folder / f".{name}.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(pem)
        partial.replace(path)
    return folder
