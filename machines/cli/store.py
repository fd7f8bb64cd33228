"""import-docker-machine: bring the machines of a docker-machine store over."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.management.base import CommandError


def add_arguments(action: str, parser) -> None:
    parser.add_argument(
        "--storage-path",
        default=os.getenv("MACHINE_STORAGE_PATH", "~/.docker/machine"),
        help="the store (default: $MACHINE_STORAGE_PATH or ~/.docker/machine)",
    )
    parser.add_argument(
        "--tags-from-labels",
        action="store_true",
        help="tag each machine with its engine labels (key=value)",
    )


def run(action: str, cli, storage_path: str, tags_from_labels: bool, **_) -> None:
    from machines.services.errors import InvalidInput
    from machines.services.imports import import_docker_machine

    try:
        result = import_docker_machine(
            None, Path(storage_path), log=cli.stdout.write, tags_from_labels=tags_from_labels
        )
    except InvalidInput as e:
        raise CommandError(str(e)) from None
    cli.stdout.write(
        f"Imported {len(result.imported)} machines"
        + (f", refused {len(result.refused)}" if result.refused else "")
    )
    # Any refusal fails the command (the others are imported all the same): a script
    # moving a store must notice a machine left behind.
    if result.refused:
        names = ", ".join(name for name, _ in result.refused)
        raise CommandError(f"Not imported: {names} (the reasons are above)")
