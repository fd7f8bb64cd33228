"""What a deploy changes, in words, before it runs: services added or removed, and per
service its image, replicas, environment and published ports. Secret values never appear."""

from __future__ import annotations

HIDDEN = "(secret)"


def _env(value) -> list[str]:
    if isinstance(value, dict):
        return sorted(f"{k}={'' if v is None else v}" for k, v in value.items())
    return sorted(value or [])


def _port(port) -> str:
    if isinstance(port, dict):
        return f"{port.get('published')}:{port.get('target')}/{port.get('mode', 'ingress')}"
    return str(port)


def wanted(resolved: dict, stack: str) -> dict[str, dict]:
    """The services a resolved compose file asks for, keyed as Swarm names them."""
    out = {}
    for name, service in (resolved.get("services") or {}).items():
        deploy = service.get("deploy") or {}
        replicas = "global" if deploy.get("mode") == "global" else deploy.get("replicas", 1)
        out[f"{stack}_{name}"] = {
            "image": str(service.get("image", "")),
            "replicas": replicas,
            "env": _env(service.get("environment")),
            "ports": sorted(_port(p) for p in service.get("ports") or []),
        }
    return out


def _masked(entries: list[str], secrets: set[str]) -> list[str]:
    return [
        f"{e.partition('=')[0]}={HIDDEN}" if e.partition("=")[0] in secrets else e for e in entries
    ]


def diff(current: dict[str, dict], new: dict[str, dict], secrets: set[str]) -> list[str]:
    """One line per change; empty when the deploy changes nothing."""
    lines = []
    for name in sorted(set(current) | set(new)):
        if name not in new:
            lines.append(f"{name}: removed")
            continue
        if name not in current:
            w = new[name]
            lines.append(f"{name}: new, image {w['image']}, {w['replicas']} replicas")
            continue
        old, w = current[name], new[name]
        if old["image"] != w["image"]:
            lines.append(f"{name}: image {old['image']} → {w['image']}")
        if str(old["replicas"]) != str(w["replicas"]):
            lines.append(f"{name}: replicas {old['replicas']} → {w['replicas']}")
        before, after = set(old["env"]), set(w["env"])
        for entry in _masked(sorted(after - before), secrets):
            lines.append(f"{name}: env {entry}")
        gone = {e.partition("=")[0] for e in before - after}
        gone -= {e.partition("=")[0] for e in after}
        for key in sorted(gone):
            lines.append(f"{name}: env {key} removed")
        if old["ports"] != w["ports"]:
            lines.append(
                f"{name}: ports {', '.join(old['ports']) or 'none'} → "
                f"{', '.join(w['ports']) or 'none'}"
            )
    return lines
