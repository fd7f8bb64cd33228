from __future__ import annotations

import contextlib
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

from machines.drivers import BaseDriver, driver_class, kind_choices
from machines.fields import EncryptedJSONField, EncryptedTextField, OptionsJSONField
from machines.lib.errors import DriverError
from machines.validation import (
    strip_url_credentials,
    validate_engine_env,
    validate_engine_labels,
    validate_engine_opts,
    validate_engine_url,
    validate_host,
    validate_ssh_user,
    validate_storage_driver,
    validate_tags,
    validate_text_list,
)

# docker-machine's own rule for host names (\A...\Z: '$' would let a final newline through).
MACHINE_NAME_RE = r"\A[a-zA-Z0-9][a-zA-Z0-9\-\.]*\Z"
machine_name_validator = RegexValidator(
    MACHINE_NAME_RE,
    "Use letters, digits, '-' and '.', starting with a letter or digit (as docker-machine).",
)
port_validators = [MinValueValidator(1), MaxValueValidator(65535)]


class Driver(models.Model):
    """A configured provider: a kind of driver plus its settings and secrets."""

    name = models.CharField(max_length=100, unique=True, validators=[machine_name_validator])
    kind = models.CharField(max_length=32, choices=kind_choices)
    settings = models.JSONField(default=dict, blank=True)
    secrets = EncryptedJSONField(blank=True, default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def get_driver(self) -> BaseDriver:
        return driver_class(self.kind)(self.settings, self.secrets)

    def clean(self) -> None:
        # The admin edits settings as JSON: the driver's settings form checks them here too.
        if self.kind in dict(kind_choices()) and isinstance(self.settings, dict):
            try:
                driver_class(self.kind).validate_settings(self.settings)
            except ValidationError as e:
                raise ValidationError({"settings": e.messages}) from None


class Machine(models.Model):
    class State(models.TextChoices):
        NONE = "none", "None"
        STARTING = "starting", "Starting"
        RUNNING = "running", "Running"
        STOPPING = "stopping", "Stopping"
        STOPPED = "stopped", "Stopped"
        PAUSED = "paused", "Paused"
        ERROR = "error", "Error"
        TIMEOUT = "timeout", "Timeout"

    name = models.CharField(max_length=63, unique=True, validators=[machine_name_validator])
    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, related_name="machines")
    driver_options = OptionsJSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.NONE)

    ip = models.CharField("IP", max_length=255, blank=True, validators=[validate_host])
    engine_url = models.CharField(max_length=255, blank=True, validators=[validate_engine_url])
    engine_port = models.PositiveIntegerField(default=2376, validators=port_validators)

    ssh_user = models.CharField(max_length=64, default="root", validators=[validate_ssh_user])
    ssh_port = models.PositiveIntegerField(default=22, validators=port_validators)
    ssh_host_key = models.TextField(blank=True, help_text="Pinned on first contact.")
    ssh_private_key = EncryptedTextField(blank=True)

    # Engine options, as docker-machine's --engine-* flags.
    engine_labels = models.JSONField(default=list, blank=True, validators=[validate_engine_labels])
    engine_insecure_registries = models.JSONField(
        default=list, blank=True, validators=[validate_text_list]
    )
    engine_registry_mirrors = models.JSONField(
        default=list, blank=True, validators=[validate_text_list]
    )
    engine_storage_driver = models.CharField(
        max_length=32, blank=True, validators=[validate_storage_driver]
    )
    engine_env = models.JSONField(default=list, blank=True, validators=[validate_engine_env])
    engine_opts = models.JSONField(
        default=list,
        blank=True,
        help_text="Extra daemon flags.",
        validators=[validate_engine_opts],
    )
    engine_install_url = models.URLField(blank=True)
    tls_san = models.JSONField(
        "extra TLS SANs", default=list, blank=True, validators=[validate_text_list]
    )

    # The engine's server certificate (issued by the dashboard's CA).
    tls_server_cert = models.TextField(blank=True)
    tls_server_key = EncryptedTextField(blank=True)
    tls_server_expires_at = models.DateTimeField(null=True, blank=True)

    tls_server_serial = models.CharField(max_length=64, blank=True)

    # What was last observed; pages never wait on a host for these.
    docker_version = models.CharField(max_length=64, blank=True)
    engine_reachable = models.BooleanField(null=True, blank=True)
    engine_info = models.JSONField(default=dict, blank=True)  # OS, kernel, CPUs, memory, ...
    last_seen = models.DateTimeField(null=True, blank=True)
    last_checked = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)  # one sentence a user can act on
    last_error_detail = models.TextField(blank=True)  # the library's own text behind it
    response_time_ms = models.PositiveIntegerField(null=True, blank=True)

    tags = models.JSONField(default=dict, blank=True, validators=[validate_tags])

    # Which runner watches this machine's engine and checks its health, until when.
    lease_owner = models.CharField(max_length=128, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("operate_machine", "Can act on machines and their containers")]
        indexes = [models.Index(fields=["state"])]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("machines:detail", args=[self.name])

    def get_driver(self) -> BaseDriver:
        return self.driver.get_driver()

    @property
    def tls_engine_url(self) -> str:
        """Where a provisioned engine listens: the machine's IP (bracketed when IPv6)."""
        return self.url_of("", self.ip, self.engine_port)

    @property
    def url(self) -> str:
        return self.url_of(self.engine_url, self.ip, self.engine_port)

    @staticmethod
    def url_of(engine_url: str, ip: str, engine_port: int) -> str:
        """`url` from the stored fields alone (a list read with values(), no instances)."""
        if engine_url or not ip:
            return engine_url
        host = f"[{ip}]" if ":" in ip else ip
        return f"tcp://{host}:{engine_port}"

    @property
    def driver_class(self) -> type[BaseDriver]:
        """The driver's class: its capabilities, without settings (cheap, for pages)."""
        return driver_class(self.driver.kind)

    def observe(self) -> str:
        """Ask the driver for the host's state (and IP) now, store it, and return it.
        Raises what the driver raises: callers decide whether a failure is an error state."""
        driver = self.get_driver()
        self.state = driver.state(self)
        with contextlib.suppress(DriverError):
            self.ip = driver.ip(self) or self.ip
        self.last_checked = timezone.now()
        if self.state == self.State.RUNNING:
            self.last_seen = self.last_checked
        self.save()
        return self.state

    def record_failure(self, message: str, details: str = "") -> None:
        """What an operation that failed leaves on its machine: the error (in words, with
        the library's text as details), and the state observed now (or `error`, when the
        host is the very thing that is broken)."""
        self.refresh_from_db()
        self.last_error = message
        self.last_error_detail = details if details.partition(": ")[2] != message else ""
        try:
            self.observe()
        except Exception as e:
            self.state = self.State.ERROR
            self.last_error = f"{message} (state unknown: {e})"
            self.last_checked = timezone.now()
            self.save()

    @property
    def stale(self) -> bool:
        """What is stored was observed longer ago than a few health-check rounds (is a
        runner checking it?): pages say how old it is rather than pass it off as now."""
        if self.last_checked is None:
            return self.state != self.State.NONE
        limit = timedelta(seconds=3 * settings.HEALTH_CHECK_INTERVAL)
        return timezone.now() - self.last_checked > limit

    @property
    def active_operation(self) -> Operation | None:
        # A list of machines fetches them all in one query (machines.models.rows.with_operations).
        if "_active_operation" in self.__dict__:
            return self.__dict__["_active_operation"]
        return self.operations.filter(status__in=Operation.ACTIVE).first()

    @property
    def tag_list(self) -> list[str]:
        return [f"{k}={v}" if v else k for k, v in sorted(self.tags.items())]


