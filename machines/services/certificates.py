"""The users' client certificates as an admin acts on them: revoke them all (a new users'
client CA), and roll that CA out to every machine."""

from __future__ import annotations

from machines.audit import log as audit
from machines.models import Machine, Operation
from machines.operations import actions as operations
from machines.pki import certs, usercerts
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


def issue_download(user, machine: Machine) -> dict[str, str]:
    """What a user downloads for the docker CLI (the page's zip, the API's bundle): the
    engine's CA, a new certificate and key of their own; recorded in the audit log."""
    rights.require_on(user, machine, rights.OPERATE, "download client certificates")
    record, cert, key_pem = usercerts.issue(user, machine)
    audit.record(
        audit.Action.CERTIFICATE,
        "downloaded client certificates",
        user=user,
        machine=machine,
        detail=f"serial {record.serial}, expires {record.expires_at:%Y-%m-%d}",
    )
    return {
        "ca.pem": certs.ca_for_machine(machine).cert,
        "cert.pem": cert,
        "key.pem": key_pem,
        "expires_at": record.expires_at.isoformat(),
    }
