"""A small private Docker Engine a test can stop and start, for "the engine went away"."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from machines.engine import clients

from .helpers import wait_until


class PrivateEngine:
    def __init__(self, root: Path, address_pool: str = "", unmounted: tuple[str, ...] = ()) -> None:
        # Unix socket paths are short; the data lives beside them.
        self.root = root
        # Where its networks' subnets come from ("base=10.x.0.0/16,size=24"): clear of the
        # test engine's and of the 172.17.0.0/16 the engines nested in machines use.
        self.address_pool = address_pool
        # cgroup v1 hierarchies this engine does not see, as on a host that lacks them: it runs
        # in a mount namespace of its own where they are unmounted (nobody else is affected).
        self.unmounted = unmounted
        self.socket = root / "d.sock"
        self.url = f"unix://{self.socket}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if shutil.which("dockerd") is None:
            raise RuntimeError("dockerd is not installed (apt-get install docker.io)")
        log = open(self.root / "dockerd.log", "a")  # noqa: SIM115
        namespace = []
        if self.unmounted:
            dirs = " ".join(f"/sys/fs/cgroup/{c}" for c in self.unmounted)
            # Mounts may be stacked: until none is left.
            unmount = "while mountpoint -q $d; do umount $d || exit 1; done"
            script = f'for d in {dirs}; do {unmount}; done; exec "$@"'
            namespace = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"]
        self.proc = subprocess.Popen(
            [
                *namespace,
                "dockerd",
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "dockerd.pid"),
                "-H",
                self.url,
                # No networking of its own: nothing here may touch the host's bridges.
                "--bridge",
                "none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--containerd-namespace",
                f"dd-{self.root.name[-12:]}",
                "--containerd-plugins-namespace",
                f"ddp-{self.root.name[-12:]}",
                *(["--default-address-pool", self.address_pool] if self.address_pool else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self.answers, timeout=60)

    def answers(self) -> bool:
        """the private engine answers"""
        try:
            clients.client(self.url, timeout=2).ping()
        except Exception:
            return False
        return True

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)


@contextlib.contextmanager
def private_dockerd(
    tmp_path: Path, address_pool: str = "", unmounted: tuple[str, ...] = ()
) -> Iterator[PrivateEngine]:
    # Short (unix socket paths), and apart per pytest-xdist worker: two workers may run tests
    # of the same name.
    worker = os.getenv("PYTEST_XDIST_WORKER", "")
    root = Path("/tmp") / f"dd{worker}-{tmp_path.name[-12:]}"
    root.mkdir(parents=True, exist_ok=True)
    engine = PrivateEngine(root, address_pool, unmounted)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()
        shutil.rmtree(root, ignore_errors=True)
