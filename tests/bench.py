"""`make bench`: the figures the issues ask for, measured on this machine.

Run as `python -m tests.bench [SECTION ...]` with the test engine's DOCKER_HOST exported
(the Makefile does both). It uses a database of its own under var/bench.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(os.getenv("DOCKERDASH_BENCH_DIR", ROOT / "var" / "bench"))


def setup_django() -> None:
    os.environ["DOCKERDASH_DATA_DIR"] = str(BENCH_DIR)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockerdash.settings")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _env() -> dict[str, str]:
    return {**os.environ, "DOCKERDASH_DATA_DIR": str(BENCH_DIR)}


def _reset_machines() -> None:
    from machines.models import Machine, Operation

    Operation.objects.all().delete()
    Machine.objects.all().delete()


def _fill(total: int, unreachable: int, hole_address: str) -> None:
    """`total` machines as stored after health checks; `unreachable` of them black-holed."""
    from django.utils import timezone

    from machines.models import Driver, Machine

    none = Driver.objects.get_or_create(name="none", defaults={"kind": "none"})[0]
    now = timezone.now()
    Machine.objects.bulk_create(
        Machine(
            name=f"m-{i:04d}",
            driver=none,
            engine_url=hole_address if i < unreachable else f"tcp://192.0.2.{i % 250}:2376",
            state=Machine.State.RUNNING,
            docker_version="28.2.2",
            last_seen=None if i < unreachable else now,
            engine_reachable=i >= unreachable,
            last_error="Engine unreachable: timed out" if i < unreachable else "",
        )
        for i in range(total)
    )


def _time_cli(*args: str, runs: int = 5) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "manage.py", "machine", *args],
            cwd=ROOT,
            env=_env(),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - started)
    return times


def bench_ls() -> None:
    """machine ls for 50 and 1,000 machines, with and without unreachable ones.

    docker-machine asks every host and waits its 10 s timeout when one does not answer;
    dockerdash reads stored state. Measured while a health check of the black-holed hosts
    is in progress, as it would be under a running runner.
    """
    import threading

    from machines import runner
    from machines.models import Machine
    from tests.helpers import BlackHole

    with tempfile.TemporaryDirectory() as tmp:
        hole = BlackHole(os.path.join(tmp, "hole.sock"))
        print("\n== machine ls (stored state; whole command including Python start-up) ==")
        print(
            f"{'machines':>9} {'black-holed':>12} {'median s':>9} {'max s':>7}  in-process median s"
        )
        for total, unreachable in [(50, 0), (50, 5), (1000, 0), (1000, 100)]:
            _reset_machines()
            _fill(total, unreachable, hole.address)
            checks = [
                threading.Thread(target=runner.check_machine, args=(m,), kwargs={"timeout": 10})
                for m in Machine.objects.filter(engine_url=hole.address)[:unreachable]
            ]
            for t in checks:
                t.start()
            times = _time_cli("ls")
            inproc = _time_inprocess_ls()
            print(
                f"{total:>9} {unreachable:>12} {statistics.median(times):>9.3f} "
                f"{max(times):>7.3f}  {statistics.median(inproc):.3f}"
            )
            for t in checks:
                t.join()
        hole.close()
    _reset_machines()


def _time_inprocess_ls(runs: int = 5) -> list[float]:
    from io import StringIO

    from django.core.management import call_command

    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call_command("machine", "ls", stdout=StringIO())
        times.append(time.perf_counter() - started)
    return times


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_idle_worker(engines: int = 50, window: float = 60) -> None:
    """Idle CPU and memory of one worker watching `engines` engine event streams."""
    from machines.models import Driver, Machine

    engine = os.getenv("DOCKER_HOST", "")
    if not engine.startswith("unix://"):
        print("\n== idle worker: skipped (export the test engine's DOCKER_HOST) ==")
        return
    _reset_machines()
    none = Driver.objects.get_or_create(name="none", defaults={"kind": "none"})[0]
    # Each machine is its own event stream; here they all lead to the one test engine.
    Machine.objects.bulk_create(
        Machine(name=f"w-{i:03d}", driver=none, engine_url=engine, state="running")
        for i in range(engines)
    )
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "worker"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while Machine.objects.filter(engine_reachable=True).count() < engines:
            if time.monotonic() > deadline:
                raise SystemExit("the worker did not connect to every engine in 120 s")
            time.sleep(0.5)
        time.sleep(5)  # let start-up settle
        cpu0, t0 = _proc_cpu_seconds(worker.pid), time.monotonic()
        time.sleep(window)
        cpu = (_proc_cpu_seconds(worker.pid) - cpu0) / (time.monotonic() - t0) * 100
        threads = len(os.listdir(f"/proc/{worker.pid}/task"))
        print(f"\n== idle worker watching {engines} engine event streams ==")
        print(
            f"CPU {cpu:.2f} % of one core over {window:.0f} s (health checks every "
            f"{os.getenv('DOCKERDASH_HEALTH_CHECK_INTERVAL', '30')} s included); "
            f"RSS {_proc_rss_mib(worker.pid):.0f} MiB; {threads} threads"
        )
    finally:
        worker.terminate()
        worker.wait(60)
        _reset_machines()


SECTIONS = {"ls": bench_ls, "worker": bench_idle_worker}


def main(argv: list[str]) -> None:
    setup_django()
    for name in argv or list(SECTIONS):
        SECTIONS[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
