"""API tokens: a user's key for the REST API and the remote `dockerdash` client.

The secret is shown once and stored as its SHA-256 (a random 32-byte secret needs no slow
hash: nobody guesses it). A token's scope is a ceiling on its user's role, never above it,
and an optional tag selector limits the machines it sees and acts on.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from machines.validation import parse_tag

PREFIX = "ddt_"


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiToken(models.Model):
    class Scope(models.TextChoices):
        READ = "read", "Read"
        OPERATE = "operate", "Operate"
        ADMIN = "admin", "Admin"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    # The public part of the token (its first characters): found by it, shown in lists.
    key = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.READ)
    # "key=value" or "key" (has the tag): the machines this token sees; empty: all.
    selector = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({PREFIX}{self.key}…)"

    def clean(self) -> None:
        if self.selector:
            try:
                parse_tag(self.selector)
            except ValueError as e:
                raise ValidationError({"selector": str(e)}) from None
        if self.expires_at and self.expires_at <= timezone.now() and self.pk is None:
            raise ValidationError({"expires_at": "The expiry must be in the future."})

    @classmethod
    def new_secret(cls) -> tuple[str, str]:
        """(key, the whole token as the user gets it once)."""
        key = secrets.token_hex(6)
        return key, f"{PREFIX}{key}_{secrets.token_urlsafe(32)}"

    def matches(self, token: str) -> bool:
        return hmac.compare_digest(self.digest, digest_of(token))

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "active"

    @property
    def selector_pair(self) -> tuple[str, str, bool] | None:
        """(key, value, whether a value was given), as the list page's tag filter."""
        if not self.selector:
            return None
        key, value = parse_tag(self.selector)
        return key, value, "=" in self.selector
