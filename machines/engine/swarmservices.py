"""What a stack runs on a swarm, read from a manager: services with replicas running and
desired, and their tasks per node with state and error."""

from __future__ import annotations

from typing import TYPE_CHECKING

from machines.engine import clients

if TYPE_CHECKING:
    from machines.models import Machine

STACK_LABEL = "com.docker.stack.namespace"


def _ports(spec: dict) -> list[str]:
    ports = (spec.get("EndpointSpec") or {}).get("Ports") or []
    return sorted(
        f"{p.get('PublishedPort')}:{p.get('TargetPort')}/{p.get('PublishMode', 'ingress')}"
        for p in ports
    )


def service_spec(service: dict) -> dict:
    """A service as the diff compares it: image (without digest), replicas, env, ports."""
    spec = service["Spec"]
    container = spec.get("TaskTemplate", {}).get("ContainerSpec", {})
    mode = spec.get("Mode", {})
    replicas = mode.get("Replicated", {}).get("Replicas") if "Replicated" in mode else "global"
    return {
        "image": container.get("Image", "").split("@")[0],
        "replicas": replicas,
        "env": sorted(container.get("Env") or []),
        "ports": _ports(spec),
    }


def stack_state(manager: Machine, stack: str) -> dict:
    """{'services': [...], 'nodes': {id: hostname}} for one stack, read in three calls."""
    client = clients.client_for_machine(manager, timeout=20)
    try:
        services = client.api.services(filters={"label": f"{STACK_LABEL}={stack}"})
        tasks = client.api.tasks(filters={"label": f"{STACK_LABEL}={stack}"}) if services else []
        names = {n["ID"]: n["Description"]["Hostname"] for n in client.api.nodes()}
    finally:
        client.close()
    rows = []
    for service in sorted(services, key=lambda s: s["Spec"]["Name"]):
        mine = [t for t in tasks if t["ServiceID"] == service["ID"]]
        current = [t for t in mine if t.get("DesiredState") in ("running", "ready")]
        rows.append(
            {
                "name": service["Spec"]["Name"],
                **service_spec(service),
                "running": sum(1 for t in current if t["Status"]["State"] == "running"),
                "update": (service.get("UpdateStatus") or {}).get("State", ""),
                "update_message": (service.get("UpdateStatus") or {}).get("Message", ""),
                "tasks": [_task(t, names) for t in sorted(mine, key=_task_order)],
            }
        )
    return {"services": rows}


def _task_order(task: dict) -> tuple:
    return (task.get("Slot") or 0, task.get("NodeID", ""), task["Status"].get("Timestamp", ""))


def _task(task: dict, names: dict[str, str]) -> dict:
    status = task["Status"]
    return {
        "id": task["ID"][:12],
        "slot": task.get("Slot") or "",
        "node": names.get(task.get("NodeID", ""), task.get("NodeID", "")[:12]),
        "state": status.get("State", ""),
        "desired": task.get("DesiredState", ""),
        "error": status.get("Err", ""),
        "image": task["Spec"]["ContainerSpec"]["Image"].split("@")[0],
    }


def scale(manager: Machine, service: str, replicas: int) -> None:
    """Set a replicated service's replicas, the rest of its spec sent back as it is (the
    SDK's own scale() rewrites the spec, which rolls every task)."""
    client = clients.client_for_machine(manager, timeout=20)
    try:
        found = client.api.inspect_service(service)
        spec = found["Spec"]
        if "Replicated" not in spec.get("Mode", {}):
            raise ValueError(f"{service} is global: it runs one task per node")
        client.api.update_service(
            found["ID"],
            found["Version"]["Index"],
            task_template=spec["TaskTemplate"],
            name=spec["Name"],
            labels=spec.get("Labels"),
            mode={"Replicated": {"Replicas": replicas}},
            update_config=spec.get("UpdateConfig"),
            rollback_config=spec.get("RollbackConfig"),
            endpoint_spec=spec.get("EndpointSpec"),
        )
    finally:
        client.close()
