"""What a cloud machine has at its provider, and how it is named, tagged and recorded."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from machines.models import Machine


@dataclass(frozen=True)
class Resource:
    """Something made at the provider for a machine: a VM, a firewall, a key, a tag."""

    kind: str
    id: str
    name: str


@dataclass(frozen=True)
class VM:
    id: str
    status: str  # the provider's word ("new", "active", "off", "running", ...)
    state: str  # Machine.State's value for it
    ipv4: str = ""


@dataclass(frozen=True)
class Names:
    """How a machine's resources are named and tagged at the provider."""

    instance: str  # this dashboard (settings.INSTANCE_ID), sanitized
    machine: str
    resource: str  # the name of its key and firewall

    @classmethod
    def of(cls, machine: Machine) -> Names:
        instance = re.sub(r"[^A-Za-z0-9-]", "-", settings.INSTANCE_ID).strip("-")[:40]
        return cls(instance, machine.name, f"dockerdash-{instance}-{machine.name}")


class Made:
    """The resources a machine's create made, recorded on the machine as each is made (so a
    crash half-way still leaves the ids behind for rm)."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.resources = [Resource(**r) for r in machine.driver_options.get("resources", [])]

    def id_of(self, kind: str) -> str:
        return next((r.id for r in self.resources if r.kind == kind), "")

    def add(self, resource: Resource) -> Resource:
        self.resources.append(resource)
        self._save()
        return resource

    def add_once(self, resource: Resource) -> Resource:
        """Recorded unless it already is (an operation sent again after a refusal)."""
        if resource not in self.resources:
            self.add(resource)
        return resource

    def clear(self) -> None:
        self.resources = []
        self._save()

    def describe(self, noun=lambda kind: kind) -> str:
        return ", ".join(f"{noun(r.kind)} {r.id}" for r in self.resources)

    def _save(self) -> None:
        machine = self.machine
        machine.driver_options["resources"] = [asdict(r) for r in self.resources]
        if machine.pk:
            type(machine).objects.filter(pk=machine.pk).update(
                driver_options=machine.driver_options
            )
