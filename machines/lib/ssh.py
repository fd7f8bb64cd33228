"""SSH to machines: per-machine keys, pinned host keys, streamed commands."""

from __future__ import annotations

import base64
import hashlib
import io
import shlex
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from machines.lib.errorwords import Target, describe
from machines.lib.keys import load_pem_private_key

if TYPE_CHECKING:
    import paramiko

# paramiko is imported where a connection is made: the command line's stored-state and
# create commands never connect, and start faster without it.

CONNECT_TIMEOUT = 10


class SSHError(Exception):
    """SSH failed; the message says where (connect, auth, host key, command)."""


class HostKeyChanged(SSHError):
    pass


class SudoError(SSHError):
    """A non-root user cannot become root without a password (dockerdash uses `sudo -n`)."""


# What `sudo -n` prints when it cannot run the command, and what that means for the user.
SUDO_PROBLEMS = (
    ("a password is required", "sudo asks {user} for a password"),
    ("a terminal is required", "sudo asks {user} for a password"),
    ("not in the sudoers file", "{user} is not in the sudoers file"),
    ("is not allowed to execute", "sudoers does not allow {user} to run a shell as root"),
    ("sudo: not found", "sudo is not installed"),
    ("sudo: command not found", "sudo is not installed"),
)


def generate_key() -> tuple[str, str]:
    """A new Ed25519 key pair as (private key in OpenSSH format, public key line).

    paramiko cannot generate or write Ed25519 keys, so `cryptography` does it.
    """
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public.decode() + " dockerdash"


def public_key_of(private_key: str) -> str:
    """The public key line of a private key (OpenSSH or PEM); ValueError if it is not one."""
    text = private_key.strip().encode() + b"\n"
    if not text.startswith(b"-----BEGIN "):
        raise ValueError("This is not a private key (it should start with -----BEGIN).")
    if b"ENCRYPTED" in text or b"Proc-Type: 4,ENCRYPTED" in text:
        raise ValueError("Passphrase-protected keys are not supported; upload an unlocked key.")
    try:
        if b"OPENSSH PRIVATE KEY" in text:
            key = serialization.load_ssh_private_key(text, password=None)
        else:
            key = load_pem_private_key(text)
    except TypeError:
        raise ValueError("Passphrase-protected keys are not supported.") from None
    except (ValueError, Exception) as e:  # cryptography raises several kinds on bad input
        raise ValueError(f"This private key cannot be read: {e}") from None
    try:
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    except ValueError as e:
        raise ValueError(f"Unsupported key type: {e}") from None
    return public.decode()


def load_pkey(private_key: str) -> paramiko.PKey:
    """A paramiko key from OpenSSH or PEM text (Ed25519, ECDSA or RSA)."""
    import paramiko

    public_key_of(private_key)  # validates, with a clear error
    text = private_key.strip() + "\n"
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise ValueError("Unsupported private key type (use Ed25519, ECDSA or RSA).")


