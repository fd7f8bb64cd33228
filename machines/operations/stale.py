"""Operations whose runner died: noticed within STALE_AFTER (at once for a runner of this host)
by whoever looks (runners, the web processes, a CLI waiting on one) and marked interrupted,
so nobody waits on them and their machines are not left "busy" or "starting"."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from django.utils import timezone

from machines import live
from machines.models import Machine, Operation, RunnerProcess

# Operations heartbeat every 5 s (runner.HEARTBEAT_EVERY): four missed beats is a dead runner.
STALE_AFTER = timedelta(seconds=20)
# A runner process (serve, worker) heartbeats every 5 s: three missed beats and it is gone.
RUNNER_ALIVE_WITHIN = timedelta(seconds=15)
# What `machine ...` retries an operation of each kind (rotate-client-ca has a page of its own).
RETRY = {"create": "create", "rm": "rm -y", "regenerate-certs": "regenerate-certs -f"}


def retry_hint(op: Operation) -> str:
    if op.kind == Operation.Kind.ROTATE_CLIENT_CA:
        return "Retry it from the Certificates page."
    return f"Retry with `machine {RETRY.get(op.kind, op.kind)} {op.machine_name}`."


def runner_alive() -> bool:
    """Is a serve or worker process (not a command line's one-shot runner) alive?"""
    cutoff = timezone.now() - RUNNER_ALIVE_WITHIN
    return RunnerProcess.objects.filter(heartbeat_at__gte=cutoff).exclude(kind="cli").exists()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _claimer_is_dead(claimed_by: str) -> bool:
    """Only for claims of this host: their process can be asked directly."""
    host, _, pid = claimed_by.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not _pid_alive(int(pid))


def interrupt_stale(*, refresh: bool = True) -> list[Operation]:
    """Mark operations whose runner died as interrupted; their machines' state is unknown
    until checked again (at once with `refresh`, as runners do; else by the next check).

    A runner is dead when its heartbeat is older than STALE_AFTER, or at once when it ran on
    this host and its process is gone.
    """
    now = timezone.now()
    interrupted = []
    for op in Operation.objects.filter(status=Operation.Status.RUNNING):
        stale = op.heartbeat_at is None or op.heartbeat_at < now - STALE_AFTER
        if not (stale or _claimer_is_dead(op.claimed_by)):
            continue
        if interrupt(
            op,
            f"Interrupted: the runner {op.claimed_by} stopped while this ran. {retry_hint(op)}",
            f"Interrupted: {op.claimed_by} stopped while this ran",
        ):
            interrupted.append(op)
    for op in interrupted:
        if op.machine_id:
            _state_unknown(op.machine_id)
            if refresh:
                # Here, not at the top: the command line checks for dead runners too, and
                # needs no Docker SDK for that.
                from machines.operations.checks import refresh_machine

                refresh_machine(op.machine_id)
    return interrupted


def _state_unknown(machine_id: int) -> None:
    """ "Starting" or "Stopping" was the operation's word: nobody knows now (any action may
    be asked, and the list says it was never checked since)."""
    transient = (Machine.State.STARTING, Machine.State.STOPPING)
    if Machine.objects.filter(pk=machine_id, state__in=transient).update(last_checked=None):
        machine = Machine.objects.select_related("driver").get(pk=machine_id)
        live.machine_changed(machine)


def interrupt(op: Operation, error: str, line: str) -> bool:
    """Mark a running operation interrupted (once), with its last log line, and say so."""
    if not op.interrupt(error, line):
        return False
    live.log_lines_added(op, list(op.log_lines.order_by("-seq")[:1]))
    live.operation_changed(op)
    return True
