"""Teams and machine groups: who may do what on which machines, beside the global roles.

A machine group is a tag selector (`env=prod`, or `team` for "has the tag") and/or an
explicit set of machines; a team has members and, per machine group, a role. What a user
may do on a machine is the highest of their global role and every role their teams hold on
a group containing it (machines/services/rights.py computes it, in one place).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from machines.validation import tag_filter

ROLE_CHOICES = [("viewer", "viewer"), ("operator", "operator"), ("admin", "admin")]


class MachineGroup(models.Model):
    name = models.CharField(max_length=100, unique=True)
    # "key=value" or "key" (has the tag); empty: only the machines listed.
    selector = models.CharField(max_length=200, blank=True)
    machines = models.ManyToManyField("machines.Machine", blank=True, related_name="+")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            tag_filter(self.selector)
        except ValidationError as e:
            raise ValidationError({"selector": e.messages}) from None

    @property
    def selector_pair(self) -> tuple[str, str, bool] | None:
        return tag_filter(self.selector)


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="teams")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TeamRole(models.Model):
    """A team's role on one machine group."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="roles")
    group = models.ForeignKey(MachineGroup, on_delete=models.CASCADE, related_name="team_roles")
    role = models.CharField(max_length=16, choices=ROLE_CHOICES)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "group"], name="one_role_per_team_and_group")
        ]

    def __str__(self) -> str:
        return f"{self.team} is {self.role} of {self.group}"
