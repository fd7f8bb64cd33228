"""Clusters (Docker Swarm mode across machines) and the stacks deployed to them.

A cluster's join tokens are the keys to it: stored encrypted, shown to nobody, rotated on
demand. A stack is a compose file and its variables (secrets encrypted); each deploy keeps
what was deployed, by whom and when, so an earlier one can be deployed again.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from machines.fields import EncryptedJSONField, EncryptedTextField

# Swarm's own rule for stack and cluster names (they prefix services and networks).
name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,40}$",
    "Use 1 to 41 lower-case letters, digits, '-' or '_', starting with a letter or digit.",
)
GIT_URL_RE = r"^(https?|ssh)://[A-Za-z0-9._~:@%/+-]+$"
validate_git_url = RegexValidator(GIT_URL_RE, "Use an http(s):// or ssh:// repository URL.")
validate_git_ref = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$", "Not a branch name (letters, digits, . _ / -)."
)
validate_repo_path = RegexValidator(
    r"^(?!/)(?!.*\.\.)[A-Za-z0-9._/-]{1,200}$",
    "A path inside the repository (letters, digits, . _ / -; no '..').",
)
ENV_NAME = RegexValidator(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", "Not a variable name.")


class Cluster(models.Model):
    name = models.CharField(max_length=41, unique=True, validators=[name_validator])
    worker_token = EncryptedTextField(blank=True)
    manager_token = EncryptedTextField(blank=True)
    tokens_rotated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def managers(self):
        return self.nodes.filter(role=ClusterNode.Role.MANAGER).select_related("machine")


class ClusterNode(models.Model):
    class Role(models.TextChoices):
        MANAGER = "manager", "Manager"
        WORKER = "worker", "Worker"

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="nodes")
    # A machine is in one cluster at most (an engine is in one swarm).
    machine = models.OneToOneField(
        "machines.Machine", on_delete=models.CASCADE, related_name="cluster_node"
    )
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.WORKER)
    node_id = models.CharField(max_length=64, blank=True)  # the swarm's ID, once joined
    joined_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["cluster", "-role", "machine__name"]

    def __str__(self) -> str:
        return f"{self.machine.name} ({self.role} of {self.cluster.name})"


class Stack(models.Model):
    class FailureAction(models.TextChoices):
        PAUSE = "pause", "Pause the update"
        CONTINUE = "continue", "Continue"
        ROLLBACK = "rollback", "Roll back"

    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="stacks")
    name = models.CharField(max_length=41, validators=[name_validator])
    compose = models.TextField(
        blank=True, help_text="A compose file (version 3) as `docker stack` reads."
    )
    # Or a git repository the dashboard fetches the compose file from at each deploy.
    git_url = models.CharField(
        "Git repository", max_length=500, blank=True, validators=[validate_git_url]
    )
    git_branch = models.CharField(
        max_length=100, blank=True, default="main", validators=[validate_git_ref]
    )
    git_path = models.CharField(
        "Path of the compose file",
        max_length=200,
        blank=True,
        default="docker-compose.yml",
        validators=[validate_repo_path],
    )
    deploy_key = EncryptedTextField(blank=True)  # an SSH private key, for ssh:// URLs
    env = models.JSONField(default=dict, blank=True)  # plain variables
    secret_env = EncryptedJSONField(blank=True, default=dict)  # never shown back
    # Swarm's own update_config, written into every service that does not set its own.
    update_parallelism = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    update_delay = models.PositiveIntegerField(default=5, validators=[MaxValueValidator(3600)])
    update_failure_action = models.CharField(
        max_length=8, choices=FailureAction.choices, default=FailureAction.PAUSE
    )
    # The signed webhook URL's key: whoever holds the URL may redeploy, nothing else.
    webhook_key = models.CharField(max_length=64, default=secrets.token_urlsafe, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["cluster", "name"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "name"], name="unique_stack_per_cluster")
        ]

    def __str__(self) -> str:
        return f"{self.cluster.name}/{self.name}"

    def clean(self) -> None:
        for name in [*self.env, *self.secret_env]:
            try:
                ENV_NAME(name)
            except ValidationError:
                raise ValidationError({"env": f"{name!r} is not a variable name."}) from None
        if not self.compose.strip() and not self.git_url:
            raise ValidationError({"compose": "Give a compose file or a git repository."})
        if set(self.env) & set(self.secret_env):
            raise ValidationError({"env": "A variable is either plain or secret, not both."})

    def variables(self) -> dict[str, str]:
        return {**self.env, **self.secret_env}


class StackDeploy(models.Model):
    """One deploy: exactly what went to the cluster (the compose file, the variables'
    names, the image per service), who asked and how, and how it ended."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="deploys")
    compose = models.TextField()
    env = models.JSONField(default=dict, blank=True)
    secret_env = EncryptedJSONField(blank=True, default=dict)
    images = models.JSONField(default=dict, blank=True)  # service -> image
    diff = models.JSONField(default=list, blank=True)  # lines in words
    reason = models.CharField(max_length=100, blank=True)  # "deploy", "rollback to #3", ...
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    requested_via = models.CharField(max_length=16, default="web")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    output = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"deploy #{self.pk} of {self.stack}"
