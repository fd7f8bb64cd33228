from __future__ import annotations

from django.db import migrations

# The default driver rows are made after every migrate from the driver registry
# (machines.apps.ensure_default_drivers), so adding a driver needs no migration. This
# migration made them once; it stays so that existing databases keep their history.


class Migration(migrations.Migration):
    dependencies = [("machines", "0001_initial")]
    operations = []
