"""The dashboard's CA and the certificates it issues, checked with real TLS handshakes."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest
from cryptography import x509
from django.db import connection

from machines.models import CertificateAuthority, Machine
from machines.pki import certs

from .fleet import make_machine


@pytest.fixture
def machine(db) -> Machine:
    return make_machine(name="web-1", ip="192.0.2.10", tls_san=["docker.example.com", "10.9.8.7"])


def _handshake(ca: CertificateAuthority, server_cert: str, server_key: str, name: str, tmp_path):
    """A real TLS 1.3 handshake with client certificates, verified the way Python 3.13 verifies
    by default (VERIFY_X509_STRICT), to `name`."""
    for file, pem in {
        "ca.pem": ca.cert,
        "server.pem": server_cert,
        "server-key.pem": server_key,
        "cert.pem": ca.client_cert,
        "key.pem": ca.client_key,
    }.items():
        (tmp_path / file).write_text(pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "server.pem", tmp_path / "server-key.pem")
    server_ctx.load_verify_locations(tmp_path / "ca.pem")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=tmp_path / "ca.pem")
    assert client_ctx.verify_flags & ssl.VERIFY_X509_STRICT
    client_ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: dict = {}

    def serve():
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen["client"] = tls.getpeercert()
                tls.sendall(b"ok")
        except ssl.SSLError as e:  # the client refused us: its side of the test says why
            seen["error"] = e

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client_ctx.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.recv(2) == b"ok"
    finally:
        thread.join(5)
        listener.close()
    return seen["client"]


def test_the_ca_is_one_python_313_accepts(db):
    ca = certs.get_or_create_ca()
    cert = certs.load(ca.cert)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert ca.expires_at == cert.not_valid_after_utc
    assert ca.client_expires_at == certs.load(ca.client_cert).not_valid_after_utc
    # One CA per dashboard: asking again gives the same one.
    assert certs.get_or_create_ca().pk == ca.pk
    assert CertificateAuthority.objects.count() == 1


def test_server_certificate_names_ip_hostname_localhost_and_extra_sans(machine, tmp_path):
    ca = certs.get_or_create_ca()
    certs.issue_server_cert(machine, ca)
    machine.save()
    assert set(certs.names_in(machine.tls_server_cert)) == {
        "192.0.2.10",
        "web-1",
        "localhost",
        "127.0.0.1",
        "docker.example.com",
        "10.9.8.7",
    }
    cert = certs.load(machine.tls_server_cert)
    assert machine.tls_server_serial == format(cert.serial_number, "x")
    assert machine.tls_server_expires_at == cert.not_valid_after_utc
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku
    for name in ("192.0.2.10", "docker.example.com", "localhost"):
        client = _handshake(ca, machine.tls_server_cert, machine.tls_server_key, name, tmp_path)
        assert ("organizationName", "dockerdash") in client["subject"][0]


def test_a_certificate_for_another_name_is_refused(machine, tmp_path):
    ca = certs.get_or_create_ca()
    certs.issue_server_cert(machine, ca)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(ca, machine.tls_server_cert, machine.tls_server_key, "192.0.2.99", tmp_path)


def test_keys_are_encrypted_at_rest(machine):
    ca = certs.get_or_create_ca()
    certs.issue_server_cert(machine, ca)
    machine.save()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT key, client_key FROM machines_certificateauthority WHERE id = %s", [ca.pk]
        )
        stored = cursor.fetchone()
        cursor.execute("SELECT tls_server_key FROM machines_machine WHERE id = %s", [machine.pk])
        stored += cursor.fetchone()
    for value in stored:
        assert value and "PRIVATE KEY" not in value
    assert "PRIVATE KEY" in CertificateAuthority.objects.get(pk=ca.pk).key


def test_a_still_good_certificate_is_kept_and_an_ip_change_is_noticed(machine):
    ca = certs.get_or_create_ca()
    assert certs.server_cert_problem(machine, ca) == "no server certificate yet"
    certs.issue_server_cert(machine, ca)
    assert certs.server_cert_problem(machine, ca) is None
    machine.ip = "192.0.2.77"
    assert certs.server_cert_problem(machine, ca) == "it does not name 192.0.2.77"


def test_a_rotated_ca_keeps_serving_machines_it_signed_until_they_move(machine, db):
    old = certs.get_or_create_ca()
    certs.issue_server_cert(machine, old)
    machine.save()
    new = certs.rotate_ca()
    assert new.pk != old.pk and new.name == "default"
    # The machine's engine still trusts the old CA: its clients keep using that one.
    assert certs.ca_for_machine(machine).pk == old.pk
    assert certs.prune_retired_cas() == 0
    assert certs.server_cert_problem(machine, new) == "it was signed by another CA"
    certs.issue_server_cert(machine, new)
    machine.save()
    assert certs.ca_for_machine(machine).pk == new.pk
    assert certs.prune_retired_cas() == 1
    assert list(CertificateAuthority.objects.values_list("pk", flat=True)) == [new.pk]


def test_client_bundle_is_private_to_the_user(machine, settings, tmp_path):
    settings.CERTS_DIR = tmp_path / "machines"
    ca = certs.get_or_create_ca()
    certs.issue_server_cert(machine, ca)
    folder = certs.write_client_bundle(machine)
    assert folder == tmp_path / "machines" / "web-1"
    assert folder.stat().st_mode & 0o777 == 0o700
    assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()} == {
        "ca.pem": 0o600,
        "cert.pem": 0o600,
        "key.pem": 0o600,
    }
    assert (folder / "key.pem").read_text() == ca.client_key
