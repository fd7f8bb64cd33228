"""Re-encrypt every stored secret with the newest field key."""

from __future__ import annotations

from cryptography.fernet import Fernet
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from machines import fields


class Command(BaseCommand):
    help = (
        "Re-encrypt all secrets with the newest key. With --new-key a fresh key is first put "
        "in front of the key file (DOCKERDASH_FIELD_KEYS users add it to the variable instead)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--new-key", action="store_true", help="generate a new newest key")

    def handle(self, *args, new_key: bool, **options):
        if new_key:
            if settings.FIELD_KEYS:
                raise CommandError(
                    "Keys come from DOCKERDASH_FIELD_KEYS: put a new key first in it "
                    f"(for example {Fernet.generate_key().decode()}) and run this again."
                )
            path = settings.FIELD_KEYS_FILE
            keys = fields.field_keys()
            path.write_text("\n".join([Fernet.generate_key().decode(), *keys]) + "\n")
            path.chmod(0o600)
            self.stdout.write(f"Added a new key to {path}")
        fields.fernet.cache_clear()
        count = 0
        with transaction.atomic():
            for model in apps.get_models():
                secret_fields = [
                    f.name for f in model._meta.fields if isinstance(f, fields.EncryptedTextField)
                ]
                if not secret_fields:
                    continue
                # Work on the raw column values: rotation never needs the plaintext in Python.
                for pk in model.objects.values_list("pk", flat=True):
                    changes = {
                        name: fields.rotate(token)
                        for name in secret_fields
                        if (token := _raw(model, pk, name))
                    }
                    if changes:
                        _write_raw(model, pk, changes)
                        count += 1
            count += _reseal_options()
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted secrets of {count} rows."))


def _reseal_options() -> int:
    """Options holding sealed secrets (cloud-init user data, fields.OptionsJSONField):
    read (any key opens them) and written again, sealed with the newest key."""
    from machines.fields import SECRET_OPTIONS

    count = 0
    for model in apps.get_models():
        for field in model._meta.fields:
            if not isinstance(field, fields.OptionsJSONField):
                continue
            for pk, options in model.objects.values_list("pk", field.name):
                if isinstance(options, dict) and SECRET_OPTIONS & set(options):
                    model.objects.filter(pk=pk).update(**{field.name: options})
                    count += 1
    return count


def _raw(model, pk, name: str) -> str:
    from django.db import connection

    table = model._meta.db_table
    column = model._meta.get_field(name).column
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {connection.ops.quote_name(column)} FROM {connection.ops.quote_name(table)} "  # noqa: S608
            f"WHERE {connection.ops.quote_name(model._meta.pk.column)} = %s",
            [pk],
        )
        return cursor.fetchone()[0]


def _write_raw(model, pk, changes: dict[str, str]) -> None:
    from django.db import connection

    q = connection.ops.quote_name
    sets = ", ".join(f"{q(model._meta.get_field(n).column)} = %s" for n in changes)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {q(model._meta.db_table)} SET {sets} WHERE {q(model._meta.pk.column)} = %s",  # noqa: S608
            [*changes.values(), pk],
        )
