"""`import-docker-machine` on crafted stores: nothing outside the store is read, every key
must match its certificate, every machine passes the model's validation; a refused machine
is reported with its reason and the good ones are imported all the same."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from machines.models import CertificateAuthority, Machine

from .dmstores import OLD, DockerMachineStore, new_key, pem, spki
from .fleet import closed_port

pytestmark = pytest.mark.django_db


def _import(store: DockerMachineStore) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command(
            "machine",
            "import-docker-machine",
            "--storage-path",
            str(store.root),
            stdout=out,
            stderr=err,
        )
    except SystemExit as e:
        return int(e.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def _stored_text() -> str:
    """Everything dockerdash keeps that came from a store: certificates, keys, options."""
    texts = []
    for ca in CertificateAuthority.objects.all():
        texts += [ca.cert, ca.key, ca.client_cert, ca.client_key]
    for m in Machine.objects.all():
        texts += [m.tls_server_cert, m.tls_server_key, m.ssh_private_key, str(m.driver_options)]
    return "\n".join(texts)


def _stored_keys() -> set[bytes]:
    keys = []
    for ca in CertificateAuthority.objects.all():
        keys += [ca.key, ca.client_key]
    for m in Machine.objects.all():
        keys += [m.tls_server_key, m.ssh_private_key]
    return {spki(k) for k in keys if k}


@pytest.fixture
def outside(tmp_path) -> Path:
    """Secrets next to the store, which a crafted config.json points at."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret-key.pem").write_text("SECRET-MARKER-KEY\n" + pem(new_key()))
    (folder / "shadow").write_text("root:SECRET-MARKER-SHADOW:19000:0:99999:7:::\n")
    return folder


def _secret(outside: Path) -> bytes:
    return spki((outside / "secret-key.pem").read_text().partition("\n")[2])


@pytest.fixture
def store(tmp_path) -> DockerMachineStore:
    store = DockerMachineStore(tmp_path / "store")
    store.add("good-1", SSHPort=closed_port(), EnginePort=closed_port())
    return store


def _auth(config: dict) -> dict:
    return config["HostOptions"]["AuthOptions"]


def client_key_outside(store, name, config, outside):
    _auth(config)["ClientKeyPath"] = str(outside / "secret-key.pem")


def ca_key_is_shadow(store, name, config, outside):
    _auth(config)["CaPrivateKeyPath"] = str(outside / "shadow")


def client_key_up_and_out(store, name, config, outside):
    _auth(config)["ClientKeyPath"] = f"{store.root}/machines/{name}/../../../outside/secret-key.pem"


def key_is_a_symlink(store, name, config, outside):
    key = store.folder(name) / "key.pem"
    key.unlink()
    key.symlink_to(outside / "secret-key.pem")
    _auth(config)["ClientKeyPath"] = f"{OLD}/machines/{name}/key.pem"


def folder_is_a_symlink(store, name, config, outside):
    folder = store.folder(name)
    store.write_config(name, config)
    folder.rename(outside / name)
    folder.symlink_to(outside / name)


def client_key_of_another_cert(store, name, config, outside):
    (store.folder(name) / "key.pem").write_text(pem(new_key()))
    _auth(config)["ClientKeyPath"] = f"{OLD}/machines/{name}/key.pem"


def server_key_of_another_cert(store, name, config, outside):
    (store.folder(name) / "server-key.pem").write_text(pem(new_key()))


def name_with_a_newline(store, name, config, outside):
    config["Name"] = "trail\n"


def url_that_breaks_out_of_quotes(store, name, config, outside):
    config["Driver"]["URL"] = f'tcp://h:2376"; touch {outside}/pwned; echo "'


def ip_with_a_command(store, name, config, outside):
    config["Driver"]["IPAddress"] = "1.2.3.4;id$(id)"


def ssh_user_as_an_option(store, name, config, outside):
    config["Driver"]["SSHUser"] = f"-oProxyCommand=touch {outside}/pwned"


def engine_opened_without_tls(store, name, config, outside):
    config["HostOptions"]["EngineOptions"]["ArbitraryFlags"] = ["-H tcp://0.0.0.0:2375"]


def engine_tls_verify_off(store, name, config, outside):
    config["HostOptions"]["EngineOptions"]["ArbitraryFlags"] = ["tlsverify=false"]


