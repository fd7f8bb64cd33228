"""Following an operation from the command line, and `run-operation` (a one-shot runner)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.core.management.base import CommandError

from machines.models import Operation, OperationLogLine

# How often a CLI following an operation checks that its runner is alive.
STALE_CHECK_EVERY = 2
# How often it looks at the operation when nothing woke it (a runner on another host).
POLL_EVERY = 0.5


def add_arguments(action: str, parser) -> None:
    parser.add_argument("operation_id", type=int)


def run(action: str, cli, operation_id: int, **_) -> None:
    from machines.operations import runner

    claimed = runner.claim(operation_id)
    if claimed is not None:
        runner.run_claimed(claimed)


def follow(cli, op: Operation, verbose: bool, header: str = "") -> None:
    """Follow an operation to its end, printing its steps (every line with --verbose), after
    a `header` line.

    A live runner (serve or worker) runs it; without one, this process forks a runner of
    its own (no second start-up), detached, so that Ctrl-C here only stops following: the
    operation goes on. Nothing is printed before that: a reader gone at once (`| true`, a
    closed terminal) must not leave the operation pending with no runner. Runners on this
    host wake this process at each change of the operation (live.wakeups); a poll remains
    for runners elsewhere.
    """
    from machines.live import wakeups
    from machines.operations.stale import interrupt_stale, runner_alive

    with wakeups.listen_to_operation(op.pk) as woken:
        interrupt_stale(refresh=False)
        if not runner_alive():
            _spawn_runner(op)
        try:
            if header:
                cli.stdout.write(header)
            _print_until_done(cli, op, verbose, woken)
        except KeyboardInterrupt:
            cli.stderr.write(
                f"\nDetached: the {op.kind} of {op.machine_name} goes on in the runner "
                f"(machine inspect {op.machine_name} shows how it ends; "
                f"machine cancel {op.machine_name} stops it)."
            )
            sys.exit(130)
    if op.status != Operation.Status.SUCCEEDED:
        raise CommandError(op.error or f"{op.kind} of {op.machine_name} ended {op.status}")


def wait_until_ended(op: Operation) -> None:
    """Until `op` has ended (woken by this host's runners, polling for others'); op refreshed.
    Its runner gone meanwhile ends it as interrupted (stale detection), so this ends too."""
    from machines.live import wakeups

    with wakeups.listen_to_operation(op.pk) as woken:
        for _ in _refreshed_until_ended(op, woken):
            pass


def _refreshed_until_ended(op: Operation, woken):
    """Yields each time `op` was read again, until it has ended: at each wake-up or poll,
    and meanwhile every STALE_CHECK_EVERY asks whether the runner running it is alive (if
    not, it ends as interrupted)."""
    from machines.operations.stale import interrupt_stale

    checked_at = time.monotonic()
    while True:
        op.refresh_from_db()
        yield
        if not op.is_active:
            return
        if time.monotonic() - checked_at > STALE_CHECK_EVERY:
            interrupt_stale(refresh=False)
            checked_at = time.monotonic()
        woken.wait(POLL_EVERY)


def _print_until_done(cli, op: Operation, verbose: bool, woken) -> None:
    spawned_at = time.monotonic()
    seen = 0
    for _ in _refreshed_until_ended(op, woken):
        lines = op.log_lines.filter(seq__gt=seen).order_by("seq")
        if not verbose:
            lines = lines.exclude(kind=OperationLogLine.Kind.DETAIL)
        for line in lines:
            seen = line.seq
            cli.stdout.write(line.text)
        if op.status == Operation.Status.PENDING and time.monotonic() - spawned_at > 10:
            # The runner we counted on has not taken it: run it ourselves.
            _spawn_runner(op)
            spawned_at = time.monotonic()


def _spawn_runner(op: Operation) -> None:
    """A one-shot runner for one operation, in its own session (Ctrl-C here spares it):
    this very process forked, Django already set up, so the operation starts at once.
    Where forking is not safe (other threads run here, as in a test server; a transaction
    open), a new process is started instead."""
    from django.db import connection, connections

    if not hasattr(os, "fork") or _threads() > 1 or connection.in_atomic_block:
        _start_runner_process(op)
        return
    connections.close_all()  # neither process may use the other's database connection
    if os.fork():
        return
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        from machines.operations import runner

        claimed = runner.claim(op.pk)
        if claimed is not None:
            runner.run_claimed(claimed)
    finally:
        os._exit(0)  # the parent's exit handlers and buffers are not the child's


def _threads() -> int:
    """This process's threads, those of libraries too (Python counts only its own)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _start_runner_process(op: Operation) -> None:
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
