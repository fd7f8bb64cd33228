"""The embedded default: daphne (HTTP + websockets) and the runner on one event loop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server
from django.core.management.base import BaseCommand, CommandError

from machines.operations.runner import Runner, mark_interrupted


class Command(BaseCommand):
    help = "Serve the dashboard and run operations in one process (the embedded default)."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:8000", help="HOST:PORT")
        parser.add_argument(
            "--no-runner", action="store_true", help="web only (scale-out: run `worker`s)"
        )

    def handle(self, *args, bind: str, no_runner: bool, **options):
        host, sep, port = bind.rpartition(":")
        if not sep or not port.isdigit():
            raise CommandError(f"--bind wants HOST:PORT, not {bind!r}")
        host = host.strip("[]") or "127.0.0.1"
        from twisted.internet import reactor

        from dockerdash.asgi import application

        runner = None if no_runner else Runner(kind="serve")

        def ready() -> None:
            loop = asyncio.get_event_loop()
            if runner is not None:
                task = loop.create_task(runner.run())

                def shutdown() -> None:
                    # Let the runner finish or interrupt its operations, then stop serving.
                    runner.stop()
                    task.add_done_callback(lambda _: reactor.stop())

            else:
                # Web only: operations whose runner died show "interrupted" all the same.
                janitor = loop.create_task(mark_interrupted())

                def shutdown() -> None:
                    janitor.cancel()
                    reactor.stop()

            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, shutdown)
            self.stdout.write(f"dockerdash is serving on http://{bind}/")
            self.stdout.flush()

        Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=host, port=int(port)),
            ready_callable=ready,
            signal_handlers=False,
            websocket_timeout=-1,
            application_close_timeout=10,
        ).run()
        # Operation threads still blocked on a host would hold the interpreter's exit; the
        # runner has already recorded them as interrupted.
        sys.stdout.flush()
        os._exit(0)
