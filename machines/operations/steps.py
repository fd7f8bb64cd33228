"""How an action is declared (a list of Steps), and what its steps report to (a Context).

The declarations themselves are in operations.py, the one place that orchestrates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.utils import timezone

from machines import live
from machines.models import Machine, Operation


class Cancelled(Exception):
    pass


# An operation's log holds what remote commands print: bounded per step (and per line, in
# Operation.append_log).
OUTPUT_LINES = 5000


class Context:
    """What the steps of one operation report to, and share (the SSH session, the host's
    facts, the CA): numbered steps and log lines, stored then published."""

    def __init__(self, op: Operation) -> None:
        self.op = op
        self.session = None
        self.facts = None
        self.ca = None
        self.users = None
        self.changed = True
        self.running: set[str] | None = None
        self.docker_before = ""
        self.resolved: dict = {}  # a stack's compose file as the docker CLI read it
        self._output_step, self._output_lines = -1, 0

    def step(self, name: str) -> None:
        if Operation.objects.filter(pk=self.op.pk, cancel_requested=True).exists():
            raise Cancelled(f"Cancelled before step {self.op.step + 1}: {name}")
        self.op.step += 1
        self.op.step_name = name[:100]
        self.op.heartbeat_at = timezone.now()
        Operation.objects.filter(pk=self.op.pk).update(
            step=self.op.step,
            steps_total=self.op.steps_total,
            step_name=self.op.step_name,
            heartbeat_at=self.op.heartbeat_at,
        )
        self.log(f"[{self.op.step}/{self.op.steps_total}] {name}", kind="step")
        live.operation_changed(self.op)

    def log(self, text: str, *, kind: str = "") -> None:
        """One line of the operation's own (a step heading, a finding, the outcome)."""
        self._append([text], kind)

    def log_many(self, texts: list[str]) -> None:
        """Lines of a remote command's output, stored at once and published as one message.

        A remote command prints what it likes: each step stores at most OUTPUT_LINES lines
        of it, then one line saying the rest was left out.
        """
        if self._output_step != self.op.step:
            self._output_step, self._output_lines = self.op.step, 0
        room = OUTPUT_LINES - self._output_lines
        self._output_lines += len(texts)
        if len(texts) > room:
            cut = [f"… output cut after {OUTPUT_LINES} lines in this step: the rest is not kept"]
            texts = texts[: max(room, 0)] + (cut if room >= 0 else [])
        self._append(texts)

    def _append(self, texts: list[str], kind: str = "") -> None:
        if texts:
            live.log_lines_added(self.op, self.op.append_log(texts, kind=kind))

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


# -- how actions are declared -----------------------------------------------------------------


def always(machine: Machine, op: Operation) -> bool:
    return True


def asked(arg: str) -> Callable[[Machine, Operation], bool]:
    """A step's condition: the operation was asked for it (`rm --purge`)."""
    return lambda machine, op: bool(op.args.get(arg))


@dataclass(frozen=True)
class Step:
    """One numbered step: its name (or a function of the machine giving it), what it runs,
    and whether the action includes it for this machine and these arguments."""

    name: str | Callable[[Machine], str]
    run: Callable[[Machine, Context], None]
    when: Callable[[Machine, Operation], bool] = always

    def title(self, machine: Machine) -> str:
        return self.name if isinstance(self.name, str) else self.name(machine)


@dataclass(frozen=True)
class Action:
    kind: str
    label: str
    steps: list[Step]
    #: What the machine's driver must be able to do: a lifecycle method, or "provisioned".
    needs: str = ""
    #: The state a machine shows while this runs.
    transient: str = ""
    #: Before the first step (no step of its own): e.g. take a changed IP.
    prepare: Callable[[Machine, Context], None] | None = None
    #: After the last step, still inside the operation.
    finish: Callable[[Machine, Context], None] | None = None
    #: Asked before a button runs it ("" for none).
    confirm: str = ""
    #: Shown in the "more actions" menu rather than as a button of its own.
    in_menu: bool = False
    #: Operators may run it from a button (create and rm are admin-only, with forms).
    button: bool = True
    #: The states of a machine it applies in (empty: any). A state nobody has confirmed
    #: lately (or never) is unknown: then every action applies.
    states: tuple[str, ...] = ()
    #: The state it leads to ("web-1 is already stopped").
    goal: str = ""
    #: Why it does not apply to a machine beyond driver and state ("" when it does).
    also: Callable[[Machine], str] | None = None

    def plan(self, machine: Machine, op: Operation) -> list[Step]:
        return [step for step in self.steps if step.when(machine, op)]

    def applies_to(self, machine: Machine) -> bool:
        """Whether the machine's driver can do this at all (its button is left out if not)."""
        driver = machine.driver_class
        if self.needs == "provisioned":
            return driver.provisioned
        return not self.needs or driver.supports(self.needs)

    def allowed(self, machine: Machine) -> bool:
        """Whether its button shows for this machine now (driver and state)."""
        return not self.refusal(machine)

    def refusal(self, machine: Machine) -> str:
        """Why this does not apply to the machine now, in one sentence ("" when it does)."""
        if not self.applies_to(machine):
            kind = machine.driver.kind
            if self.needs == "provisioned":
                return f"{kind} machines are not provisioned by dockerdash"
            return f"{kind} driver cannot {self.needs} a host"
        if self.also and (why := self.also(machine)):
            return why
        if not self.states or machine.state in self.states or not state_known(machine):
            return ""
        state = machine.get_state_display().lower()
        if machine.state == self.goal:
            return f"{machine.name} is already {state}"
        allowed = [str(Machine.State(s).label) for s in self.states]
        words = ", ".join(allowed[:-1]) + (" or " if len(allowed) > 1 else "") + allowed[-1]
        return f"{machine.name} is {state}: {self.label} applies when its state is {words}"


def state_known(machine: Machine) -> bool:
    """Whether the stored state was observed lately (else any action may be asked)."""
    return machine.state != Machine.State.NONE and not machine.stale
