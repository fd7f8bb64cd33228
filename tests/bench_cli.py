"""The command line's own speed (`make bench`): `machine ls` of one machine, and `machine
create -d generic` of a Docker-ready host as a whole command against its operation's time,
with no runner (the command forks its own) and with a worker already serving.

docker-machine 0.16.2 cannot be built here (no Go toolchain); issue 20 measured it on the
same host: `docker-machine ls` 0.07-0.09 s.

Run alone with `python -m tests.bench_cli` (the test engine's DOCKER_HOST exported), or from
tests.bench once Django is set up.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    from django.conf import settings

    return {**os.environ, "DOCKERDASH_DATA_DIR": str(settings.DATA_DIR)}


def _cli(*args: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one command; the CPU time is what the wall time is
    on an idle machine (a runner it forked is not counted: it is not waited for)."""
    started, before = time.perf_counter(), os.times()
    subprocess.run(
        [sys.executable, "manage.py", "machine", *args],
        cwd=ROOT,
        env=_env(),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    after = os.times()
    cpu = after.children_user - before.children_user
    return time.perf_counter() - started, cpu + after.children_system - before.children_system


def bench_ls_one(runs: int = 7) -> list[float]:
    from machines.models import Driver, Machine

    Machine.objects.all().delete()
    none = Driver.objects.get_or_create(name="none", defaults={"kind": "none"})[0]
    Machine.objects.create(name="one", driver=none, engine_url="tcp://192.0.2.1:2376")
    runs_ = [_cli("ls") for _ in range(runs)]
    times, cpu = [w for w, _ in runs_], statistics.median(c for _, c in runs_)
    print("\n== machine ls, one machine (whole command, Python start-up included) ==")
    print(
        f"median {statistics.median(times):.3f} s ({min(times):.3f}-{max(times):.3f}); "
        f"CPU {cpu:.3f} s; goal <= 0.3 s; docker-machine 0.16.2 (issue 20): 0.07-0.09 s"
    )
    Machine.objects.all().delete()
    return times


def _create_once(ip: str, key: Path) -> tuple[float, float, float]:
    """(whole command, its operation from claim to end, the command's CPU) for one
    `create -d generic`."""
    from machines.models import Machine, Operation

    name = f"gen-{uuid.uuid4().hex[:6]}"
    total, cpu = _cli(
        "create", "-d", "generic", "--generic-ip-address", ip, "--generic-ssh-key", str(key), name
    )
    op = Operation.objects.filter(machine_name=name, kind=Operation.Kind.CREATE).latest(
        "created_at"
    )
    if op.status != Operation.Status.SUCCEEDED:
        raise SystemExit(f"create -d generic failed: {op.error}")
    Machine.objects.filter(name=name).delete()  # forgets it, as `rm` of a generic host
    return total, (op.finished_at - op.started_at).total_seconds(), cpu


def _with_worker(fn):
    from machines.operations import runner

    worker = subprocess.Popen(
        [sys.executable, "manage.py", "worker"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not runner.runner_alive():
            if time.monotonic() > deadline:
                raise SystemExit("the worker did not start in 60 s")
            time.sleep(0.2)
        return fn()
    finally:
        worker.terminate()
        worker.wait(60)


def bench_create_generic(runs: int = 3) -> dict:
    from machines.lib.hostimage import HOST_IMAGE
    from machines.lib.ssh import generate_key
    from machines.models import Driver, Machine

    engine = os.getenv("DOCKERDASH_TEST_ENGINE") or os.getenv("DOCKER_HOST", "")
    driver, _ = Driver.objects.update_or_create(
        name="bench-containers", defaults={"kind": "container", "settings": {"engine": engine}}
    )
    host = Machine.objects.create(
        name=f"bench-host-{uuid.uuid4().hex[:6]}",
        driver=driver,
        driver_options={"image": HOST_IMAGE},
        ssh_private_key=generate_key()[0],
    )
    impl = host.get_driver()
    results: dict[str, list[tuple[float, float, float]]] = {}
    try:
        impl.create(host, log=lambda _: None)
        host.save()
        with tempfile.TemporaryDirectory() as tmp:
            key = Path(tmp) / "id"
            key.write_text(host.ssh_private_key.strip() + "\n")
            key.chmod(0o600)
            results["no runner (the command forks its own)"] = [
                _create_once(host.ip, key) for _ in range(runs)
            ]
            results["a worker already serving"] = _with_worker(
                lambda: [_create_once(host.ip, key) for _ in range(runs)]
            )
    finally:
        impl.remove(host)
        host.delete()
    print("\n== machine create -d generic, Docker-ready host (whole command vs its operation) ==")
    for what, runs_ in results.items():
        totals, ops = [t for t, _, _ in runs_], [o for _, o, _ in runs_]
        over = [t - o for t, o, _ in runs_]
        print(
            f"{what}: total median {statistics.median(totals):.2f} s, operation "
            f"{statistics.median(ops):.2f} s, overhead {statistics.median(over):.2f} s "
            f"({min(over):.2f}-{max(over):.2f}), the command's CPU "
            f"{statistics.median(c for _, _, c in runs_):.2f} s; goal overhead <= 0.5 s"
        )
    return results


if __name__ == "__main__":
    from tests.bench import setup_django

    setup_django()
    bench_ls_one()
    bench_create_generic()
