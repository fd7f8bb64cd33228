from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def ensure_default_drivers(**kwargs) -> None:
    """A row per driver that needs no settings, so a new installation can create machines
    at once; a driver added later gets its row on the next migrate."""
    from machines.drivers import all_drivers
    from machines.models import Driver

    for kind, driver in all_drivers():
        if driver.default_settings is not None:
            Driver.objects.get_or_create(
                name=kind, defaults={"kind": kind, "settings": driver.default_settings}
            )


class MachinesConfig(AppConfig):
    name = "machines"
    verbose_name = "Machines"

    def ready(self) -> None:
        from machines.alerts.rules import ensure_default_rules
        from machines.audit import signals as audit_signals
        from machines.services.roles import ensure_roles

        audit_signals.connect()

        post_migrate.connect(ensure_roles, sender=self)
        post_migrate.connect(ensure_default_drivers, sender=self)
        post_migrate.connect(ensure_default_rules, sender=self)
