"""container: a host as a container with systemd, sshd and its own engine, on a parent engine.

Like kind's nodes: each machine is a container booting systemd as PID 1 from a host image
(see `manage.py build_host_image`), on a network of its own on the parent engine.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import threading
import time
from typing import TYPE_CHECKING

import docker
import docker.errors
import requests
from django import forms
from django.conf import settings

from machines.drivers.base import BaseDriver, DriverError, SSHAddress
from machines.engine import clients
from machines.lib.hostimage import (
    ALL_IMAGES,
    BARE_HOST_IMAGE,
    HOST_IMAGE,
    HostImageError,
    ensure_host_images,
)
from machines.lib.ssh import public_key_of, wait_for_ssh

if TYPE_CHECKING:
    from machines.models import Machine

LABEL = "io.dockerdash.machine"
INSTANCE_LABEL = "io.dockerdash.instance"
NETWORK = "dockerdash-machines"
SSH_WAIT = 90
# The engines nested in host containers use this as their default bridge: the machines'
# network must not overlap it, or replies from a host go to its inner docker0 (seen).
INNER_BRIDGE = "172.17."
# Where --privileged is refused (CAP_SYS_RESOURCE missing from the bounding set, as on
# some CI machines), this set boots systemd and a nested engine just the same.
UNPRIVILEGED = {
    "cap_add": ["ALL"],
    "cap_drop": ["SYS_RESOURCE"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "device_cgroup_rules": ["a *:* rwm"],
}
# What the CLI's `--security-opt systempaths=unconfined` means in the API (the SDK lacks it):
# /proc and /sys unmasked and writable, which systemd and a nested engine need.
UNMASKED_PATHS = {"MaskedPaths": [], "ReadonlyPaths": []}
_NETWORK_LOCK = threading.Lock()


def _reason(error: BaseException) -> str:
    """The root cause in words ("No such file or directory"), not a nest of wrappers."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.strerror:
            return error.strerror
        nested = [a for a in getattr(error, "args", ()) if isinstance(a, BaseException)]
        error = nested[-1] if nested else (error.__cause__ or error.__context__)
    return str(error) if error else "unknown error"


class ContainerSettingsForm(forms.Form):
    engine = forms.CharField(
        label="Parent engine",
        required=False,
        help_text="unix:///var/run/docker.sock, ssh://user@host or tcp://host:2376 with TLS. "
        "Empty: DOCKER_HOST, else the local socket.",
    )
    image = forms.CharField(label="Default host image", required=False, initial=HOST_IMAGE)


class ContainerOptionsForm(forms.Form):
    image = forms.CharField(
        label="Host image",
        required=False,
        help_text=f"{HOST_IMAGE} (Docker preinstalled) or {BARE_HOST_IMAGE} (no Docker). "
        "Empty: the driver's default.",
    )


