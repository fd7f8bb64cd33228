from __future__ import annotations

import os
import time

import docker
import docker.errors
import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser

from machines.engine import clients
from machines.lib.hostimage import ALL_IMAGES, HostImageError, ensure_host_images

NAMES = {tag.rpartition(":")[2]: tag for tag in ALL_IMAGES}


class Command(BaseCommand):
    help = "Build the Debian host images (systemd, sshd, optionally Docker) on a Docker Engine."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "images",
            nargs="*",
            choices=sorted(NAMES),
            help=f"which images to build (default: all of {', '.join(sorted(NAMES))})",
        )
        parser.add_argument(
            "--engine",
            default=clients.default_engine_url(),
            help="Docker Engine URL (default: $DOCKER_HOST, else the system socket)",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="rebuild even when an image with the same recipe exists (runs debootstrap again)",
        )

    def handle(self, *args: object, **options: object) -> None:
        started = time.monotonic()
        names = options["images"] or sorted(NAMES)
        assert isinstance(names, list)
        # from_env so that DOCKER_TLS_VERIFY / DOCKER_CERT_PATH apply to a TLS engine too; an
        # explicit API version keeps the constructor from calling the engine before trust_env
        # is off (else requests swaps our CA for REQUESTS_CA_BUNDLE). A long import over a slow
        # engine outlasts the SDK's default 60 s read timeout.
        client = docker.from_env(
            environment={**os.environ, "DOCKER_HOST": str(options["engine"])},
            version=clients.API_VERSION,
            timeout=600,
        )
        client.api.trust_env = False
        try:
            images = ensure_host_images(
                client,
                force=bool(options["force"]),
                log=self.stdout.write,
                images=[NAMES[name] for name in names],
            )
        except (HostImageError, docker.errors.DockerException) as error:
            raise CommandError(str(error)) from error
        except requests.RequestException as error:
            raise CommandError(
                f"cannot reach the engine at {options['engine']}: {error}"
            ) from error
        finally:
            client.close()
        for tag, image_id in images.items():
            self.stdout.write(f"{tag} {image_id}")
        self.stdout.write(f"done in {time.monotonic() - started:.1f}s")
