"""kvm create to Docker (`make bench`): a VM from dockerdash's image, created as `machine
create -d kvm` creates it, timed from the request to Docker answering with TLS.

Needs libvirtd and the test network (scripts/test-libvirt; its env exported, as the Makefile
does) and the VM image (manage.py build_vm_image; built here when missing, as root). Run alone
with `python -m tests.bench kvm`.
"""

from __future__ import annotations

import os
import re
import time
import uuid

RUNS = int(os.getenv("DOCKERDASH_BENCH_KVM_RUNS", "2"))


def _once(driver) -> dict:
    from machines.models import Machine, Operation
    from machines.operations import actions as operations
    from machines.operations import runner

    machine = Machine(name=f"bench-vm-{uuid.uuid4().hex[:6]}", driver=driver)
    started = time.monotonic()
    op = operations.create_machine(machine, {}, via="cli")
    op = runner.run_claimed(runner.claim(op.pk, worker="bench"))
    wall = time.monotonic() - started
    try:
        if op.status != Operation.Status.SUCCEEDED:
            raise SystemExit(f"creating a kvm machine failed: {op.error}")
        text = "\n".join(op.log_lines.values_list("text", flat=True))
        ssh = re.search(r"SSH answers ([\d.]+) s after the VM started", text)
        machine.refresh_from_db()
        return {
            "create_s": wall,
            "boot_to_ssh_s": float(ssh[1]) if ssh else 0.0,
            "accel": machine.driver_options.get("accel", "?"),
        }
    finally:
        done = runner.run_claimed(
            runner.claim(operations.request(machine, Operation.Kind.REMOVE).pk, worker="bench")
        )
        assert done.status == Operation.Status.SUCCEEDED, done.error


def bench_kvm() -> None:
    from machines.lib.vmimage import ensure_vm_images
    from machines.models import Driver

    if not os.getenv("DOCKERDASH_KVM_NETWORK"):
        print("\n== kvm: skipped (export scripts/test-libvirt env; run as root) ==")
        return
    ensure_vm_images()
    driver = Driver.objects.get_or_create(name="kvm", defaults={"kind": "kvm"})[0]
    results = [_once(driver) for _ in range(RUNS)]
    accel = results[0]["accel"]
    how = (
        "KVM acceleration"
        if accel == "kvm"
        else "software emulation (TCG): KVM acceleration is not available here, so the "
        "accelerated figure cannot be measured on this machine"
    )
    print(f"\n== kvm: create to Docker, a 1 CPU / 1 GiB VM from dockerdash's image; {how} ==")
    for n, r in enumerate(results, 1):
        print(
            f"run {n}: create to Docker {r['create_s']:.1f} s "
            f"(VM start to SSH {r['boot_to_ssh_s']:.1f} s)"
        )
