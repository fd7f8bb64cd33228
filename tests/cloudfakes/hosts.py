"""The real machines behind the fake clouds' VMs: host containers of the test fleet.

A VM the fake "creates" is a host container booted from the fleet's host image (systemd,
sshd, Docker) on the test engine, with the public keys registered for it in root's
authorized_keys; its address on the engine's network is the VM's public IPv4. Everything
after the provider's API (SSH, provisioning, TLS, `machine env`, `docker run`) is real.
Power actions stop, kill, start and restart the container, as a console's buttons would.

A VM keeps its public address through a reboot or a stop and start, as a cloud's does: the
hosts live on a network of their own with a fixed address each (Docker hands a stopped
container's dynamic address to the next container made, and with several test workers on one
engine that was another worker's host: its changed host key was rightly refused).
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import random
import tarfile
import threading
import time
import uuid
from types import SimpleNamespace

import docker.errors
import docker.types

from machines.drivers.container.driver import LABEL, ContainerDriver, DriverError
from machines.lib.hostimage import HOST_IMAGE

# The fake clouds' hosts' own network: clear of the test engine's bridge (10.213.0.0/24), its
# pool for other networks (10.214.0.0/16), the suite's libvirt network (10.215.0.0/24) and the
# nested engines' 172.17.0.0/16. Every address in it is given out by boot() (no dynamic range
# is used: a container is always made with its address).
CLOUD_NETWORK = "dockerdash-test-cloudvms"
CLOUD_SUBNET = ipaddress.ip_network("10.216.0.0/20")


class _Maker(ContainerDriver):
    """The container driver's own code paths, with the VM's registered keys installed and a
    fixed address on the fake clouds' network."""

    network = CLOUD_NETWORK

    def _container_config(self, client, machine, image, network, info, privileged) -> dict:
        config = super()._container_config(client, machine, image, network, info, privileged)
        config["networking_config"] = client.api.create_networking_config(
            {network: client.api.create_endpoint_config(ipv4_address=machine.ip)}
        )
        return config

    def _install_key(self, container, machine) -> None:
        keys = "".join(f"{key.strip()}\n" for key in machine.public_keys).encode()
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            ssh_dir = tarfile.TarInfo("root/.ssh")
            ssh_dir.type, ssh_dir.mode = tarfile.DIRTYPE, 0o700
            tar.addfile(ssh_dir)
            info = tarfile.TarInfo("root/.ssh/authorized_keys")
            info.size, info.mode = len(keys), 0o600
            tar.addfile(info, io.BytesIO(keys))
        container.put_archive("/", archive.getvalue())


def _add_user(container, user: str, public_keys: list[str]) -> None:
    keys = "".join(f"{key.strip()}\n" for key in public_keys)
    script = (
        'useradd -m -s /bin/bash "$1" && install -d -m 700 -o "$1" -g "$1" "/home/$1/.ssh" && '
        'keys="/home/$1/.ssh/authorized_keys" && printf %s "$2" > "$keys" && '
        'chown "$1:$1" "$keys" && chmod 600 "$keys" && '
        'echo "$1 ALL=(ALL) NOPASSWD:ALL" > "/etc/sudoers.d/90-$1" && '
        ": > /root/.ssh/authorized_keys"
    )
    code, out = container.exec_run(["sh", "-c", script, "sh", user, keys])
    if code != 0:
        raise RuntimeError(f"adding the user {user} failed: {out.decode(errors='replace')}")


class Host:
    """One VM's machine: a running host container and its address."""

    def __init__(self, hosts: Hosts, stand_in: SimpleNamespace, container) -> None:
        self.hosts, self.stand_in, self.container = hosts, stand_in, container

    @property
    def ip(self) -> str:
        return self.stand_in.ip

    def _refresh_ip(self) -> None:
        self.stand_in.ip = self.hosts.maker._ip_of(self.container)

    def stop(self) -> None:
        with self.hosts.lock:
            self.container.stop(timeout=10)

    def kill(self) -> None:
        with self.hosts.lock:
            self.container.kill()

    def start(self) -> None:
        with self.hosts.lock:
            self.container.start()
            self._refresh_ip()

    def restart(self) -> None:
        with self.hosts.lock:
            self.container.restart(timeout=10)
            self._refresh_ip()

    def pause(self) -> None:
        """Frozen: its SSH port still accepts connections (the kernel does), then silence.
        The freezer can fail while the host is busy starting ("unable to freeze", seen with
        four test workers on two cores): tried again for a few seconds."""
        with self.hosts.lock:
            for attempt in range(10):
                try:
                    self.container.pause()
                    return
                except docker.errors.APIError as e:
                    if "unable to freeze" not in str(e) or attempt == 9:
                        raise
                    time.sleep(0.5)

    def remove(self) -> None:
        with self.hosts.lock:
            self.hosts.made.pop(self.stand_in.name, None)
            self._remove()

    def _remove(self) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.container.remove(force=True, v=True)
        with contextlib.suppress(docker.errors.NotFound):
            self.hosts.client.volumes.get(self.hosts.maker.volume_name(self.stand_in)).remove(
                force=True
            )


