"""Cloud-init user data encrypted at rest: the options field seals its secret keys, and the
rows written before are saved again so that none stays in plain text."""

from __future__ import annotations

from django.db import migrations

import machines.fields


def seal_existing(apps, schema_editor) -> None:
    from machines.drivers.base import SECRET_OPTIONS

    Machine = apps.get_model("machines", "Machine")
    for machine in Machine.objects.only("pk", "driver_options").iterator():
        if SECRET_OPTIONS & set(machine.driver_options or {}):
            Machine.objects.filter(pk=machine.pk).update(driver_options=machine.driver_options)


class Migration(migrations.Migration):
    dependencies = [
        ("machines", "0011_alerts_and_metrics"),
    ]

    operations = [
        migrations.AlterField(
            model_name="machine",
            name="driver_options",
            field=machines.fields.OptionsJSONField(blank=True, default=dict),
        ),
        migrations.RunPython(seal_existing, migrations.RunPython.noop),
    ]
