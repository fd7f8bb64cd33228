from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from machines.lib.rootfs import HostImageError
from machines.lib.vmimage import ALL_VM_IMAGES, ensure_vm_images


class Command(BaseCommand):
    help = (
        "Build the Debian 12 disk images VMs boot (kernel, systemd, sshd, cloud-init, "
        "optionally Docker) into the cache dir, as qcow2."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "images",
            nargs="*",
            choices=ALL_VM_IMAGES,
            help=f"which images to build (default: all of {', '.join(ALL_VM_IMAGES)})",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="rebuild even when an image with the same recipe is cached",
        )

    def handle(self, *args: object, **options: object) -> None:
        started = time.monotonic()
        variants = tuple(options["images"] or ALL_VM_IMAGES)  # type: ignore[arg-type]
        try:
            paths = ensure_vm_images(variants, force=bool(options["force"]), log=self.stdout.write)
        except HostImageError as error:
            raise CommandError(str(error)) from error
        for variant, path in paths.items():
            self.stdout.write(f"{variant} {path}")
        self.stdout.write(f"done in {time.monotonic() - started:.1f}s")