def fingerprint(host_key_line: str) -> str:
    """SHA256 fingerprint as OpenSSH prints it, from 'type base64' text."""
    blob = base64.b64decode(host_key_line.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def quote(value: object) -> str:
    return shlex.quote(str(value))


def command(*words: object) -> str:
    """A shell command line from words, each one quoted."""
    return " ".join(quote(w) for w in words)


def _pinned_client(host: str, port: int, host_key: str) -> paramiko.SSHClient:
    """A client accepting only `host_key`; any key on first contact when it is empty."""
    import paramiko

    client = paramiko.SSHClient()
    if host_key:
        key_type, key_b64 = host_key.split()[:2]
        name = host if port == 22 else f"[{host}]:{port}"
        client.get_host_keys().add(
            name, key_type, paramiko.PKey.from_type_string(key_type, base64.b64decode(key_b64))
        )
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    else:
        # First contact: the key offered is pinned by the caller (trust on first use).
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507
    return client


class SSHSession:
    """One SSH connection to a machine, with its host key pinned.

    `host_key` is the pinned key ("ssh-ed25519 AAAA..."). When it is empty the key offered
    on this first contact is accepted and exposed as `.host_key` for the caller to store.
    """

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        private_key: str,
        host_key: str = "",
        timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        import paramiko

        self.host, self.port, self.user, self.host_key = host, port, user, host_key
        self.client = _pinned_client(host, port, host_key)
        pkey = load_pkey(private_key)
        try:
            self.client.connect(
                host,
                port=port,
                username=user,
                pkey=pkey,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                allow_agent=False,
                look_for_keys=False,
            )
        except paramiko.BadHostKeyException as e:
            raise HostKeyChanged(
                f"The SSH host key of {host}:{port} has changed (it now offers "
                f"{fingerprint(e.key.get_name() + ' ' + e.key.get_base64())}, pinned "
                f"{fingerprint(host_key)}). Refusing to connect: if the host was rebuilt on "
                f"purpose, clear the pinned key and try again."
            ) from None
        except paramiko.SSHException as e:
            if "not found in known_hosts" in str(e):
                raise HostKeyChanged(
                    f"{host}:{port} offered a host key of a different type than the pinned "
                    f"{fingerprint(host_key)}; refusing to connect."
                ) from None
            if isinstance(e, paramiko.AuthenticationException):
                raise SSHError(
                    f"SSH authentication as {user!r} to {host}:{port} failed: the machine's "
                    f"key is not accepted"
                ) from None
            raise SSHError(f"SSH to {host}:{port} failed: {e}") from None
        except TimeoutError:
            raise SSHError(f"SSH to {host}:{port} timed out after {timeout:g} s") from None
        except OSError as e:
            where = Target(f"{host}:{port}", host, port, timeout=timeout, service="SSH")
            raise SSHError(f"SSH to {host}:{port} failed: {describe(e, where)}") from None
        if not host_key:
            key = self.client.get_transport().get_remote_server_key()
            self.host_key = f"{key.get_name()} {key.get_base64()}"

    def run(
        self,
        cmd: str,
        on_line: Callable[[str], None] | None = None,
        timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> tuple[int, str]:
        """Run a command; stream each output line (stdout and stderr merged) to on_line.

        Returns (exit status, whole output). `timeout` bounds silence between reads.
        """
        channel = self.client.get_transport().open_session()
        channel.set_combine_stderr(True)
        if timeout:
            channel.settimeout(timeout)
        channel.exec_command(cmd)
        if stdin is not None:
            channel.sendall(stdin)
            channel.shutdown_write()
        lines: list[str] = []
        try:
            for raw in channel.makefile("rb"):
                line = raw.decode(errors="replace").rstrip("\r\n")
                lines.append(line)
                if on_line:
                    on_line(line)
        except TimeoutError:
            channel.close()
            raise SSHError(f"Command on {self.host} gave no output for {timeout:g} s") from None
        return channel.recv_exit_status(), "\n".join(lines)

    @property
    def is_root(self) -> bool:
        return self.user == "root"

    def as_root(self, cmd: str) -> str:
        """A command line running the shell command `cmd` as root (through `sudo -n` if needed).

        `sudo -n` never prompts: where sudo wants a password it fails at once, and
        `run_script` turns that into a SudoError instead of a hang.
        """
        return ("sh -c " if self.is_root else "sudo -n sh -c ") + quote(cmd)

    def run_script(
        self,
        script: str,
        on_line: Callable[[str], None] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, str]:
        """Run a shell script as root, sent on stdin: file contents written by its here-documents
        (keys included) never appear in any process's command line on the host.

        The body becomes a function run with stdin from /dev/null, so that the shell has read
        the whole script before any command in it could read (and eat) the rest of stdin.
        """
        wrapped = f"dockerdash_main() {{\n{script}\n}}\ndockerdash_main </dev/null\n"
        cmd = "sh -s" if self.is_root else "sudo -n sh -s"
        status, output = self.run(cmd, on_line=on_line, timeout=timeout, stdin=wrapped.encode())
        if status != 0 and not self.is_root:
            self.check_sudo(output)
        return status, output

    def check_sudo(self, output: str) -> None:
        head = output.strip().splitlines()[:2]
        for line in head:
            if "sudo" not in line:
                continue
            for needle, problem in SUDO_PROBLEMS:
                if needle in line:
                    raise SudoError(
                        f"{problem.format(user=self.user)} on {self.host}: dockerdash runs root "
                        f"commands with `sudo -n` (never typing a password), so {self.user} "
                        f"needs passwordless sudo (a sudoers line like `{self.user} ALL=(ALL) "
                        f"NOPASSWD:ALL`), or connect as root. sudo said: {line.strip()}"
                    )

    def put(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Write a file over SFTP, atomically and with its mode set before any byte is in it.

        Files outside the user's reach (a non-root user writing /etc) go to a private
        temporary folder first and are moved into place with `sudo -n install`.
        """
        sftp = self.client.open_sftp()
        try:
            if self.is_root:
                partial = f"{path}.dockerdash-partial"
                self._sftp_write(sftp, partial, data, mode)
                sftp.posix_rename(partial, path)
                return
            folder = self.check("umask 077 && mktemp -d").strip()
            try:
                staged = f"{folder}/file"
                self._sftp_write(sftp, staged, data, 0o600)
                status, output = self.run(
                    "sudo -n " + command("install", "-m", format(mode, "o"), "--", staged, path)
                )
                if status != 0:
                    self.check_sudo(output)
                    raise SSHError(f"Writing {path} on {self.host} failed: {output.strip()}")
            finally:
                self.run(command("rm", "-rf", "--", folder))
        except OSError as e:
            raise SSHError(f"Writing {path} on {self.host} over SFTP failed: {e}") from None
        finally:
            sftp.close()

    @staticmethod
    def _sftp_write(sftp: paramiko.SFTPClient, path: str, data: bytes, mode: int) -> None:
        with sftp.open(path, "wb") as f:
            f.chmod(mode)
            f.write(data)

    def check(self, cmd: str, on_line: Callable[[str], None] | None = None, **kw) -> str:
        status, output = self.run(cmd, on_line=on_line, **kw)
        if status != 0:
            tail = "\n".join(output.splitlines()[-15:])
            raise SSHError(f"Command failed on {self.host} (exit {status}): {cmd}\n{tail}")
        return output

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SSHSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wait_for_ssh(
    host: str,
    port: int,
    user: str,
    private_key: str,
    host_key: str = "",
    timeout: float = 60,
    cancelled: Callable[[], bool] | None = None,
) -> SSHSession:
    """Retry until SSH answers with our key (fresh hosts take a moment to boot)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if cancelled and cancelled():
            break
        try:
            return SSHSession(host, port, user, private_key, host_key, timeout=5)
        except HostKeyChanged:
            raise
        except SSHError as e:
            last = e
            time.sleep(0.3)
    raise SSHError(f"SSH on {host}:{port} did not answer within {timeout:g} s: {last}")
