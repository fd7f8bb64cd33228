"""Revoke every user's client certificate, as the Certificates page does, from a shell."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from machines.models import Operation
from machines.operations import runner
from machines.services import certificates


class Command(BaseCommand):
    help = (
        "Revoke every client certificate people downloaded: a new users' client CA, rotated "
        "on every engine dockerdash provisioned (one operation per machine; containers keep "
        "running). --retry only rotates where a previous rotation failed or was skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("-y", "--yes", action="store_true", help="Do not ask to confirm")
        parser.add_argument(
            "--retry", action="store_true", help="Revoke nothing; rotate where still pending"
        )

    def handle(self, *args, yes: bool, retry: bool, **options):
        if not retry:
            if not yes and input("Revoke every user's client certificate? (y/n): ").strip() not in (
                "y",
                "yes",
            ):
                raise CommandError("Nothing was revoked")
            count = certificates.revoke_all(None)
            self.stdout.write(f"Revoked {count} certificate(s); new users' client CA in force.")
        ops, busy = certificates.rotate_client_ca(None, via="cli")
        for name in busy:
            self.stderr.write(f"{name} is busy: not rotated yet (run again with --retry later)")
        failed = bool(busy)
        for op in ops:
            failed |= not self._run(op)
        if failed:
            sys.exit(1)

    def _run(self, op: Operation) -> bool:
        """Run it here unless a live runner takes it; say how it ended."""
        self.stdout.write(f"{op.machine_name}: rotate-client-ca requested (operation {op.pk})")
        if not runner.runner_alive():
            claimed = runner.claim(op.pk, worker=runner.worker_name())
            if claimed is not None:
                runner.run_claimed(claimed)
        op.refresh_from_db()
        if op.status == Operation.Status.SUCCEEDED:
            self.stdout.write(f"{op.machine_name}: rotated")
        elif op.status in Operation.ACTIVE:
            self.stdout.write(f"{op.machine_name}: the runner is rotating it (see its log)")
        else:
            self.stderr.write(f"{op.machine_name}: {op.status}: {op.error}")
            return False
        return True
