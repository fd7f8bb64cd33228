"""Bringing machines of a docker-machine store in, as a user may."""

from __future__ import annotations

from pathlib import Path

from machines.dockermachine.importer import Result, StoreError, import_store
from machines.services import rights
from machines.services.errors import InvalidInput


def import_docker_machine(
    user, store_path: Path, *, log=print, tags_from_labels: bool = False
) -> Result:
    """Every machine of the store that can be imported (the others refused with a reason);
    a folder that is no docker-machine store is InvalidInput."""
    rights.require(user, rights.ADD, "import machines")
    try:
        return import_store(store_path, user=user, log=log, tags_from_labels=tags_from_labels)
    except StoreError as e:
        raise InvalidInput(str(e)) from None
