"""The embedded default: daphne (HTTP + websockets) and the runner on one event loop."""

from __future__ import annotations

import asyncio
import logging

from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server
from django.core.management.base import BaseCommand, CommandError

from machines.runner import Runner

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Serve the dashboard and run operations in one process (the embedded default)."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:8000", help="HOST:PORT")
        parser.add_argument("--no-runner", action="store_true", help="web only (scale-out)")

    def handle(self, *args, bind: str, no_runner: bool, **options):
        host, sep, port = bind.rpartition(":")
        if not sep or not port.isdigit():
            raise CommandError(f"--bind wants HOST:PORT, not {bind!r}")
        host = host.strip("[]") or "127.0.0.1"
        from dockerdash.asgi import application

        runner = None if no_runner else Runner()

        def ready() -> None:
            if runner is not None:
                asyncio.get_event_loop().create_task(runner.run())
            self.stdout.write(f"dockerdash is serving on http://{bind}/", ending="\n")
            self.stdout.flush()

        server = Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=host, port=int(port)),
            ready_callable=ready,
            signal_handlers=True,
            websocket_timeout=-1,
            application_close_timeout=10,
        )
        server.run()
        if runner is not None:
            runner.stop()
