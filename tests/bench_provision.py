"""Provisioning wall time on a Docker-ready host and on a bare one (`make bench`).

Each host is booted by the container driver first (not timed); then a `provision` operation
runs on it exactly as `machine provision` runs it, and is timed from its request to its end.
On the bare host the package installation (apt-get update + install of docker.io from the
Debian mirror) is reported separately: it depends on the mirror, the rest on us.

Run alone with `python -m tests.bench_provision` (the test engine's DOCKER_HOST exported), or
from tests.bench once Django is set up.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid


def _step_seconds(op, number: int) -> float:
    """How long step `number` of an operation took, from its log lines' timestamps."""
    lines = list(op.log_lines.order_by("seq"))
    starts = [line.at for line in lines if line.text.startswith(f"[{number}/")]
    ends = [line.at for line in lines if line.text.startswith(f"[{number + 1}/")]
    if not starts or not ends:
        return 0.0
    return (ends[0] - starts[0]).total_seconds()


def _provision_once(driver, image: str) -> dict:
    from machines.lib.ssh import generate_key
    from machines.models import Machine, Operation
    from machines.operations import actions as operations
    from machines.operations import runner

    machine = Machine.objects.create(
        name=f"bench-{uuid.uuid4().hex[:8]}",
        driver=driver,
        driver_options={"image": image},
        ssh_private_key=generate_key()[0],
    )
    impl = machine.get_driver()
    try:
        started = time.monotonic()
        impl.create(machine, log=lambda _: None)
        machine.save()
        boot = time.monotonic() - started

        started = time.monotonic()
        op = operations.request(machine, Operation.Kind.PROVISION, via="cli")
        op = runner.run_claimed(runner.claim(op.pk, worker="bench"))
        wall = time.monotonic() - started
        if op.status != Operation.Status.SUCCEEDED:
            raise SystemExit(f"provisioning {image} failed: {op.error}")
        return {
            "boot_s": round(boot, 2),
            "provision_s": round(wall, 2),
            # Step 3 is "Install Docker" (a no-op on a Docker-ready host).
            "install_s": round(_step_seconds(op, 3), 2),
        }
    finally:
        impl.remove(machine)
        machine.delete()


def bench_provision(ready_runs: int = 5, bare_runs: int = 3) -> dict:
    """Provision Docker-ready and bare Debian 12 hosts; print and return the wall times
    (medians over several fresh hosts, with their range)."""
    from machines.lib.hostimage import BARE_HOST_IMAGE, HOST_IMAGE
    from machines.models import Driver

    engine = os.getenv("DOCKERDASH_TEST_ENGINE") or os.getenv("DOCKER_HOST", "")
    driver, _ = Driver.objects.update_or_create(
        name="bench-containers", defaults={"kind": "container", "settings": {"engine": engine}}
    )
    ready = [_provision_once(driver, HOST_IMAGE) for _ in range(ready_runs)]
    bare = [_provision_once(driver, BARE_HOST_IMAGE) for _ in range(bare_runs)]
    ready_s = [r["provision_s"] for r in ready]
    bare_s = [r["provision_s"] for r in bare]
    install_s = [r["install_s"] for r in bare]
    rest_s = [r["provision_s"] - r["install_s"] for r in bare]

    def fmt(values: list[float]) -> str:
        return f"median {statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"

    print("\n== provisioning (SSH, OS detection, TLS, daemon config, restart, API wait) ==")
    print(f"Docker-ready Debian 12 host, {ready_runs} hosts: {fmt(ready_s)}; target <= 3.6 s")
    print(f"bare Debian 12 host, {bare_runs} hosts: {fmt(bare_s)}")
    print(f"  of which the package install (apt-get update + docker.io): {fmt(install_s)}")
    print(f"  the rest: {fmt(rest_s)}; target <= 5 s")
    return {"docker_ready_s": ready_s, "bare_s": bare_s, "install_s": install_s, "rest_s": rest_s}


if __name__ == "__main__":
    from tests.bench import setup_django

    setup_django()
    bench_provision()
