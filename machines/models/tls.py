"""The dashboard's certificate authorities and the client certificates users download."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from machines.fields import EncryptedTextField


class CertificateAuthority(models.Model):
    """The dashboard's CA, and the client certificate it issued to the dashboard and CLI."""

    name = models.CharField(max_length=64, unique=True, default="default")
    cert = models.TextField()
    key = EncryptedTextField()
    client_cert = models.TextField()
    client_key = EncryptedTextField()
    expires_at = models.DateTimeField()
    client_expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "certificate authority"
        verbose_name_plural = "certificate authorities"

    def __str__(self) -> str:
        return self.name


class ClientCA(models.Model):
    """The users' client CA: it signs the certificates operators download for the docker CLI.

    Engines trust it next to the dashboard's own CA (their --tlscacert is a bundle of both);
    "revoke all user certificates" replaces it, so that every certificate it signed stops
    working once each engine's bundle is rotated. `trusted_by` records which engines hold it
    in their running configuration, as the last successful provisioning wrote it.
    """

    name = models.CharField(max_length=64, unique=True, default="current")
    cert = models.TextField()
    key = EncryptedTextField(blank=True)  # emptied on revocation: it never signs again
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    trusted_by = models.ManyToManyField(
        "machines.Machine", blank=True, related_name="trusted_client_cas"
    )

    class Meta:
        verbose_name = "users' client CA"
        verbose_name_plural = "users' client CAs"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class ClientCertificate(models.Model):
    """A client certificate issued to a user for one download (its key was never stored)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    username = models.CharField(max_length=150)  # who, even after the user is deleted
    machine = models.ForeignKey(
        "machines.Machine",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="client_certificates",
    )
    machine_name = models.CharField(max_length=63)
    issuer = models.ForeignKey(
        ClientCA, null=True, blank=True, on_delete=models.SET_NULL, related_name="issued"
    )
    serial = models.CharField(max_length=64, unique=True)
    issued_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-issued_at", "-id"]
        permissions = [("revoke_clientcertificate", "Can revoke every user's client certificate")]
        indexes = [models.Index(fields=["user", "machine", "issued_at"])]

    def __str__(self) -> str:
        return f"{self.serial} ({self.username}, {self.machine_name})"

    @property
    def expired(self) -> bool:
        return self.expires_at <= timezone.now()
