"""Provisioning: what `docker-machine create` did after the host existed, as step functions.

The orchestrator (operations.ACTIONS) declares which steps an action runs, in which order;
each step here does one thing, logs what it found and did with `ctx.log()`, and shares what
later steps need through the Context (the SSH session, the host's facts, the CA). No secret
is ever logged: files travel inside scripts on stdin and only their paths, serials,
fingerprints and dates are written to the log.

`engine` and `ssh` (the Docker SDK, paramiko) are imported where they are used: the CLI's quick
commands (`machine env`, `machine config`) import `certs` from this package and must start fast.
"""

from __future__ import annotations

from .host import (
    configure,
    connect,
    detect,
    detect_configured,
    install,
    purge,
    report_upgrade,
    restart_if_changed,
    ssh_target,
    upgrade_docker,
    wait_for_api,
)
from .osinfo import ProvisionError
from .tls import (
    check_engine,
    heal_ip_change,
    install_certs,
    install_trust,
    ip_change,
    issue,
    issue_new,
    report_kept,
    report_retired_cas,
    restart_keeping_containers,
)

__all__ = [
    "ProvisionError",
    "check_engine",
    "configure",
    "connect",
    "detect",
    "detect_configured",
    "heal_ip_change",
    "install",
    "install_certs",
    "install_trust",
    "ip_change",
    "issue",
    "issue_new",
    "purge",
    "report_kept",
    "report_retired_cas",
    "report_upgrade",
    "restart_if_changed",
    "restart_keeping_containers",
    "ssh_target",
    "upgrade_docker",
    "wait_for_api",
]
