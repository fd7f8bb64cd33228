from __future__ import annotations

from django.db import migrations

# A new installation can create machines at once: these three need no credentials. The
# container driver's empty engine means DOCKER_HOST, else the local socket.
DEFAULTS = [
    ("generic", "generic", {}),
    ("container", "container", {"engine": ""}),
    ("none", "none", {}),
]


def create_default_drivers(apps, schema_editor):
    Driver = apps.get_model("machines", "Driver")
    for name, kind, settings in DEFAULTS:
        Driver.objects.get_or_create(name=name, defaults={"kind": kind, "settings": settings})


class Migration(migrations.Migration):
    dependencies = [("machines", "0001_initial")]
    operations = [migrations.RunPython(create_default_drivers, migrations.RunPython.noop)]
