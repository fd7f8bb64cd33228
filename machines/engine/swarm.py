"""Swarm mode on machines' engines, through the Docker API (each call over the machine's
TLS client): init, join, leave, the join tokens, nodes and their changes, and what runs.

Nothing here stores anything: the caller (operations/, services/) keeps the cluster's rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import docker.errors

from machines.engine import clients
from machines.lib.errors import DriverError

if TYPE_CHECKING:
    from machines.models import Machine

SWARM_PORT = 2377
TIMEOUT = 60


def _client(machine: Machine):
    return clients.client_for_machine(machine, timeout=TIMEOUT)


def _words(error: docker.errors.APIError) -> str:
    return str(error.explanation or error).strip().rstrip(".")


def init(machine: Machine) -> dict:
    """Make the machine's engine the first manager of a new swarm, advertised at the
    machine's IP; its node ID and both join tokens."""
    client = _client(machine)
    try:
        client.swarm.init(advertise_addr=machine.ip, listen_addr=f"0.0.0.0:{SWARM_PORT}")
        client.swarm.reload()
        tokens = client.swarm.attrs["JoinTokens"]
        node_id = client.info()["Swarm"]["NodeID"]
    except docker.errors.APIError as e:
        raise DriverError(f"swarm init on {machine.name} failed: {_words(e)}") from None
    finally:
        client.close()
    return {"node_id": node_id, "worker": tokens["Worker"], "manager": tokens["Manager"]}


def join(machine: Machine, manager_ip: str, token: str) -> str:
    """Join the machine's engine to the swarm of the manager at manager_ip; its node ID."""
    client = _client(machine)
    try:
        client.swarm.join(
            remote_addrs=[f"{manager_ip}:{SWARM_PORT}"],
            join_token=token,
            advertise_addr=machine.ip,
            listen_addr=f"0.0.0.0:{SWARM_PORT}",
        )
        return client.info()["Swarm"]["NodeID"]
    except docker.errors.APIError as e:
        raise DriverError(f"{machine.name} could not join the swarm: {_words(e)}") from None
    finally:
        client.close()


def leave(machine: Machine) -> None:
    """Leave whatever swarm the engine is in (forced: the last manager may leave too)."""
    client = _client(machine)
    try:
        client.swarm.leave(force=True)
    except docker.errors.APIError as e:
        if "not part of a swarm" not in _words(e):
            raise DriverError(f"{machine.name} could not leave its swarm: {_words(e)}") from None
    finally:
        client.close()


def rotate_tokens(manager: Machine) -> dict:
    client = _client(manager)
    try:
        client.swarm.reload()
        client.swarm.update(rotate_worker_token=True, rotate_manager_token=True)
        client.swarm.reload()
        tokens = client.swarm.attrs["JoinTokens"]
    except docker.errors.APIError as e:
        raise DriverError(f"Rotating the join tokens failed: {_words(e)}") from None
    finally:
        client.close()
    return {"worker": tokens["Worker"], "manager": tokens["Manager"]}


def node_row(node: dict) -> dict:
    """What the cluster page shows of a node (from the API's node object)."""
    spec, status = node.get("Spec", {}), node.get("Status", {})
    manager = node.get("ManagerStatus") or {}
    return {
        "id": node["ID"],
        "hostname": node.get("Description", {}).get("Hostname", ""),
        "role": spec.get("Role", ""),
        "availability": spec.get("Availability", ""),
        "state": status.get("State", ""),
        "address": status.get("Addr", ""),
        "leader": bool(manager.get("Leader")),
        "engine": node.get("Description", {}).get("Engine", {}).get("EngineVersion", ""),
    }


def nodes(manager: Machine) -> list[dict]:
    client = _client(manager)
    try:
        return sorted((node_row(n) for n in client.api.nodes()), key=lambda n: n["hostname"])
    finally:
        client.close()


def update_node(manager: Machine, node_id: str, **changes: str) -> None:
    """Change a node's availability (active, pause, drain) or role (manager, worker)."""
    client = _client(manager)
    try:
        node = client.api.inspect_node(node_id)
        spec = dict(node["Spec"])
        spec.update({k.capitalize(): v for k, v in changes.items()})
        client.api.update_node(node_id, node["Version"]["Index"], spec)
    except docker.errors.APIError as e:
        raise DriverError(f"Changing the node failed: {_words(e)}") from None
    finally:
        client.close()


def remove_node(manager: Machine, node_id: str) -> None:
    client = _client(manager)
    try:
        client.api.remove_node(node_id, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        raise DriverError(f"Removing the node failed: {_words(e)}") from None
    finally:
        client.close()
