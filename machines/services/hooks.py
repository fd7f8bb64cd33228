"""Webhooks as an admin manages them: register (the secret is made here and shown once),
enable again after a disable, remove; rights checked and every change audited."""

from __future__ import annotations

import secrets

from django.core.exceptions import ValidationError

from machines.audit import log as audit
from machines.models import Webhook
from machines.models.webhooks import EVENTS
from machines.services import rights
from machines.services.errors import InvalidInput
from machines.validation import one_line

KNOWN = [e for e, _ in EVENTS]


def register(user, url: str, events: list[str]) -> tuple[Webhook, str]:
    rights.require(user, "machines.add_webhook", "register webhooks")
    if not events or any(e not in KNOWN for e in events):
        raise InvalidInput(f"Choose one or more events of {', '.join(KNOWN)}.")
    secret = secrets.token_urlsafe(32)
    hook = Webhook(url=url.strip(), events=list(events), secret=secret, created_by=user)
    try:
        hook.full_clean()
    except ValidationError as e:
        raise InvalidInput(one_line(e)) from None
    hook.save()
    audit.record(audit.Action.WEBHOOK, "registered webhook", user=user, target=hook.url[:255])
    return hook, secret


def enable(user, hook: Webhook) -> None:
    rights.require(user, "machines.change_webhook", "enable webhooks")
    Webhook.objects.filter(pk=hook.pk).update(enabled=True, failures=0, disabled_reason="")
    audit.record(audit.Action.WEBHOOK, "enabled webhook", user=user, target=hook.url[:255])


def remove(user, hook: Webhook) -> None:
    rights.require(user, "machines.delete_webhook", "remove webhooks")
    hook.delete()
    audit.record(audit.Action.WEBHOOK, "removed webhook", user=user, target=hook.url[:255])