class Operation(models.Model):
    """A durable record of one action on a machine, with its log."""

    class Kind(models.TextChoices):
        CREATE = "create", "Create"
        PROVISION = "provision", "Provision"
        START = "start", "Start"
        STOP = "stop", "Stop"
        RESTART = "restart", "Restart"
        KILL = "kill", "Kill"
        REMOVE = "rm", "Remove"
        REGENERATE_CERTS = "regenerate-certs", "Regenerate certificates"
        UPGRADE = "upgrade", "Upgrade"
        ROTATE_CLIENT_CA = "rotate-client-ca", "Rotate client CA"
        CLUSTER_CREATE = "cluster-create", "Create a cluster"
        CLUSTER_JOIN = "cluster-join", "Join a cluster"
        STACK_DEPLOY = "stack-deploy", "Deploy a stack"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.PENDING, Status.RUNNING)

    # SET_NULL: the history (and an `rm` being watched) outlives the machine.
    machine = models.ForeignKey(
        Machine, null=True, blank=True, on_delete=models.SET_NULL, related_name="operations"
    )
    machine_name = models.CharField(max_length=63)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    args = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    requested_via = models.CharField(max_length=16, default="web")  # web, cli, system
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=128, blank=True)
    cancel_requested = models.BooleanField(default=False)
    step = models.PositiveIntegerField(default=0)
    steps_total = models.PositiveIntegerField(default=0)
    step_name = models.CharField(max_length=100, blank=True)
    error = models.TextField(blank=True)
    # One of a bulk action's operations (n done / failed / running on its summary).
    bulk = models.ForeignKey(
        "BulkAction", null=True, blank=True, on_delete=models.SET_NULL, related_name="operations"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One mutating operation per machine at a time, enforced by the database so
            # that two clicks, two web processes or the CLI can never run one twice.
            models.UniqueConstraint(
                fields=["machine"],
                condition=models.Q(status__in=["pending", "running"]),
                name="one_active_operation_per_machine",
            )
        ]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.machine_name} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    def append_log(self, texts: list[str], *, kind: str = "") -> list[OperationLogLine]:
        """Store lines after the last one (one sequence rule for every writer); the caller
        publishes them. `kind` marks step headings and the outcome, so that the CLI and the
        pages need not recognise them by their text."""
        last = self.log_lines.order_by("-seq").values_list("seq", flat=True).first() or 0
        lines = [
            OperationLogLine(
                operation=self, seq=last + i, step=self.step_name, kind=kind, text=_capped(text)
            )
            for i, text in enumerate(texts, 1)
        ]
        return OperationLogLine.objects.bulk_create(lines)

    def interrupt(self, error: str, line: str) -> bool:
        """Mark a running operation whose runner went away as interrupted (once: False when
        another process got there first), with `line` as the last line of its log."""
        # One transaction: whoever sees the status also sees the line that explains it.
        with transaction.atomic():
            if not Operation.objects.filter(pk=self.pk, status=self.Status.RUNNING).update(
                status=self.Status.INTERRUPTED, finished_at=timezone.now(), error=error
            ):
                return False
            self.refresh_from_db()
            self.append_log([line], kind=OperationLogLine.Kind.OUTCOME)
        return True

    @property
    def duration(self):
        if self.started_at:
            return (self.finished_at or timezone.now()) - self.started_at
        return None