class Hosts:
    """Boots and keeps track of the fleet hosts behind one fake cloud."""

    def __init__(self, engine_url: str) -> None:
        self.maker = _Maker({"engine": engine_url})
        self.client = self.maker.client(timeout=120)
        self.info = self.client.info()
        self._ensure_network()
        self.made: dict[str, Host] = {}
        self.booted: list[str] = []
        # One Docker client (a requests session) for the fake's threads: one call at a time.
        self.lock = threading.RLock()

    def _ensure_network(self) -> None:
        """The hosts' network, made once on the engine (test workers may race to make it: the
        fixed subnet lets only one succeed; the others find it)."""
        for _ in range(3):
            if self.client.networks.list(names=[CLOUD_NETWORK]):
                return
            pool = docker.types.IPAMPool(subnet=str(CLOUD_SUBNET))
            with contextlib.suppress(docker.errors.APIError):
                self.client.networks.create(
                    CLOUD_NETWORK,
                    driver="bridge",
                    ipam=docker.types.IPAMConfig(pool_configs=[pool]),
                    labels={LABEL: "test-cloudvms"},
                )
            time.sleep(0.2)
        if not self.client.networks.list(names=[CLOUD_NETWORK]):
            raise RuntimeError(f"the network {CLOUD_NETWORK} ({CLOUD_SUBNET}) could not be made")

    def _free_address(self) -> str:
        """An address no container on the engine holds or was made with (stopped ones keep
        theirs): another worker may pick the same one at once, so create retries."""
        taken = set()
        for container in self.client.api.containers(all=True):
            nets = (container.get("NetworkSettings") or {}).get("Networks") or {}
            endpoint = nets.get(CLOUD_NETWORK) or {}
            taken.add(endpoint.get("IPAddress"))
            taken.add((endpoint.get("IPAMConfig") or {}).get("IPv4Address"))
        hosts = list(CLOUD_SUBNET.hosts())[1:]  # the first is the bridge's gateway
        free = [str(ip) for ip in hosts if str(ip) not in taken]
        return random.choice(free)

    def _create(self, stand_in: SimpleNamespace):
        for attempt in range(5):
            stand_in.ip = self._free_address()
            try:
                container = self.maker._create_container(
                    self.client, stand_in, HOST_IMAGE, CLOUD_NETWORK, self.info, lambda text: 0
                )
                self.maker._start(self.client, stand_in, container, self.info, lambda text: 0)
                return container
            except (DriverError, docker.errors.APIError) as e:
                if "already in use" not in str(e) or attempt == 4:
                    raise
                with contextlib.suppress(docker.errors.NotFound):
                    self.client.containers.get(self.maker.container_name(stand_in)).remove(
                        force=True
                    )
        raise AssertionError("unreachable")

    def boot(self, public_keys: list[str], user: str = "root") -> Host:
        """A running host whose `user` logs in with these keys (another user than root gets
        passwordless sudo, as a cloud image's default user: Debian's admin on EC2)."""
        stand_in = SimpleNamespace(
            name=f"cloudvm-{uuid.uuid4().hex[:10]}",
            driver_options={"image": HOST_IMAGE},
            public_keys=public_keys,
            ip="",
        )
        with self.lock:
            container = self._create(stand_in)
            host = self.made[stand_in.name] = Host(self, stand_in, container)
            self.booted.append(self.maker.container_name(stand_in))
            # (Started again without --privileged where the engine refuses it: a new id.)
            host.container = self.client.containers.get(stand_in.driver_options["container_id"])
            if user != "root":
                _add_user(host.container, user, public_keys)
        return host

    def alive(self) -> list[str]:
        """The host containers ever booted here that are still on the engine."""
        with self.lock:
            # The list alone (the SDK's containers.list inspects each one, and another test
            # worker may remove one of its own in between: a 404).
            listed = self.client.api.containers(all=True)
            existing = {name.lstrip("/") for c in listed for name in c["Names"]}
        return sorted(existing & set(self.booted))

    def close(self) -> None:
        for host in list(self.made.values()):
            host.remove()
        self.client.close()
