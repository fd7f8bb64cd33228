"""What `machine inspect` prints, local or through the API: the same document."""

from __future__ import annotations

from machines.fields import hidden_options
from machines.models import Machine


def ls_row(m: Machine) -> dict:
    """A machine as `ls` prints it (lib/machinefmt), and the core of the API's machine."""
    return {
        "name": m.name,
        "driver": m.driver.kind,
        "driver_name": m.driver.name,
        "state": m.get_state_display(),
        "url": m.url,
        "ip": m.ip,
        "docker_version": m.docker_version,
        "last_error": m.last_error,
        "response_time_ms": m.response_time_ms,
        "tags": m.tags,
        "engine_labels": m.engine_labels,
    }


def inspect_machine(machine: Machine) -> dict:
    """`machine inspect NAME`'s document (docker-machine's keys), for both transports."""
    return {
        "Name": machine.name,
        "DriverName": machine.driver.kind,
        "Driver": {
            # libmachine's BaseDriver fields, which docker-machine users' templates read.
            "IPAddress": machine.ip,
            "MachineName": machine.name,
            "SSHUser": machine.ssh_user,
            "SSHPort": machine.ssh_port,
            "Name": machine.driver.name,
            **machine.driver.settings,
            **hidden_options(machine.driver_options),  # user data: its size and hash only
        },
        "State": machine.state,
        "IPAddress": machine.ip,
        "URL": machine.url,
        "SSHUser": machine.ssh_user,
        "SSHPort": machine.ssh_port,
        "SSHHostKey": machine.ssh_host_key,
        "DockerVersion": machine.docker_version,
        "EngineOptions": {
            "Labels": machine.engine_labels,
            "InsecureRegistry": machine.engine_insecure_registries,
            "RegistryMirror": machine.engine_registry_mirrors,
            "StorageDriver": machine.engine_storage_driver,
            "Env": machine.engine_env,
            "ArbitraryFlags": machine.engine_opts,
            "InstallURL": machine.engine_install_url,
        },
        "TLS": _tls_info(machine),
        "LastSeen": machine.last_seen.isoformat() if machine.last_seen else None,
        "LastError": machine.last_error,
        "LastErrorDetail": machine.last_error_detail,
        "Tags": machine.tags,
        "CreatedAt": machine.created_at.isoformat(),
        "Operations": [
            {
                "ID": op.pk,
                "Kind": op.kind,
                "Status": op.status,
                "CreatedAt": op.created_at.isoformat(),
                "FinishedAt": op.finished_at.isoformat() if op.finished_at else None,
                "Error": op.error,
            }
            for op in machine.operations.all()
        ],
    }


def _tls_info(machine: Machine) -> dict | None:
    """The engine's certificates: what they name and until when (no key, ever)."""
    if not machine.tls_server_cert:
        return None
    from machines.pki import certs

    ca = certs.ca_for_machine(machine)
    return {
        "ServerCertSerial": machine.tls_server_serial,
        "ServerCertExpiresAt": machine.tls_server_expires_at.isoformat(),
        "ServerCertSANs": certs.names_in(machine.tls_server_cert),
        "ExtraSANs": machine.tls_san,
        "CAExpiresAt": ca.expires_at.isoformat(),
        "ClientCertExpiresAt": ca.client_expires_at.isoformat(),
        "CertPath": str(certs.bundle_dir(machine.name)),
    }
