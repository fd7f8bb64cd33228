"""A kvm image is a standalone disk from the image folder or a public URL: any other local
file is refused in words that do not say whether it exists; loopback, private and
link-local URLs and redirects to another host are refused unless the administrator allows
a mirror; and an image that points at other files on the hypervisor's host (a backing file,
an external data file, a json: name) is refused after `qemu-img info`."""

from __future__ import annotations

import functools
import http.server
import shlex
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from machines.lib.imagecheck import check_address, inspect_image
from machines.lib.rootfs import HostImageError
from machines.lib.vmimage import fetch_image

from .helpers import MANAGE, run, user_env
from .kvmfleet import check_hypervisor


def _qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


@pytest.fixture
def folder(tmp_path, settings) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    settings.KVM_IMAGE_DIR = images
    return images


def test_only_the_image_folder_gives_local_images_and_says_nothing_of_others(folder, tmp_path):
    _qemu_img("create", "-q", "-f", "qcow2", str(folder / "good.qcow2"), "16M")
    assert fetch_image(str(folder / "good.qcow2")) == (folder / "good.qcow2").resolve()
    assert fetch_image("good.qcow2") == (folder / "good.qcow2").resolve()  # relative to it
    secret = tmp_path / "field.keys"
    secret.write_text("a key\n")
    (folder / "link.qcow2").symlink_to(secret)
    refused = {
        str(secret): "exists, outside",
        str(tmp_path / "missing.qcow2"): "missing, outside",
        str(folder / "missing.qcow2"): "missing, inside",
        str(folder / "link.qcow2"): "a link out of it",
        str(folder / ".." / "field.keys"): "climbing out",
        str(django_settings.FIELD_KEYS_FILE): "the dashboard's own keys",
        "/etc/passwd": "a system file",
        'json:{"file.filename":"/etc/passwd"}': "a json: name",
    }
    for source, why in refused.items():
        with pytest.raises(HostImageError) as error:
            fetch_image(source)
        expected = (
            f"The image {source} is not a file in the image folder {folder.resolve()} "
            "(DOCKERDASH_KVM_IMAGE_DIR): copy it there first"
        )
        assert str(error.value) == expected, why  # the same words, existing or not


def test_images_pointing_at_other_files_are_refused(folder, tmp_path):
    outside = tmp_path / "base.raw"
    _qemu_img("create", "-q", "-f", "raw", str(outside), "16M")
    _qemu_img(
        "create", "-q", "-f", "qcow2", "-b", str(outside), "-F", "raw", str(folder / "b.qcow2")
    )
    data = str(folder / "d.qcow2")
    _qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file={outside}.data", data, "16M")
    json_name = 'json:{"file.driver":"file","file.filename":"/etc/passwd"}'
    _qemu_img(
        "create",
        "-q",
        "-f",
        "qcow2",
        "-u",
        "-b",
        json_name,
        "-F",
        "raw",
        str(folder / "j.qcow2"),
        "16M",
    )
    for name in ("b.qcow2", "d.qcow2", "j.qcow2"):
        with pytest.raises(HostImageError, match="refers to another file"):
            inspect_image(fetch_image(name), name)
    _qemu_img("create", "-q", "-f", "qcow2", str(folder / "ok.qcow2"), "16M")
    assert inspect_image(fetch_image("ok.qcow2"), "ok.qcow2") == "qcow2"
    assert inspect_image(outside, "base.raw") == "raw"


@pytest.fixture
def local_server(tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    (served / "image.qcow2").write_bytes(b"QFI\xfb" + bytes(4096))

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/away"):  # to the cloud metadata service
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.end_headers()
            elif self.path.startswith("/here"):
                self.send_response(302)
                self.send_header("Location", "/image.qcow2")
                self.end_headers()
            else:
                super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=served)
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_non_public_urls_and_redirects_elsewhere_are_refused_unless_a_mirror(
    local_server, settings, monkeypatch, tmp_path
):
    monkeypatch.setenv("DOCKERDASH_CACHE_DIR", str(tmp_path / "cache"))
    settings.KVM_IMAGE_MIRRORS = []
    for url in (
        f"{local_server}/image.qcow2",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/image.qcow2",
        "http://[::1]:8080/image.qcow2",
        "http://localhost/image.qcow2",
    ):
        with pytest.raises(HostImageError, match="loopback, private or link-local"):
            fetch_image(url)
    check_address("https://151.101.2.132/images/x.qcow2")  # a public address: no refusal

    settings.KVM_IMAGE_MIRRORS = [local_server]
    assert fetch_image(f"{local_server}/here").read_bytes()[:4] == b"QFI\xfb"
    with pytest.raises(HostImageError, match="redirects to another host"):
        fetch_image(f"{local_server}/away")
    assert not list((tmp_path / "cache" / "images").glob("*.partial"))


def test_a_name_that_resolves_elsewhere_at_download_time_is_refused(
    local_server, settings, monkeypatch, tmp_path
):
    """DNS rebinding: the name is public when checked and the local server's loopback address
    when the download connects. The address connected to is what counts: the download stops
    before a byte is sent."""
    monkeypatch.setenv("DOCKERDASH_CACHE_DIR", str(tmp_path / "cache"))
    settings.KVM_IMAGE_MIRRORS = []
    real = socket.getaddrinfo
    asked = []

    def rebinding(host, port, *args, **kwargs):
        if host != "images.example":
            return real(host, port, *args, **kwargs)
        asked.append(host)
        address = "151.101.2.132" if len(asked) == 1 else "127.0.0.1"
        return real(address, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    port = local_server.rsplit(":", 1)[1]
    with pytest.raises(HostImageError, match=r"images\.example connected to 127\.0\.0\.1"):
        fetch_image(f"http://images.example:{port}/image.qcow2")
    assert len(asked) == 2  # checked, then connected
    assert not list((tmp_path / "cache" / "images").glob("*"))


@pytest.mark.libvirt
def test_machine_create_refuses_the_dashboards_own_keys_as_an_image(tmp_path):
    check_hypervisor()
    data = tmp_path / "data"
    env = user_env(data, DOCKERDASH_KVM_IMAGE_DIR=str(tmp_path / "images"))
    run(f"{MANAGE} migrate --noinput", env)
    keys = data / "secret.key"
    assert keys.exists()
    command = f"{MANAGE} machine create -d kvm --kvm-image {shlex.quote(str(keys))} kvm-keys"
    failed = run(command, env, check=False, timeout=300)
    assert failed.returncode == 1
    assert f"The image {keys} is not a file in the image folder" in failed.stderr
    run(f"{MANAGE} machine rm -y -f kvm-keys", env, check=False)
