"""Secrets at rest: a text field encrypted with MultiFernet (keys newest first, rotatable),
and a driver's options with their secret ones (cloud-init user data) encrypted."""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

# cryptography is imported where a secret is encrypted or decrypted, not with the models:
# `machine ls` and the other stored-state commands never touch a secret (they defer these
# fields) and start faster without it.


class DecryptionError(Exception):
    """A stored secret cannot be decrypted with any configured key."""


def _read_or_create_key_file() -> list[str]:
    path = settings.FIELD_KEYS_FILE
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process just wrote it
        else:
            with os.fdopen(fd, "w") as f:
                from cryptography.fernet import Fernet

                f.write(Fernet.generate_key().decode() + "\n")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def field_keys() -> list[str]:
    return settings.FIELD_KEYS or _read_or_create_key_file()


@cache
def fernet() -> MultiFernet:
    from cryptography.fernet import Fernet, MultiFernet

    keys = field_keys()
    if not keys:
        raise ImproperlyConfigured("No field encryption key: set DOCKERDASH_FIELD_KEYS")
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    from cryptography.fernet import InvalidToken

    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        # Never hand the ciphertext back as if it were the secret.
        raise DecryptionError(
            "A stored secret cannot be decrypted with the configured keys "
            "(DOCKERDASH_FIELD_KEYS or the key file changed?)"
        ) from None


def rotate(token: str) -> str:
    return fernet().rotate(token.encode()).decode()


class EncryptedTextField(models.TextField):
    """Stores Fernet tokens; Python code only ever sees the plaintext."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        if value is None or value == "":
            return value
        return encrypt(str(value))


class EncryptedJSONField(EncryptedTextField):
    """A dict of secrets (cloud credentials, passwords) stored as one encrypted JSON text."""

    def from_db_value(self, value, expression, connection):
        plaintext = super().from_db_value(value, expression, connection)
        return json.loads(plaintext) if plaintext else {}

    def to_python(self, value):
        if isinstance(value, dict):
            return value
        return json.loads(value) if value else {}

    def get_prep_value(self, value):
        if isinstance(value, dict):
            value = json.dumps(value, sort_keys=True) if value else ""
        return super().get_prep_value(value)

    def value_to_string(self, obj):
        return json.dumps(self.value_from_object(obj))


#: How a secret option is stored inside the options' JSON.
SEALED = "$encrypted"


#: Per-machine options that are secrets at rest: the cloud-init user data of every cloud
#: driver, by each one's option name (the drivers use these names; drivers/base.py).
SECRET_OPTIONS = frozenset({"userdata", "user_data", "custom_data"})


def _opened(value):
    if isinstance(value, dict) and set(value) == {SEALED}:
        return decrypt(value[SEALED])
    return value


class OptionsJSONField(models.JSONField):
    """A machine's driver options as JSON, the secret ones (SECRET_OPTIONS:
    cloud-init user data, which carries passwords and tokens) each stored encrypted as
    {"$encrypted": token}. Python code sees the plaintext; a value saved before the field
    was encrypted is read as it is and encrypted on the next save."""

    def from_db_value(self, value, expression, connection):
        options = super().from_db_value(value, expression, connection)
        if not isinstance(options, dict):
            return options
        return {key: _opened(item) for key, item in options.items()}

    def get_prep_value(self, value):
        if isinstance(value, dict):
            secret = SECRET_OPTIONS
            value = {
                key: {SEALED: encrypt(item)} if key in secret and isinstance(item, str) else item
                for key, item in value.items()
            }
        return super().get_prep_value(value)


def hidden_options(options: dict) -> dict:
    """Options to show (machine inspect, the admin): each secret one as its size and SHA-256
    only, enough to tell which user data a machine got without showing it."""
    secret = SECRET_OPTIONS
    return {
        key: {"size": len(item.encode()), "sha256": hashlib.sha256(item.encode()).hexdigest()}
        if key in secret and isinstance(item, str)
        else item
        for key, item in options.items()
    }
