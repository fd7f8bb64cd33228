from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MachinesConfig(AppConfig):
    name = "machines"
    verbose_name = "Machines"

    def ready(self) -> None:
        from .roles import ensure_roles

        post_migrate.connect(ensure_roles, sender=self)
