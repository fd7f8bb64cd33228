"""The lifecycle every cloud driver shares, written once over a few provider primitives.

create: a key pair registered with the provider (the machine's own, fresh), a firewall that
opens only SSH and Docker, the VM with tags naming this dashboard and the machine, a wait
for it to run with a public IPv4 address, then SSH. What it makes is recorded on the machine
as it is made; a create that fails half-way deletes all of it and says so. rm deletes the
same and lists the provider's resources by tag to check that nothing is left. Power actions
wait for the provider's action and the VM's state; state() is the provider's view of the VM.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from django.conf import settings

from machines.drivers.base import BaseDriver, DriverError, SSHAddress
from machines.lib.ssh import SSHError, public_key_of, wait_for_ssh

from . import catalog as catalogs
from .api import RETRIES, CloudError, Failure, with_retries
from .forms import parse_sources
from .resources import VM, Made, Names, Resource

if TYPE_CHECKING:
    from machines.models import Machine

    from .catalog import Catalog

logger = logging.getLogger(__name__)
ANYWHERE = ["0.0.0.0/0", "::/0"]
# Seconds between "still waiting" lines, and how long a shutdown may take before power-off.
PROGRESS_EVERY = 10
SHUTDOWN_GRACE = 60


class CloudDriver(BaseDriver):
    """A driver whose hosts are VMs a provider's API makes. Providers implement the
    primitives below (`fetch_catalog` ... `leftovers`); everything else is shared."""

    has_accounts = True
    provider: ClassVar[str]  # "DigitalOcean"
    vm_noun: ClassVar[str] = "VM"  # "droplet", "server"
    tag_noun: ClassVar[str] = "tags"  # what the provider calls them ("labels")
    token_field: ClassVar[str] = "token"  # noqa: S105 (the name of the secret field)
    #: The setting that overrides the provider's public API (an endpoint, a proxy, a fake).
    api_url_setting: ClassVar[str] = "api_url"
    public_api_url: ClassVar[str]
    #: Where a regional catalog's region list is asked for, when no region is given.
    default_region: ClassVar[str] = ""
    #: The firewall is given to the VM at its creation (else applied once the VM exists).
    firewall_first: ClassVar[bool] = False
    #: The kinds of resources it makes, in the order they are deleted: what uses the others
    #: first (a firewall applied to a VM is "in use"). Resources of other kinds go last.
    delete_order: ClassVar[tuple[str, ...]] = ("vm", "firewall", "key", "tag")
    #: Its sizes and images differ by region (EC2, Azure): the catalog is fetched per region,
    #: with `fetch_catalog(region)`.
    regional: ClassVar[bool] = False
    #: What the user's credentials are called in messages, and what they need when refused.
    credential_noun: ClassVar[str] = "API token"
    access_hint: ClassVar[str] = "the token needs read and write access"
    #: Retries of a failed call that may be retried (a driver's flag may change it).
    api_retries: int = RETRIES

    # -- provider primitives ---------------------------------------------------------------
    def failure_of(self, error: BaseException) -> Failure | None:
        raise NotImplementedError

    def fetch_catalog(self) -> Catalog:
        raise NotImplementedError

    def describe_account(self) -> str:
        raise NotImplementedError

    def add_key(self, machine: Machine, names: Names, public_key: str) -> Resource:
        raise NotImplementedError

    def add_firewall(
        self, machine: Machine, names: Names, sources: list[str], vm: Resource | None
    ) -> Resource:
        raise NotImplementedError

    def add_vm(
        self, machine: Machine, names: Names, key: Resource | None, firewall: Resource | None
    ) -> Resource:
        raise NotImplementedError

    def find_vm(self, vm_id: str) -> VM | None:
        """The VM now, or None when the provider no longer has it."""
        raise NotImplementedError

    def power(self, vm_id: str, action: str) -> None:
        """Run "on", "shutdown", "off" or "reboot" and wait for the provider's action."""
        raise NotImplementedError

    def delete(self, resource: Resource) -> bool | None:
        """Delete it and wait until it is gone (already gone is fine). False: kept on
        purpose (something it made for others too, still in use by them), said in the log."""
        raise NotImplementedError

    def leftovers(self, machine: Machine, names: Names) -> list[Resource]:
        """Everything the provider still has with this machine's tags (or names)."""
        raise NotImplementedError

    # -- calling the API ---------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return (self.settings.get(self.api_url_setting) or self.public_api_url).rstrip("/")

    @property
    def token(self) -> str:
        return self.secrets.get(self.token_field, "")

    def call(self, what: str, fn: Callable, *args, idempotent: bool = True, missing_ok=False, **kw):
        """One API call with the shared retries; failures become one sentence. With
        `missing_ok`, a "not found" answer gives None."""
        return with_retries(
            self.provider,
            what,
            lambda: fn(*args, **kw),
            self.failure_of,
            self.log,
            idempotent=idempotent,
            missing_ok=missing_ok,
            # An observation (a health check) does not wait: the next one comes soon.
            retries=0 if getattr(self, "_observing", False) else self.api_retries,
            credentials=self.credential_noun,
            access_hint=self.access_hint,
        )

    def catalog(self, region: str = "") -> Catalog:
        key = catalogs.cache_key(self.kind, self.settings, self.secrets)
        if not self.regional:
            return catalogs.cached(key, self.fetch_catalog)
        return catalogs.cached(f"{key}:{region}", lambda: self.fetch_catalog(region))

    def bind_options_form(self, data=None, **kwargs):
        region = self._asked_region(data, kwargs) if self.regional else ""
        try:
            catalog, error = self.catalog(region), ""
        except CloudError as e:
            catalog, error = None, str(e)
        return self.options_form(data, catalog=catalog, catalog_error=error, **kwargs)

    def _asked_region(self, data, kwargs) -> str:
        """The region a regional catalog is fetched for: the one given, else the field's
        default (docker-machine's), else the provider's default region."""
        field = self.options_form.region_field
        prefix = kwargs.get("prefix")
        given = (data or {}).get(f"{prefix}-{field}" if prefix else field)
        given = given or (kwargs.get("initial") or {}).get(field)
        default = self.options_form.base_fields[field].initial
        return str(given or default or self.default_region).strip()

    def test_connection(self) -> str:
        return self.describe_account()

    # -- options -----------------------------------------------------------------------------
    def apply_options(self, machine: Machine, options: dict) -> None:
        options = dict(options)
        if key := options.pop("ssh_key", ""):
            machine.ssh_private_key = key.strip() + "\n"  # encrypted on the machine, not here
        machine.ssh_user = options.get("ssh_user") or "root"
        machine.ssh_port = options.get("ssh_port") or 22
        machine.engine_port = 2376
        machine.driver_options = {k: v for k, v in options.items() if v not in ("", None)}

    # -- create ------------------------------------------------------------------------------
    def create(self, machine: Machine, log=print) -> None:
        self.log = log
        names = Names.of(machine)
        made = Made(machine)
        if made.resources:  # an interrupted create (a runner killed) left these behind
            self.log(f"Deleting what an interrupted create made: {made.describe(self._noun)}")
            self._delete_all(machine, names, made)
        try:
            self.build(machine, names, made)
            vm = self._wait_running(machine, made.id_of("vm"))
            machine.ip = vm.ipv4
            self._wait_ssh(machine)
        except Exception as error:
            if not isinstance(error, DriverError):
                logger.exception("Creating %s failed", machine.name)
            raise self._undo(machine, names, made, error) from None

    def build(self, machine: Machine, names: Names, made: Made) -> None:
        """Make the key, the firewall and the VM, each recorded as made. A provider whose
        VM needs more (networks, addresses, interfaces) overrides this, with `made.add`."""
        key = None
        if existing := machine.driver_options.get("ssh_key_fingerprint"):
            self.log(f"Using the SSH key {existing} already registered at {self.provider}")
        else:
            key = made.add(self.add_key(machine, names, public_key_of(machine.ssh_private_key)))
            self.log(f"Registered the machine's own SSH key as {key.name} ({key.id})")
        sources = self._firewall_sources(machine)
        firewall = None
        if self.firewall_first:
            firewall = made.add(self.add_firewall(machine, names, sources, None))
        vm = made.add(self.add_vm(machine, names, key, firewall))
        self.log(
            f"Created {self.vm_noun} {vm.name} ({vm.id}) with {self.tag_noun} naming this "
            f"dashboard ({names.instance}) and the machine"
        )
        if firewall is None:
            firewall = made.add(self.add_firewall(machine, names, sources, vm))
        self.log(f"Firewall {firewall.name} ({firewall.id}) applied")

    def _firewall_sources(self, machine: Machine) -> list[str]:
        ports = " and ".join(str(p) for p in sorted({machine.ssh_port, machine.engine_port}))
        sources = parse_sources(self.settings.get("dashboard_address", ""))
        if sources:
            self.log(f"The firewall opens only {ports} (SSH, Docker) to {', '.join(sources)}")
            return sources
        self.log(
            f"The firewall opens only {ports} (SSH, Docker), to anyone: the account has no "
            "dashboard address to narrow it to (Docker still requires TLS client certificates)"
        )
        return ANYWHERE

    def _undo(self, machine: Machine, names: Names, made: Made, error: Exception) -> CloudError:
        reason = str(error) or error.__class__.__name__
        if not made.resources:
            return CloudError(f"{reason} (nothing had been made at {self.provider})")
        what = made.describe(self._noun)
        self.log(f"Create failed: {reason}")
        self.log(f"Deleting what this create made at {self.provider}: {what}")
        try:
            self._delete_all(machine, names, made)
        except CloudError as cleanup:
            return CloudError(f"{reason}; deleting what it had made failed too: {cleanup}")
        return CloudError(
            f"{reason}. Deleted what this create had made ({what}): nothing of "
            f"{machine.name} is left at {self.provider}"
        )

    # -- waiting -----------------------------------------------------------------------------
    def _wait_running(self, machine: Machine, vm_id: str) -> VM:
        running = machine.State.RUNNING
        return self._wait_vm(
            machine,
            vm_id,
            "running with a public IPv4 address",
            lambda vm: vm.state == running and bool(vm.ipv4),
        )

    def _wait_vm(self, machine: Machine, vm_id: str, goal: str, done: Callable[[VM], bool]):
        timeout = settings.CLOUD_BOOT_TIMEOUT
        started = last_said = time.monotonic()
        self.log(f"Waiting for {self.vm_noun} {vm_id} to be {goal}")
        while True:
            vm = self._vm(machine, vm_id)
            if done(vm):
                self.log(f"{self.vm_noun.capitalize()} {vm_id} is {vm.status} at {vm.ipv4 or '-'}")
                return vm
            waited = time.monotonic() - started
            if waited > timeout:
                raise CloudError(
                    f"{self.provider} {self.vm_noun} {vm_id} was not {goal} after {timeout} s "
                    f"(it is {vm.status}, address {vm.ipv4 or 'none'})"
                )
            if time.monotonic() - last_said >= PROGRESS_EVERY:
                self.log(f"Still waiting ({waited:.0f} s): {self.vm_noun} {vm_id} is {vm.status}")
                last_said = time.monotonic()
            time.sleep(settings.CLOUD_POLL_INTERVAL)

    def _wait_ssh(self, machine: Machine) -> None:
        addr = self.ssh_address(machine)
        self.log(f"Waiting for SSH on {addr.host}:{addr.port}")
        started = time.monotonic()
        try:
            with wait_for_ssh(
                addr.host,
                addr.port,
                addr.user,
                machine.ssh_private_key,
                machine.ssh_host_key,
                timeout=settings.CLOUD_SSH_TIMEOUT,
            ) as session:
                machine.ssh_host_key = session.host_key
        except SSHError as e:
            raise CloudError(str(e)) from None
        self.log(f"SSH answers after {time.monotonic() - started:.1f} s")

    # -- the VM ------------------------------------------------------------------------------
    def _vm(self, machine: Machine, vm_id: str | None = None) -> VM:
        vm_id = vm_id or Made(machine).id_of("vm")
        if not vm_id:
            raise CloudError(
                f"{machine.name} has no {self.vm_noun} at {self.provider} (none was made, or "
                "a failed create deleted it)"
            )
        cached = getattr(self, "_seen", None)
        if cached and cached[0] == vm_id and time.monotonic() - cached[1] < 1:
            return cached[2]  # state() then ip() in one health check: one API call
        vm = self.find_vm(vm_id)
        if vm is None:
            raise CloudError(
                f"The {self.vm_noun} {vm_id} of {machine.name} no longer exists at "
                f"{self.provider} (deleted outside dockerdash?)"
            )
        self._seen = (vm_id, time.monotonic(), vm)
        return vm

    def state(self, machine: Machine) -> str:
        self._observing = True
        return self._vm(machine).state

    def ip(self, machine: Machine) -> str:
        self._observing = True
        return self._vm(machine).ipv4

    def ssh_address(self, machine: Machine) -> SSHAddress:
        return SSHAddress(machine.ip, machine.ssh_port, machine.ssh_user)

    # -- power ----------------------------------------------------------------------------------
    def start(self, machine: Machine) -> None:
        self._power(machine, "on")

    def restart(self, machine: Machine) -> None:
        self._power(machine, "reboot")

    def kill(self, machine: Machine) -> None:
        self._power(machine, "off")

    def stop(self, machine: Machine) -> None:
        """A clean shutdown; a VM still on after a while is powered off (as the providers
        advise: a shutdown request may be ignored by the guest)."""
        vm = self._vm(machine)
        if vm.state == machine.State.STOPPED:
            self.log(f"{self.vm_noun.capitalize()} {vm.id} is already off")
            return
        self._act(vm.id, "shutdown")
        deadline = time.monotonic() + SHUTDOWN_GRACE
        while self._vm(machine, vm.id).state != machine.State.STOPPED:
            if time.monotonic() > deadline:
                self.log(f"Still on after {SHUTDOWN_GRACE} s of shutdown: powering it off")
                self._power(machine, "off")
                return
            time.sleep(settings.CLOUD_POLL_INTERVAL)

    def _power(self, machine: Machine, action: str) -> None:
        vm = self._vm(machine)
        noun = self.vm_noun.capitalize()
        if action == "reboot" and vm.state == machine.State.STOPPED:
            action = "on"  # rebooting what is off is starting it
        if action == "on" and vm.state == machine.State.RUNNING:
            self.log(f"{noun} {vm.id} is already running")
        elif action == "off" and vm.state == machine.State.STOPPED:
            self.log(f"{noun} {vm.id} is already off")
            return
        else:
            self._act(vm.id, action)
        if action == "off":
            stopped = machine.State.STOPPED
            self._wait_vm(machine, vm.id, "off", lambda v: v.state == stopped)
            return
        vm = self._wait_running(machine, vm.id)
        machine.ip = vm.ipv4
        self._wait_ssh(machine)

    def _act(self, vm_id: str, action: str) -> None:
        verb = {"on": "power on", "off": "power off", "shutdown": "shut down"}.get(action, action)
        self.log(f"Asking {self.provider} to {verb} {self.vm_noun} {vm_id}")
        self.power(vm_id, action)
        self._seen = None  # what was seen before the action says nothing about after it

    # -- removal -----------------------------------------------------------------------------
    def remove(self, machine: Machine) -> None:
        self._delete_all(machine, Names.of(machine), Made(machine))

    def _delete_all(self, machine: Machine, names: Names, made: Made) -> None:
        targets = {(r.kind, r.id): r for r in made.resources}
        for found in self.leftovers(machine, names):
            targets.setdefault((found.kind, found.id), found)
        order = {kind: n for n, kind in enumerate(self.delete_order)}
        for resource in sorted(targets.values(), key=lambda r: order.get(r.kind, len(order))):
            if self.delete(resource) is not False:
                self.log(f"Deleted {self._noun(resource.kind)} {_named(resource)}")
        left = self.leftovers(machine, names)
        if left:
            listed = ", ".join(f"{self._noun(r.kind)} {_named(r)}" for r in left)
            raise CloudError(
                f"{self.provider} still lists {listed} for {machine.name} after deleting it: "
                "delete it in the provider's console"
            )
        made.clear()
        self.log(f"{self.provider} lists nothing with the {self.tag_noun} of {machine.name} now")

    def _noun(self, kind: str) -> str:
        return {"vm": self.vm_noun, "key": "SSH key"}.get(kind, kind)


def _named(resource: Resource) -> str:
    if resource.name in ("", resource.id):
        return resource.id
    return f"{resource.name} ({resource.id})"
