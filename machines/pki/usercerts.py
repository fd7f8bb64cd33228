"""People's own client certificates for the docker CLI, and revoking them all.

The dashboard's client key (certs.py) never leaves the dashboard. An operator who downloads a
machine's certificates gets a new key and a certificate of their own, signed by the users'
client CA and valid for settings.CLIENT_CERT_DAYS; each one is recorded (who, when, serial,
expiry, for which machine). Engines provisioned by dockerdash trust a bundle of two CAs: the
dashboard's (for its own client certificate) and the users' client CA.

Docker's daemon cannot check revocation lists, so "revoke all" replaces the users' client CA:
each engine then gets a bundle without the old one (the rotate-client-ca operation), after
which no certificate it signed is accepted there.

Engines that dockerdash did not provision (imported from docker-machine and not provisioned
since, or attached by URL with certificates of their own) trust only their own CA: no
certificate is issued for them (`download_problem` says why and what to do).
"""

from __future__ import annotations

import hashlib
import logging

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from machines.lib.errors import NotSupported
from machines.models import ClientCA, ClientCertificate, Machine
from machines.pki import certs

log = logging.getLogger(__name__)

CURRENT = "current"


def get_or_create_ca() -> ClientCA:
    """The users' client CA in force, made on first use (safely when processes race)."""
    ca = ClientCA.objects.filter(name=CURRENT).first()
    if ca is not None:
        return ca
    ca = _make_ca()
    try:
        with transaction.atomic():
            ca.save()
    except IntegrityError:
        return ClientCA.objects.get(name=CURRENT)
    return ca


def _make_ca() -> ClientCA:
    cert, key = certs.new_ca_cert("dockerdash users' client CA")
    return ClientCA(
        name=CURRENT,
        cert=certs._cert_pem(cert),
        key=certs._key_pem(key),
        expires_at=cert.not_valid_after_utc,
    )


def fingerprint(pem: str) -> str:
    """A short SHA-256 fingerprint of a certificate, for logs and pages."""
    der = certs.load(pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()[:16]


def trust_bundle(ca_pem: str, users: ClientCA) -> str:
    """What an engine's --tlscacert holds: the dashboard's CA (whose client certificate the
    dashboard presents to it), then the users' client CA."""
    return ca_pem.strip() + "\n" + users.cert.strip() + "\n"


def record_trust(machine: Machine, users: ClientCA) -> None:
    """The engine now runs with a bundle holding `users` (and no other users' CA)."""
    with transaction.atomic():
        for other in ClientCA.objects.filter(trusted_by=machine).exclude(pk=users.pk):
            other.trusted_by.remove(machine)
        users.trusted_by.add(machine)


def download_problem(machine: Machine) -> str | None:
    """Why no client certificate can be issued for this machine's engine, or None."""
    if not machine.tls_server_cert:
        return f"{machine.name} has no TLS certificates yet (it is not provisioned)."
    ca = certs.ca_for_machine(machine)
    imported = ca.name.startswith("docker-machine-") or "imported_from" in machine.driver_options
    if not certs.is_dashboards(ca) and imported and _provisioned_over_ssh(machine):
        return (
            f"{machine.name} was imported from docker-machine and its engine trusts only "
            "docker-machine's CA: provision it once to move it to the dashboard's CA, then "
            "download again."
        )
    if not certs.is_dashboards(ca):
        return (
            f"dockerdash does not manage the TLS of {machine.name}'s engine (it was attached "
            "or imported with certificates of its own): use the certificates it came with."
        )
    users = get_or_create_ca()
    if users.trusted_by.filter(pk=machine.pk).exists():
        return None
    if machine.trusted_client_cas.exists():
        return (
            f"{machine.name}'s engine still trusts the revoked users' CA: its rotate-client-ca "
            "operation has not succeeded yet. Regenerate its certificates (or retry the "
            "rotation) first."
        )
    return (
        f"{machine.name}'s engine does not trust users' certificates yet (it was provisioned "
        "before they existed): regenerate its certificates (or provision it) once first."
    )


def _provisioned_over_ssh(machine: Machine) -> bool:
    try:
        machine.get_driver().ssh_address(machine)
    except NotSupported:
        return False
    return True


def client_cert_days() -> int:
    days = settings.CLIENT_CERT_DAYS
    if days < 1:
        raise ImproperlyConfigured(f"DOCKERDASH_CLIENT_CERT_DAYS must be 1 or more (it is {days}).")
    return days


def issue(user, machine: Machine) -> tuple[ClientCertificate, str, str]:
    """A new client certificate and key for `user`, recorded; returns (record, cert, key).

    The key is returned once, for the download, and never stored."""
    users = get_or_create_ca()
    ca_key = serialization.load_pem_private_key(users.key.encode(), password=None)
    # Never past the CA's own end: the engine would refuse it from then on anyway.
    days = min(client_cert_days(), max(1, (users.expires_at - timezone.now()).days))
    name = user.get_username()
    cert, key = certs.sign_client_cert(name, certs.load(users.cert), ca_key, days)
    record = ClientCertificate.objects.create(
        user=user,
        username=name,
        machine=machine,
        machine_name=machine.name,
        issuer=users,
        serial=format(cert.serial_number, "x"),
        issued_at=timezone.now(),
        expires_at=cert.not_valid_after_utc,
    )
    log.info(
        "Issued client certificate %s to %s for %s, valid until %s",
        record.serial,
        name,
        machine.name,
        record.expires_at.isoformat(),
    )
    return record, certs._cert_pem(cert), certs._key_pem(key)


def latest_for(user, machine: Machine) -> ClientCertificate | None:
    return ClientCertificate.objects.filter(user=user, machine=machine).first()


def revoke_all() -> tuple[ClientCA, int]:
    """Replace the users' client CA and mark every certificate revoked; returns the new CA
    and how many certificates were revoked. Engines stop accepting the old certificates as
    their bundles are rotated (operations.request_client_ca_rotation)."""
    now = timezone.now()
    with transaction.atomic():
        old = ClientCA.objects.select_for_update().filter(name=CURRENT).first()
        if old is not None:
            old.name = f"revoked-{now:%Y%m%d%H%M%S%f}"
            old.revoked_at = now
            old.key = ""  # it must never sign again
            old.save(update_fields=["name", "revoked_at", "key"])
        new = _make_ca()
        new.save()
        revoked = ClientCertificate.objects.filter(revoked_at__isnull=True).update(revoked_at=now)
    log.warning("Revoked %s user client certificate(s); new users' client CA %s", revoked, new)
    return new, revoked


def rotation_candidates() -> list[Machine]:
    """The machines whose engines dockerdash provisioned (under one of its own CAs) and that
    do not run with the current users' client CA yet."""
    current = get_or_create_ca()
    machines = Machine.objects.exclude(tls_server_cert="").exclude(trusted_client_cas=current)
    return [
        m for m in machines.select_related("driver") if certs.is_dashboards(certs.ca_for_machine(m))
    ]


def still_trusting_revoked() -> QuerySet[Machine]:
    """Machines whose engines still accept certificates of a revoked users' CA."""
    return Machine.objects.filter(trusted_client_cas__revoked_at__isnull=False).distinct()