# A log line holds what a remote command printed: at most this many bytes of it.
LOG_LINE_BYTES = 4096


def _capped(text: str) -> str:
    """A log line of at most LOG_LINE_BYTES bytes (UTF-8), and a mark where it was cut; the
    credentials of any URL in it masked (viewers read operation logs)."""
    raw = (text := strip_url_credentials(text)).encode()
    if len(raw) <= LOG_LINE_BYTES:
        return text
    return raw[:LOG_LINE_BYTES].decode(errors="ignore") + f" … [line cut at {LOG_LINE_BYTES} bytes]"


class OperationLogLine(models.Model):
    class Kind(models.TextChoices):
        DETAIL = "", "Detail"
        STEP = "step", "Step"
        OUTCOME = "outcome", "Outcome"

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="log_lines")
    seq = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now)
    step = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.DETAIL, blank=True)
    text = models.TextField()

    class Meta:
        ordering = ["operation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["operation", "seq"], name="log_line_order"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.text}"


# TLS (tls.py), inside engines (engine.py), who did what (audit.py), bulk, swarm clusters, ...
from machines.models import alerts, teams  # noqa: E402, F401 (machines.models.alerts, machines.models.teams)
from machines.models.audit import AuditEntry  # noqa: E402
from machines.models.bulk import BulkAction  # noqa: E402
from machines.models.engine import Container, EngineObject  # noqa: E402
from machines.models.runners import RunnerProcess  # noqa: E402
from machines.models.swarm import Cluster, ClusterNode, Stack, StackDeploy  # noqa: E402, F401
from machines.models.tls import CertificateAuthority, ClientCA, ClientCertificate  # noqa: E402
from machines.models.tokens import ApiToken  # noqa: E402
from machines.models.webhooks import Webhook, WebhookDelivery  # noqa: E402

__all__ = [
    "ApiToken",
    "AuditEntry",
    "BulkAction",
    "CertificateAuthority",
    "ClientCA",
    "ClientCertificate",
    "Container",
    "Driver",
    "EngineObject",
    "Machine",
    "Operation",
    "OperationLogLine",
    "RunnerProcess",
    "Webhook",
    "WebhookDelivery",
    "machine_name_validator",
]
