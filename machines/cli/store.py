"""import-docker-machine: bring the machines of a docker-machine store over."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.core.management.base import CommandError


def add_arguments(action: str, parser) -> None:
    parser.add_argument(
        "--storage-path",
        default=os.getenv("MACHINE_STORAGE_PATH", "~/.docker/machine"),
        help="the store (default: $MACHINE_STORAGE_PATH or ~/.docker/machine)",
    )


def run(action: str, cli, storage_path: str, **_) -> None:
    from machines.dmimport import StoreError, import_store

    try:
        result = import_store(Path(storage_path), log=cli.stdout.write)
    except StoreError as e:
        raise CommandError(str(e)) from None
    cli.stdout.write(
        f"Imported {len(result.imported)} machines"
        + (f", skipped {len(result.skipped)}" if result.skipped else "")
    )
    if result.skipped and not result.imported:
        sys.exit(1)
