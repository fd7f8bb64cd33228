"""Start, stop, restart and kill, in one place: what each is (its steps, the states it
applies in, the state it aims at) and what its steps do.

A click on Restart: services.request_action checks the user's rights and records a pending
Operation (operations/actions.request); a runner claims it (operations/runner.py) and runs
the Action declared here, step by step (operations/steps.py logs, publishes and honours a
cancel): the driver's `restart`, a look at the host (its state and IP), and, for a machine
with a certificate, a check of its Docker engine (which re-issues the certificate when the
IP changed).
"""

from __future__ import annotations

from collections.abc import Callable

from machines import provision
from machines.lib.errors import DriverError
from machines.models import Machine, Operation
from machines.operations.steps import Action, Context, Step

S = Machine.State
STOPPED_OR_BROKEN = (S.STOPPED, S.ERROR, S.TIMEOUT)
UP_OR_BROKEN = (S.RUNNING, S.PAUSED, S.ERROR, S.TIMEOUT)


def observe(machine: Machine, ctx: Context) -> None:
    machine.observe()
    ctx.log(f"{machine.name} is {machine.state}" + (f" at {machine.ip}" if machine.ip else ""))


def refresh_ip(machine: Machine, ctx: Context) -> None:
    """The driver's current IP (a container or cloud host may get a new one on each start)."""
    try:
        ip = machine.get_driver().ip(machine)
    except DriverError:
        return
    if ip and ip != machine.ip:
        ctx.log(f"The IP of {machine.name} changed from {machine.ip or '(none)'} to {ip}")
        machine.ip = ip
        machine.save(update_fields=["ip"])


def driver(machine: Machine, ctx: Context):
    """The machine's driver, reporting its progress to the operation's log."""
    found = machine.get_driver()
    found.log = ctx.log
    return found


def call_driver(method: str) -> Callable[[Machine, Context], None]:
    def run(machine: Machine, ctx: Context) -> None:
        getattr(driver(machine, ctx), method)(machine)

    return run


def has_certificate(machine: Machine, op: Operation) -> bool:
    return bool(machine.tls_server_cert)


CHECK_HOST = Step("Check the host", observe)


def lifecycle(method: str, label: str, transient: str, *, check_engine: bool, **kw) -> Action:
    # After a (re)start, a provisioned machine's engine is checked too: its IP may have changed
    # (a container or a cloud host gets a new one), which its certificate must then name.
    steps = [Step(lambda m: f"{label} {m.name}", call_driver(method)), CHECK_HOST]
    if check_engine:
        steps.append(Step("Check the Docker engine", provision.check_engine, has_certificate))
    return Action(method, label, steps, needs=method, transient=transient, **kw)


LIFECYCLE = [
    lifecycle(
        "start", "Start", S.STARTING, check_engine=True, states=STOPPED_OR_BROKEN, goal=S.RUNNING
    ),
    lifecycle("stop", "Stop", S.STOPPING, check_engine=False, states=UP_OR_BROKEN, goal=S.STOPPED),
    # As docker-machine's, a restart of a stopped machine starts it.
    lifecycle(
        "restart", "Restart", S.STARTING, check_engine=True, states=(*UP_OR_BROKEN, S.STOPPED)
    ),
    lifecycle(
        "kill",
        "Kill",
        Machine.State.STOPPING,
        check_engine=False,
        confirm="Kill {name}? Its host is stopped at once, without a clean shutdown.",
        states=(*UP_OR_BROKEN, S.STARTING, S.STOPPING),
        goal=S.STOPPED,
    ),
]
