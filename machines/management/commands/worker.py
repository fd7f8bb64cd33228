"""The runner alone, for the scale-out shape (with DATABASE_URL and REDIS_URL)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from django.core.management.base import BaseCommand

from machines.operations.runner import Runner


class Command(BaseCommand):
    help = "Run operations, health checks and engine watchers (any number of workers)."

    def handle(self, *args, **options):
        asyncio.run(self.main())

    async def main(self) -> None:
        runner = Runner(kind="worker")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.stop)
        self.stdout.write(f"dockerdash worker {runner.name} started")
        self.stdout.flush()
        await runner.run()
        self.stdout.write(f"dockerdash worker {runner.name} stopped")
        # Operation threads still blocked on a host would hold the exit (asyncio.run waits
        # for its executor); the runner has already recorded them as interrupted.
        sys.stdout.flush()
        os._exit(0)
