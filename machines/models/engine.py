"""The stored snapshot of an engine's containers, images, volumes and networks, kept by its
watcher."""

from __future__ import annotations

from django.db import models


class EngineObject(models.Model):
    """One image, volume or network of a machine's engine, as its list API last showed it."""

    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        VOLUME = "volume", "Volume"
        NETWORK = "network", "Network"

    machine = models.ForeignKey(
        "machines.Machine", on_delete=models.CASCADE, related_name="engine_objects"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # The image or network ID, or the volume's name (volumes have no other ID).
    object_id = models.CharField(max_length=255)
    # What a person calls it: the image's first tag, the volume's or network's name.
    name = models.CharField(max_length=255)
    size = models.BigIntegerField(null=True, blank=True)
    created = models.DateTimeField(null=True, blank=True)
    # The rest of a row (tags, driver, scope, subnet, ...), as the templates show it.
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["machine", "kind", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["machine", "kind", "object_id"], name="one_row_per_engine_object"
            )
        ]

    def __str__(self) -> str:
        return f"{self.machine_id}/{self.kind}/{self.name}"

    @property
    def short_id(self) -> str:
        return self.object_id.removeprefix("sha256:")[:12]


class Container(models.Model):
    """The stored snapshot of one container of a machine's engine (`docker ps -a`)."""

    machine = models.ForeignKey(
        "machines.Machine", on_delete=models.CASCADE, related_name="containers"
    )
    container_id = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    image = models.CharField(max_length=255, blank=True)
    command = models.TextField(blank=True)
    state = models.CharField(max_length=32, blank=True)  # running, exited, paused, ...
    status = models.CharField(max_length=255, blank=True)  # "Up 3 minutes (healthy)"
    health = models.CharField(max_length=32, blank=True)
    ports = models.TextField(blank=True)
    created = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["machine", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["machine", "container_id"], name="one_row_per_container"
            )
        ]

    def __str__(self) -> str:
        return f"{self.machine_id}/{self.name}"
