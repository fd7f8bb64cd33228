"""People's own client certificates: one per download, recorded, expiring; "revoke all" locks
every downloaded certificate out of every engine while the dashboard and the containers go on.

The engine tests use real container machines and the real docker CLI."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from django.core.management import call_command
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from machines.engine import clients
from machines.models import (
    CertificateAuthority,
    ClientCA,
    ClientCertificate,
    Operation,
)
from machines.operations import runner
from machines.pki import certs, tlsfiles, usercerts
from machines.services.roles import OPERATOR

from .clientcerts import (
    assert_refused,
    docker_ps,
    download,
    log_text,
    login,
    provisioned,
    run_pending_rotations,
    unpack,
)
from .fleet import make_machine, run_operation
from .tinyimage import run_sleeper

# -- downloads, records, expiry --------------------------------------------------------------


@pytest.mark.django_db
def test_each_download_is_a_new_certificate_of_the_users_own_recorded(
    operator, operator_client, generic_machine
):
    provisioned(generic_machine)
    ca = certs.ca_for_machine(generic_machine)
    first, second = (
        download(operator_client, generic_machine),
        download(operator_client, generic_machine),
    )
    users = usercerts.get_or_create_ca()
    records = list(ClientCertificate.objects.order_by("issued_at", "id"))
    assert len(records) == 2
    for files, record in zip((first, second), records, strict=True):
        assert sorted(files) == ["ca.pem", "cert.pem", "key.pem"]
        assert files["ca.pem"] == ca.cert  # to verify the engine
        assert files["key.pem"] != ca.client_key and files["cert.pem"] != ca.client_cert
        cert = certs.load(files["cert.pem"])
        cert.verify_directly_issued_by(certs.load(users.cert))
        key = serialization.load_pem_private_key(files["key.pem"].encode(), password=None)
        assert key.public_key() == cert.public_key()
        name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert name == "operator"
        assert (record.user, record.username) == (operator, "operator")
        assert (record.machine, record.machine_name) == (generic_machine, "web-1")
        assert record.serial == format(cert.serial_number, "x")
        assert record.expires_at == cert.not_valid_after_utc
        assert record.revoked_at is None
        lifetime = record.expires_at - record.issued_at
        assert timedelta(days=30) - timedelta(minutes=1) < lifetime <= timedelta(days=30)
    assert records[0].serial != records[1].serial
    assert first["key.pem"] != second["key.pem"]


@pytest.mark.django_db
def test_expiry_follows_the_client_cert_days_setting(operator_client, generic_machine, settings):
    settings.CLIENT_CERT_DAYS = 3
    provisioned(generic_machine)
    files = download(operator_client, generic_machine)
    record = ClientCertificate.objects.get()
    assert record.expires_at == certs.load(files["cert.pem"]).not_valid_after_utc
    lifetime = record.expires_at - record.issued_at
    assert timedelta(days=3) - timedelta(minutes=1) < lifetime <= timedelta(days=3)


@pytest.mark.django_db
def test_connect_panel_says_when_the_users_last_certificate_expires(
    operator_client, generic_machine
):
    provisioned(generic_machine)
    page_url = reverse("machines:detail", args=["web-1"])
    page = operator_client.get(page_url).content.decode()
    assert "a new certificate of your own, valid 30 days" in page
    download(operator_client, generic_machine)
    record = ClientCertificate.objects.get()
    expiry = f'expires on <time datetime="{record.expires_at:%Y-%m-%dT%H:%M:%S}'
    page = operator_client.get(page_url).content.decode()
    assert f'Your last certificate for web-1 (serial <span class="mono">{record.serial[:12]}' in (
        page
    )
    assert expiry in page
    # The same line, asked for by a panel that was pushed to every operator at once.
    line = operator_client.get(reverse("machines:client_cert", args=["web-1"])).content.decode()
    assert expiry in line and 'id="client-cert-' in line
    pushed = render_to_string(
        "machines/detail.html#machine_oob", {"machine": generic_machine, "can_operate": True}
    )
    assert 'hx-trigger="load, ' in pushed and "expires on" not in pushed
    # Another operator's panel speaks of their own certificates only.
    other = login("operator2", OPERATOR).get(page_url).content.decode()
    assert expiry not in other and "a new certificate of your own" in other

    usercerts.revoke_all()
    page = operator_client.get(page_url).content.decode()
    assert "was revoked on" in page
    assert "still trusts the revoked users&#x27; CA" in page


@pytest.mark.django_db
def test_viewers_get_no_certificate_and_only_admins_revoke(
    viewer_client, operator_client, admin_client_, generic_machine
):
    provisioned(generic_machine)
    for url in (
        reverse("machines:client_bundle", args=["web-1"]),
        reverse("machines:client_cert", args=["web-1"]),
    ):
        assert viewer_client.get(url).status_code == 403
    page = reverse("machines:client_certificates")
    revoke = reverse("machines:revoke_client_certificates")
    for client in (viewer_client, operator_client):
        assert client.get(page).status_code == 403
        assert client.post(revoke, {"confirm": "revoke"}).status_code == 403
        assert client.post(reverse("machines:rotate_client_ca")).status_code == 403
    assert ClientCA.objects.count() == 1
    assert "Revoke all user certificates" in admin_client_.get(page).content.decode()
    # The nav leads admins there, nobody else.
    home = reverse("machines:list")
    assert page in admin_client_.get(home).content.decode()
    assert page not in operator_client.get(home).content.decode()


@pytest.mark.django_db
def test_downloads_are_refused_with_the_reason_where_the_engine_would_refuse_them(
    operator_client, generic_machine
):
    url = reverse("machines:client_bundle", args=["web-1"])
    # Provisioned before per-user certificates: its engine trusts the dashboard's CA alone.
    provisioned(generic_machine, trusted=False)
    response = operator_client.get(url)
    assert response.status_code == 409
    assert "does not trust users' certificates yet" in response.content.decode()
    assert "regenerate its certificates" in response.content.decode()
    page = operator_client.get(reverse("machines:detail", args=["web-1"])).content.decode()
    assert "No certificate can be downloaded here" in page

    # Imported from docker-machine: its engine trusts docker-machine's CA only.
    store_ca = certs._make_ca("docker-machine-0123456789ab")
    store_ca.save()
    certs.issue_server_cert(generic_machine, store_ca)
    generic_machine.save()
    response = operator_client.get(url)
    assert response.status_code == 409
    assert "imported from docker-machine" in response.content.decode()
    assert "provision it once to move it to the dashboard's CA" in response.content.decode()

    # Attached with certificates of its own: dockerdash cannot issue any it would accept.
    attached = CertificateAuthority.objects.create(
        name="attached-0123456789ab",
        cert=store_ca.cert,
        key="",
        client_cert=store_ca.client_cert,
        client_key=store_ca.client_key,
        expires_at=store_ca.expires_at,
        client_expires_at=store_ca.client_expires_at,
    )
    generic_machine.driver_options = {"tls_ca": attached.name}
    generic_machine.save()
    response = operator_client.get(url)
    assert response.status_code == 409
    assert "attached or imported with certificates of its own" in response.content.decode()
    assert not ClientCertificate.objects.exists()


@pytest.mark.django_db
def test_revoke_needs_its_confirmation(admin_client_, generic_machine):
    provisioned(generic_machine)
    before = usercerts.get_or_create_ca()
    response = admin_client_.post(reverse("machines:revoke_client_certificates"), {"confirm": ""})
    assert response.status_code == 302
    assert usercerts.get_or_create_ca().pk == before.pk
    assert not Operation.objects.exists()


@pytest.mark.django_db
def test_revoke_all_requests_one_rotation_per_provisioned_machine(
    admin_client_, operator_client, generic_machine
):
    web2 = provisioned(make_machine(name="web-2", ip="192.0.2.11"))
    busy = provisioned(make_machine(name="busy", ip="192.0.2.12"))
    provisioned(generic_machine)
    make_machine("none", name="local", engine_url="unix:///var/run/docker.sock")
    download(operator_client, generic_machine)
    restart = Operation.objects.create(machine=busy, machine_name="busy", kind="restart")
    old = usercerts.get_or_create_ca()

    response = admin_client_.post(
        reverse("machines:revoke_client_certificates"), {"confirm": "revoke"}, follow=True
    )
    page = response.content.decode()
    assert "Revoked 1 certificate(s)" in page and "rotating it on 2 machine(s)" in page
    assert "Busy, not rotated yet: busy" in page
    rotations = Operation.objects.filter(kind=Operation.Kind.ROTATE_CLIENT_CA)
    assert sorted(rotations.values_list("machine_name", flat=True)) == ["web-1", "web-2"]
    assert ClientCertificate.objects.get().revoked_at is not None
    old.refresh_from_db()
    assert old.revoked_at is not None and old.key == ""
    new = usercerts.get_or_create_ca()
    assert new.pk != old.pk and new.cert != old.cert
    # Until their rotations succeed the page names the engines that still accept old ones.
    assert "still accept certificates of a revoked one" in page
    assert {m.name for m in usercerts.still_trusting_revoked()} == {"web-1", "web-2", "busy"}

    # Retrying once the busy machine is free rotates it too (and nothing twice).
    restart.status = Operation.Status.SUCCEEDED
    restart.save()
    admin_client_.post(reverse("machines:rotate_client_ca"))
    assert sorted(rotations.values_list("machine_name", flat=True)) == ["busy", "web-1", "web-2"]
    usercerts.record_trust(web2, new)
    assert {m.name for m in usercerts.rotation_candidates()} == {"web-1", "busy"}


# -- the key cache -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_tls_key_cache_is_private_and_pruned_of_rotated_cas(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    cache = tmp_path / "tls-cache"
    cache.mkdir(mode=0o755)
    stale = cache / "0123456789abcdef"
    stale.mkdir()
    (stale / "key.pem").write_text("a key of a CA deleted long ago")

    def cache_client(ca: CertificateAuthority) -> Path:
        clients.client(
            "tcp://192.0.2.10:2376", ca=ca.cert, cert=ca.client_cert, key=ca.client_key
        ).close()
        return cache / tlsfiles.digest(ca.cert, ca.client_cert, ca.client_key)

    old = certs.get_or_create_ca()
    old_entry = cache_client(old)
    assert cache.stat().st_mode & 0o777 == 0o700
    assert old_entry.stat().st_mode & 0o777 == 0o700
    assert {p.name: p.stat().st_mode & 0o777 for p in old_entry.iterdir()} == {
        "ca.pem": 0o600,
        "cert.pem": 0o600,
        "key.pem": 0o600,
    }
    (old_entry / "key.pem").chmod(0o644)

    # Rotation keeps the retired CA (machines may still use it) and prunes what no CA holds.
    new = certs.rotate_ca()
    new_entry = cache_client(new)
    assert not stale.exists()
    assert old_entry.exists() and (old_entry / "key.pem").stat().st_mode & 0o777 == 0o600
    # Once no machine uses the retired CA, its key leaves the disk with it.
    assert certs.prune_retired_cas() == 1
    assert not old_entry.exists()
    assert sorted(p.name for p in cache.iterdir()) == [new_entry.name]

    # The runner prunes at startup too (CAs may have been deleted while none ran).
    stale.mkdir()
    (stale / "key.pem").write_text("left by a process that died")
    runner._prune_tls_cache()
    assert sorted(p.name for p in cache.iterdir()) == [new_entry.name]


# -- on real engines with the real docker CLI ---------------------------------------------------


@pytest.mark.engine
def test_a_downloaded_certificate_works_with_the_docker_cli(running_machine, tmp_path):
    operator = login("alice", OPERATOR)
    files = download(operator, running_machine)
    ca = certs.ca_for_machine(running_machine)
    assert ca.client_key not in files.values() and ca.client_cert not in files.values()
    folder = unpack(files, tmp_path / "alice")
    ps = docker_ps(folder, running_machine)
    assert ps.returncode == 0, ps.stderr
    # The dashboard's own CA stays in the engine's bundle: its access is unchanged.
    client = clients.client_for_machine(running_machine)
    assert client.ping()
    client.close()


@pytest.mark.engine
def test_revoke_all_locks_downloaded_certificates_out_of_every_engine(new_machine, tmp_path):
    machines = [new_machine(), new_machine()]
    for machine in machines:
        op = run_operation(machine, Operation.Kind.CREATE)
        assert op.status == Operation.Status.SUCCEEDED, op.error
        machine.refresh_from_db()
    sleepers = {}
    for machine in machines:
        client = clients.client_for_machine(machine, timeout=120)
        container = run_sleeper(client)
        container.reload()
        sleepers[machine.pk] = (container.id, container.attrs["State"]["StartedAt"])
        client.close()
    bob = login("bob", OPERATOR)
    admin = login("root-admin", "admin")
    held = {m.pk: unpack(download(bob, m), tmp_path / f"bob-{m.name}") for m in machines}
    for machine in machines:
        ps = docker_ps(held[machine.pk], machine)
        assert ps.returncode == 0, ps.stderr
        assert sleepers[machine.pk][0] in ps.stdout.split()

    response = admin.post(reverse("machines:revoke_client_certificates"), {"confirm": "revoke"})
    assert response.status_code == 302
    rotations = run_pending_rotations()
    assert sorted(op.machine_name for op in rotations) == sorted(m.name for m in machines)
    for op in rotations:
        assert op.status == Operation.Status.SUCCEEDED, log_text(op)
        steps = [line for line in log_text(op).splitlines() if line.startswith("[")]
        assert steps[2:] == [
            "[3/5] Install the trusted client CAs",
            "[4/5] Restart Docker",
            "[5/5] Wait for the Docker API",
        ]
        assert "running container(s) kept running" in log_text(op)

    for machine in machines:
        machine.refresh_from_db()
        # Bob's certificate is refused in the TLS handshake, on every engine.
        assert_refused(docker_ps(held[machine.pk], machine))
        # The dashboard still reaches the engine: health check and its own client.
        runner.check_machine(machine)
        machine.refresh_from_db()
        assert machine.engine_reachable is True, machine.last_error
        client = clients.client_for_machine(machine)
        container = client.containers.get(sleepers[machine.pk][0])
        client.close()
        # The container ran through the rotation: same one, never restarted.
        assert container.status == "running"
        assert container.attrs["State"]["StartedAt"] == sleepers[machine.pk][1]
        # A certificate downloaded after the revocation works.
        fresh = unpack(download(bob, machine), tmp_path / f"bob-again-{machine.name}")
        ps = docker_ps(fresh, machine)
        assert ps.returncode == 0, ps.stderr
        assert sleepers[machine.pk][0] in ps.stdout.split()
    assert not usercerts.still_trusting_revoked().exists()
    assert usercerts.rotation_candidates() == []
    assert ClientCertificate.objects.filter(revoked_at__isnull=False).count() == 2
    assert ClientCertificate.objects.filter(revoked_at__isnull=True).count() == 2
    assert timezone.now() < ClientCertificate.objects.first().expires_at


@pytest.mark.engine
def test_revoke_client_certs_command_rotates_from_the_shell(running_machine, tmp_path):
    held = unpack(download(login("carol", OPERATOR), running_machine), tmp_path / "carol")
    assert docker_ps(held, running_machine).returncode == 0
    out = io.StringIO()
    call_command("revoke_client_certs", "--yes", stdout=out)
    assert f"{running_machine.name}: rotated" in out.getvalue()
    assert_refused(docker_ps(held, running_machine))
    # Nothing left to rotate: a retry requests nothing.
    call_command("revoke_client_certs", "--retry", stdout=io.StringIO())
    assert Operation.objects.filter(kind=Operation.Kind.ROTATE_CLIENT_CA).count() == 1
