"""Following an operation from the command line, and `run-operation` (a one-shot runner)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from django.core.management.base import CommandError

from machines.models import Operation, OperationLogLine

# How often a CLI following an operation checks that its runner is alive.
STALE_CHECK_EVERY = 2


def add_arguments(action: str, parser) -> None:
    parser.add_argument("operation_id", type=int)


def run(action: str, cli, operation_id: int, **_) -> None:
    from machines.operations import runner

    claimed = runner.claim(operation_id)
    if claimed is not None:
        runner.run_claimed(claimed)


def follow(cli, op: Operation, verbose: bool) -> None:
    """Follow an operation to its end, printing its steps (every line with --verbose).

    A live runner (serve or worker) runs it; without one, a one-shot runner process is
    started detached, so that Ctrl-C here only stops following: the operation goes on.
    """
    from machines.operations import runner

    runner.interrupt_stale(refresh=False)
    if not runner.runner_alive():
        _spawn_runner(op)
    spawned_at = checked_at = time.monotonic()
    seen = 0
    try:
        while True:
            op.refresh_from_db()
            lines = op.log_lines.filter(seq__gt=seen).order_by("seq")
            if not verbose:
                lines = lines.exclude(kind=OperationLogLine.Kind.DETAIL)
            for line in lines:
                seen = line.seq
                cli.stdout.write(line.text)
            if not op.is_active:
                break
            if op.status == Operation.Status.PENDING and time.monotonic() - spawned_at > 10:
                # The runner we counted on has not taken it: run it ourselves.
                _spawn_runner(op)
                spawned_at = time.monotonic()
            if time.monotonic() - checked_at > STALE_CHECK_EVERY:
                # Is the runner running it still alive? If not, it is interrupted (said below).
                runner.interrupt_stale(refresh=False)
                checked_at = time.monotonic()
            time.sleep(0.1)
    except KeyboardInterrupt:
        cli.stderr.write(
            f"\nDetached: the {op.kind} of {op.machine_name} goes on in the runner "
            f"(machine inspect {op.machine_name} shows how it ends)."
        )
        sys.exit(130)
    if op.status != Operation.Status.SUCCEEDED:
        raise CommandError(op.error or f"{op.kind} of {op.machine_name} ended {op.status}")


def _spawn_runner(op: Operation) -> None:
    """A one-shot runner for one operation, in its own session (Ctrl-C here spares it)."""
    from django.db import connection

    env = dict(os.environ)
    if connection.vendor == "sqlite":
        # The very database this process uses (a test's, or DOCKERDASH_DATA_DIR's).
        env["DATABASE_URL"] = f"sqlite:///{connection.settings_dict['NAME']}"
    subprocess.Popen(
        [sys.executable, "-m", "django", "machine", "run-operation", str(op.pk)],
        env={
            **env,
            "DJANGO_SETTINGS_MODULE": os.getenv("DJANGO_SETTINGS_MODULE", "dockerdash.settings"),
        },
        cwd=Path(__file__).resolve().parents[2],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