class ContainerDriver(BaseDriver):
    kind = "container"
    label = "Container"
    description = "a host as a container on a Docker engine"
    # The empty engine means DOCKER_HOST, else the local socket: usable without settings.
    default_settings = {"engine": ""}
    settings_form = ContainerSettingsForm
    options_form = ContainerOptionsForm
    secret_fields = ("tls_key",)
    # The network its hosts live on (the test fleet's fake clouds use one of their own).
    network = NETWORK

    # -- the parent engine -------------------------------------------------------------
    @property
    def engine_url(self) -> str:
        return self.settings.get("engine") or clients.default_engine_url()

    def client(self, timeout: float = 15) -> docker.DockerClient:
        try:
            return clients.client(
                self.engine_url,
                ca=self.settings.get("tls_ca", ""),
                cert=self.settings.get("tls_cert", ""),
                key=self.secrets.get("tls_key", ""),
                timeout=timeout,
            )
        except clients.EngineError as e:
            raise DriverError(str(e)) from None
        except docker.errors.DockerException as e:
            raise DriverError(f"Parent engine {self.engine_url} is not usable: {e}") from None

    def _call(self, what: str, fn, *args, **kwargs):
        """Run a parent-engine call; turn its failures into one clear sentence."""
        try:
            return fn(*args, **kwargs)
        except docker.errors.NotFound:
            raise
        except docker.errors.APIError as e:
            raise DriverError(f"{what} failed on {self.engine_url}: {e.explanation or e}") from None
        except (requests.ConnectionError, requests.Timeout, OSError) as e:
            reason = "it does not answer" if isinstance(e, requests.Timeout) else _reason(e)
            raise DriverError(
                f"Parent engine {self.engine_url} is not reachable ({what}): {reason}"
            ) from None
        except docker.errors.DockerException as e:
            raise DriverError(f"{what} failed on {self.engine_url}: {e}") from None

    def container_name(self, machine: Machine) -> str:
        return f"dockerdash-{machine.name}"

    def _container(self, machine: Machine, client: docker.DockerClient | None = None):
        client = client or self.client()
        try:
            return self._call(
                "inspecting the container", client.containers.get, self.container_name(machine)
            )
        except docker.errors.NotFound:
            raise DriverError(
                f"The container {self.container_name(machine)} of {machine.name} does not exist "
                f"on {self.engine_url} (removed outside dockerdash?)"
            ) from None

    # -- options -----------------------------------------------------------------------
    def apply_options(self, machine: Machine, options: dict) -> None:
        machine.driver_options = {
            "image": options.get("image") or self.settings.get("image") or HOST_IMAGE
        }
        machine.ssh_user = "root"
        machine.ssh_port = 22

    # -- lifecycle ---------------------------------------------------------------------
    def create(self, machine: Machine, log=print) -> None:
        client = self.client()
        info = self._call("asking the engine for its configuration", client.info)
        image = machine.driver_options.get("image") or HOST_IMAGE
        try:
            self._call("looking up the host image", client.images.get, image)
        except docker.errors.NotFound:
            self._build_image(image, log)
        network = self._ensure_network(client)
        log(
            f"Parent engine {self.engine_url}: Docker {info.get('ServerVersion')}, "
            f"cgroup v{info.get('CgroupVersion', '1')}; image {image}; network {network}"
        )
        try:
            # A retried create (after a crash or a failure) picks up the container it made.
            container = self._call(
                "inspecting the container", client.containers.get, self.container_name(machine)
            )
            log(f"Reusing the container {container.name} made by an earlier attempt")
        except docker.errors.NotFound:
            container = self._create_container(client, machine, image, network, info, log)
        log(f"Starting container {container.name}")
        self._start(client, machine, container, info, log)
        self._wait_ssh(machine, log)

    def _build_image(self, image: str, log) -> None:
        """The first machine on an engine builds dockerdash's host image there (concurrent
        creates wait for one build: the builder holds a lock)."""
        if image not in ALL_IMAGES:
            raise DriverError(
                f"The host image {image} is not on {self.engine_url}: pull or build it there"
            )
        log(f"The host image {image} is not on {self.engine_url} yet: building it there")
        client = self.client(timeout=900)  # an import of the root filesystem takes a while
        try:
            self._call(
                "building the host image", ensure_host_images, client, images=[image], log=log
            )
        except HostImageError as e:
            raise DriverError(f"Building the host image {image} failed: {e}") from None
        finally:
            client.close()

    def _ensure_network(self, client: docker.DockerClient) -> str:
        # Two creates at once must not make two networks of one name (it is then ambiguous).
        with _NETWORK_LOCK:
            net = self._network(client)
            if net is None:
                self._call(
                    "creating the machines' network",
                    client.networks.create,
                    self.network,
                    driver="bridge",
                    labels={LABEL: "network"},
                )
                net = self._network(client)
        for pool in (net.attrs.get("IPAM") or {}).get("Config") or []:
            if str(pool.get("Subnet", "")).startswith(INNER_BRIDGE):
                raise DriverError(
                    f"The network {self.network} on {self.engine_url} uses {pool['Subnet']}, "
                    f"the range the engines inside machines use for their own bridge; recreate "
                    f"it with another subnet (docker network create --subnet 10.99.0.0/24 "
                    f"{self.network})"
                )
        return self.network

    def _network(self, client: docker.DockerClient):
        """The machines' network; when another process made one too, the oldest is kept."""
        found = self._call("looking up the machines' network", client.networks.list, [self.network])
        found = sorted(
            (n for n in found if n.name == self.network),
            key=lambda n: (n.attrs.get("Created", ""), n.id),
        )
        for extra in found[1:]:
            with contextlib.suppress(docker.errors.APIError):
                extra.remove()
        return found[0] if found else None

    def _container_config(
        self, client, machine: Machine, image: str, network: str, info: dict, privileged: bool
    ) -> dict:
        """Arguments for the API's container create (lower level than the SDK's run())."""
        cgroup_v2 = str(info.get("CgroupVersion", "1")) == "2"
        binds = [f"{self.volume_name(machine)}:/var/lib/docker"]
        host = {
            "tmpfs": {"/run": "rw,exec", "/run/lock": "rw", "/tmp": "rw,exec"},  # noqa: S108
            # A `reboot` inside ends the container; the policy brings it back, as a real host.
            "restart_policy": {"Name": "unless-stopped"},
            "network_mode": network,
        }
        if cgroup_v2:
            host["cgroupns"] = "private"
        else:
            binds.append("/sys/fs/cgroup:/sys/fs/cgroup:rw")
        if privileged:
            host["privileged"] = True
        else:
            host.update(UNPRIVILEGED)
        # The nested engine wants a real filesystem under it (overlay2 cannot stack on overlay).
        host_config = client.api.create_host_config(binds=binds, **host)
        if not privileged:
            host_config.update(UNMASKED_PATHS)
        return {
            "image": image,
            "name": self.container_name(machine),
            "hostname": machine.name[:63],
            "labels": {LABEL: machine.name, INSTANCE_LABEL: settings.INSTANCE_ID},
            "environment": {"container": "docker"},
            "stop_signal": "SIGRTMIN+3",
            "host_config": host_config,
        }

    def volume_name(self, machine: Machine) -> str:
        return f"dockerdash-{machine.name}-docker"

    def _create_container(self, client, machine, image, network, info, log):
        privileged = machine.driver_options.get("privileged", True)
        config = self._container_config(client, machine, image, network, info, privileged)
        # Made beforehand to carry our label, so a crashed run's leftovers can be found.
        self._call(
            "creating the Docker volume",
            client.volumes.create,
            self.volume_name(machine),
            labels={LABEL: machine.name, INSTANCE_LABEL: settings.INSTANCE_ID},
        )
        created = self._call("creating the container", client.api.create_container, **config)
        container = client.containers.get(created["Id"])
        self._install_key(container, machine)
        return container

    def _install_key(self, container, machine: Machine) -> None:
        public = public_key_of(machine.ssh_private_key) + " dockerdash\n"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            ssh_dir = tarfile.TarInfo("root/.ssh")
            ssh_dir.type, ssh_dir.mode = tarfile.DIRTYPE, 0o700
            tar.addfile(ssh_dir)
            data = public.encode()
            keys = tarfile.TarInfo("root/.ssh/authorized_keys")
            keys.size, keys.mode = len(data), 0o600
            tar.addfile(keys, io.BytesIO(data))
        self._call("installing the SSH key", container.put_archive, "/", buf.getvalue())

    def _start(self, client, machine, container, info, log) -> None:
        try:
            self._call("starting the container", container.start)
        except DriverError as e:
            # Some engines refuse --privileged ("unable to apply caps"); fall back to the
            # explicit capability set and remember it for this machine.
            if not machine.driver_options.get("privileged", True) or "caps" not in str(e):
                raise
            log("This engine refuses --privileged; using an explicit capability set instead")
            self._call("removing the container", container.remove, force=True)
            machine.driver_options["privileged"] = False
            image = machine.driver_options.get("image") or HOST_IMAGE
            container = self._create_container(client, machine, image, self.network, info, log)
            self._call("starting the container", container.start)
        machine.ip = self._ip_of(container)
        machine.driver_options["container_id"] = container.id

    def _ip_of(self, container) -> str:
        for _ in range(50):
            self._call("inspecting the container", container.reload)
            net = (container.attrs["NetworkSettings"]["Networks"] or {}).get(self.network) or {}
            if ip := net.get("IPAddress"):
                return ip
            time.sleep(0.1)
        raise DriverError(f"The container {container.name} got no IP address on {self.network}")

    def _wait_ssh(self, machine: Machine, log=print) -> None:
        log(f"Waiting for SSH on {machine.ip}")
        started = time.monotonic()
        with wait_for_ssh(
            machine.ip, 22, "root", machine.ssh_private_key, machine.ssh_host_key, timeout=SSH_WAIT
        ) as session:
            machine.ssh_host_key = session.host_key
        log(f"SSH answers after {time.monotonic() - started:.1f} s")

    def start(self, machine: Machine) -> None:
        container = self._container(machine)
        self._call("starting the container", container.start)
        machine.ip = self._ip_of(container)
        self._wait_ssh(machine)

    def stop(self, machine: Machine) -> None:
        container = self._container(machine)
        self._call("stopping the container", container.stop, timeout=30)

    def restart(self, machine: Machine) -> None:
        container = self._container(machine)
        self._call("restarting the container", container.restart, timeout=30)
        machine.ip = self._ip_of(container)
        self._wait_ssh(machine)

    def kill(self, machine: Machine) -> None:
        container = self._container(machine)
        self._call("killing the container", container.kill)

    def remove(self, machine: Machine) -> None:
        client = self.client()
        try:
            container = self._call(
                "inspecting the container", client.containers.get, self.container_name(machine)
            )
        except docker.errors.NotFound:
            pass  # never created, or already gone: nothing left to remove
        else:
            self._call("removing the container", container.remove, force=True)
        try:
            volume = client.volumes.get(self.volume_name(machine))
        except docker.errors.NotFound:
            return
        self._call("removing the container's volume", volume.remove, force=True)

    def state(self, machine: Machine) -> str:
        from machines.models import Machine as M

        container = self._container(machine, self.client(timeout=5))
        status = container.attrs["State"]
        if status.get("Paused"):
            return M.State.PAUSED
        return {
            "running": M.State.RUNNING,
            "created": M.State.STOPPED,
            "exited": M.State.STOPPED,
            "restarting": M.State.STARTING,
            "removing": M.State.STOPPING,
            "dead": M.State.ERROR,
        }.get(status.get("Status"), M.State.ERROR)

    def ip(self, machine: Machine) -> str:
        container = self._container(machine, self.client(timeout=5))
        net = (container.attrs["NetworkSettings"]["Networks"] or {}).get(self.network) or {}
        return net.get("IPAddress") or ""

    def ssh_address(self, machine: Machine) -> SSHAddress:
        return SSHAddress(machine.ip, 22, "root")
