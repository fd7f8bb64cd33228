"""The `machine` command line (docker-machine's), one module per group of subcommands.

`manage.py machine ACTION ...` imports only the module of ACTION: `machine ls` never loads
the SSH or Docker libraries, and `machine create` loads the driver classes for their flags.
Each module has `add_arguments(action, parser)` and `run(action, cli, **options)`, where
`cli` is the management command (its stdout and stderr); errors are CommandError.
"""

from __future__ import annotations

# action -> (module in this package, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "ls": ("ls", "List machines (stored state; never waits on a host)"),
    "inspect": ("ls", "Details of a machine as JSON"),
    "ip": ("ls", "Print the IP of a machine"),
    "url": ("ls", "Print the URL of a machine"),
    "status": ("ls", "Print the status of a machine"),
    "active": ("ls", "Print the machine DOCKER_HOST points at"),
    "version": ("ls", "dockerdash's version, or a machine's Docker's"),
    "create": ("create", "Create a machine"),
    "start": ("lifecycle", "Start machines"),
    "stop": ("lifecycle", "Stop machines"),
    "restart": ("lifecycle", "Restart machines"),
    "kill": ("lifecycle", "Kill machines"),
    "provision": ("lifecycle", "Provision machines again (idempotent)"),
    "upgrade": ("lifecycle", "Upgrade Docker on machines to the newest package"),
    "regenerate-certs": ("lifecycle", "New TLS certificates for machines (restarts Docker only)"),
    "rm": ("lifecycle", "Remove machines"),
    "cancel": ("lifecycle", "Cancel the operation under way on machines, and wait for it to stop"),
    "tag": ("tags", "Show, set (key=value) or remove (--rm key) the tags of a machine"),
    "env": ("env", "Print the commands pointing the docker CLI at a machine"),
    "config": ("env", "Print the docker CLI's flags for a machine"),
    "ssh": ("ssh", "Log into a machine with SSH or run a command on it"),
    "scp": ("ssh", "Copy files to, from or between machines (machine:path)"),
    "mount": ("ssh", "Mount a machine's folder here with sshfs (-u: unmount)"),
    "import-docker-machine": ("store", "Bring in the machines of a docker-machine store"),
    # Runs one operation and exits; `follow` starts it detached when no runner is alive.
    "run-operation": ("follow", ""),
}
