"""Secrets are encrypted at rest, undecryptable data raises, and keys rotate."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from machines import fields
from machines.lib.ssh import generate_key
from machines.models import Driver, Machine

from .fleet import make_machine


def _raw_rows() -> str:
    """Every text cell of every table, as the database file holds it."""
    cells = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608
            for row in cursor.fetchall():
                cells.extend(str(c) for c in row)
    return "\n".join(cells)


@pytest.fixture
def keys(settings, tmp_path):
    settings.FIELD_KEYS = []
    settings.FIELD_KEYS_FILE = tmp_path / "field.keys"
    fields.fernet.cache_clear()
    yield settings
    fields.fernet.cache_clear()


@pytest.mark.django_db
def test_no_private_key_or_tls_key_is_stored_in_clear(keys):
    private, _ = generate_key()
    tls_key = (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
    )
    driver = Driver.objects.create(name="cloud", kind="none", secrets={"token": "s3cr3t-t0ken"})
    make_machine(driver, name="m1", ssh_private_key=private, tls_server_key=tls_key)
    raw = _raw_rows()
    assert "PRIVATE KEY" not in raw
    assert private.splitlines()[1] not in raw
    assert "s3cr3t-t0ken" not in raw
    # ... and the application still reads them back.
    machine = Machine.objects.get(name="m1")
    assert machine.ssh_private_key == private
    assert machine.tls_server_key == tls_key
    assert Driver.objects.get(name="cloud").secrets == {"token": "s3cr3t-t0ken"}
    # The key file was made on first use, readable by its owner only.
    assert keys.FIELD_KEYS_FILE.stat().st_mode & 0o777 == 0o600


@pytest.mark.django_db
def test_a_wrong_key_raises_instead_of_returning_ciphertext(keys):
    private, _ = generate_key()
    make_machine(name="m1", ssh_private_key=private)
    keys.FIELD_KEYS = [Fernet.generate_key().decode()]
    fields.fernet.cache_clear()
    with pytest.raises(fields.DecryptionError, match="cannot be decrypted"):
        Machine.objects.get(name="m1")


@pytest.mark.django_db
def test_rotation_reencrypts_everything_with_the_newest_key(keys):
    private, _ = generate_key()
    user_data = "#cloud-config\npassword: Rotated-pw\n"
    make_machine(name="m1", ssh_private_key=private, driver_options={"userdata": user_data})
    old_key = keys.FIELD_KEYS_FILE.read_text().split()[0]
    call_command("rotate_field_keys", "--new-key")
    new_key = keys.FIELD_KEYS_FILE.read_text().split()[0]
    assert new_key != old_key
    # Drop the old key entirely: the secret must still decrypt, so it was re-encrypted.
    keys.FIELD_KEYS = [new_key]
    fields.fernet.cache_clear()
    assert Machine.objects.get(name="m1").ssh_private_key == private
    assert Machine.objects.get(name="m1").driver_options["userdata"] == user_data
