"""The users' client certificates as an admin acts on them: revoke them all (a new users'
client CA), and roll that CA out to every machine."""

from __future__ import annotations

from machines.models import Operation
from machines.operations import actions as operations
from machines.pki import usercerts
from machines.services import rights

REVOKE = "machines.revoke_clientcertificate"


def revoke_all(user) -> int:
    """Revoke every user's client certificate (a new users' client CA); how many were."""
    rights.require(user, REVOKE, "revoke client certificates")
    _, count = usercerts.revoke_all()
    return count


def rotate_client_ca(user, *, via: str = "web") -> tuple[list[Operation], list[str]]:
    """A rotation on every machine not yet running with the current users' CA; the names of
    the busy machines left for a retry."""
    rights.require(user, REVOKE, "rotate the users' client CA")
    return operations.request_client_ca_rotation(user=user, via=via)