CRAFTED = [
    (client_key_outside, "is outside the store"),
    (ca_key_is_shadow, "is outside the store"),
    (client_key_up_and_out, "goes up with '..'"),
    (key_is_a_symlink, "its client key (machines/bad-1/key.pem) is a symbolic link"),
    (folder_is_a_symlink, "(machines/bad-1) is a symbolic link"),
    (client_key_of_another_cert, "its client key does not match its client certificate"),
    (server_key_of_another_cert, "its server key does not match its server certificate"),
    (name_with_a_newline, "name: Use letters, digits"),
    (url_that_breaks_out_of_quotes, "engine_url: The engine URL"),
    (ip_with_a_command, "ip: Enter an IP address or a host name"),
    (ssh_user_as_an_option, "ssh_user: Enter a user name"),
    (engine_opened_without_tls, "would change where the Docker API listens or its TLS"),
    (engine_tls_verify_off, "would change where the Docker API listens or its TLS"),
]


@pytest.mark.parametrize(("craft", "reason"), CRAFTED, ids=[c.__name__ for c, _ in CRAFTED])
def test_a_crafted_machine_is_refused_with_its_reason_and_the_good_one_imported(
    store, outside, craft, reason
):
    config = store.add("bad-1")
    craft(store, "bad-1", config, outside)
    if store.folder("bad-1").is_dir() and not store.folder("bad-1").is_symlink():
        store.write_config("bad-1", config)

    status, out, err = _import(store)

    assert status == 1
    refusal = next(line for line in out.splitlines() if ": refused: " in line)
    assert refusal.startswith(("bad-1: refused: ", "'trail\\n': refused: ")), out
    assert reason in refusal, out
    assert "good-1: imported, engine tcp://127.0.0.1:" in out
    assert out.splitlines()[-1] == "Imported 1 machines, refused 1"
    assert "Not imported: " in err
    assert list(Machine.objects.values_list("name", flat=True)) == ["good-1"]
    # Nothing from outside the store was kept, nor run.
    assert "SECRET-MARKER" not in _stored_text()
    assert _secret(outside) not in _stored_keys()
    assert not list(outside.glob("pwned*"))


def test_a_path_shaped_like_the_store_reads_the_store_not_the_path(store, outside, tmp_path):
    """config.json's absolute paths name another user's store: the same file in this store is
    read, never the one at the recorded path (even when something is there)."""
    (outside / "certs").mkdir()
    (outside / "certs" / "key.pem").write_text((outside / "secret-key.pem").read_text())
    config = store.add("moved-1", SSHPort=closed_port(), EnginePort=closed_port())
    _auth(config)["ClientKeyPath"] = str(outside / "certs" / "key.pem")
    store.write_config("moved-1", config)

    status, out, _ = _import(store)

    assert status == 0, out
    assert out.splitlines()[-1] == "Imported 2 machines"
    assert _secret(outside) not in _stored_keys()
    assert "SECRET-MARKER" not in _stored_text()


def test_the_stores_client_certificate_is_kept_for_its_ca_whichever_machine_comes_last(store):
    """Each machine's folder holds a client certificate of its own (all from the same CA):
    the CA keeps the store's certs/ one, not the last imported machine's."""
    for name in ("mach-a", "mach-b"):
        config = store.add(name, SSHPort=closed_port(), EnginePort=closed_port())
        key = new_key()
        (store.folder(name) / "key.pem").write_text(pem(key))
        (store.folder(name) / "cert.pem").write_text(pem(store.client_cert_for(key)))
        _auth(config)["ClientKeyPath"] = f"{OLD}/machines/{name}/key.pem"
        _auth(config)["ClientCertPath"] = f"{OLD}/machines/{name}/cert.pem"
        store.write_config(name, config)

    status, out, _ = _import(store)

    assert status == 0, out
    assert out.splitlines()[-1] == "Imported 3 machines"
    ca = CertificateAuthority.objects.get(name__startswith="docker-machine-")
    assert spki(ca.client_key) == spki(store.client_key)
    assert spki(ca.key) == spki(store.ca_key)


def test_the_cli_exits_non_zero_listing_what_it_left_behind(store, outside):
    for name, craft in (("bad-1", ssh_user_as_an_option), ("bad-2", engine_opened_without_tls)):
        config = store.add(name)
        craft(store, name, config, outside)
        store.write_config(name, config)

    status, out, err = _import(store)

    assert status == 1
    assert err.strip() == "Not imported: bad-1, bad-2 (the reasons are above)"
    assert [line.split(":")[0] for line in out.splitlines() if ": refused: " in line] == [
        "bad-1",
        "bad-2",
    ]
    assert Machine.objects.get().name == "good-1"
    assert not list(outside.glob("pwned*"))
