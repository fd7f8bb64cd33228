"""Errors in words: a health check that cannot reach an engine says why in one sentence (who
refused, what timed out, which name did not resolve, which certificate and which CA), with
the library's own text kept as its details, on the pages and in `machine inspect`."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from machines.lib.ssh import SSHError, SSHSession, generate_key
from machines.models import Driver, Machine
from machines.operations import checks
from machines.pki import certs

from .fleet import closed_port
from .helpers import BlackHole
from .tlsservers import TLSListener, other_ca

pytestmark = pytest.mark.django_db


def _attached(url: str, name: str = "eng-1") -> Machine:
    none = Driver.objects.get_or_create(name="none", defaults={"kind": "none"})[0]
    return Machine.objects.create(name=name, driver=none, engine_url=url, state="running")


def _checked(machine: Machine, timeout: float = 2) -> Machine:
    checks.check_machine(machine, timeout=timeout)
    machine.refresh_from_db()
    assert machine.engine_reachable is False
    return machine


def test_connection_refused_and_its_details():
    port = closed_port()
    machine = _checked(_attached(f"tcp://127.0.0.1:{port}"))
    assert machine.last_error == (
        f"Engine unreachable: 127.0.0.1:{port} refused the connection: is Docker running and "
        "listening there?"
    )
    assert "Connection refused" in machine.last_error_detail
    assert machine.last_error_detail.startswith("ConnectionRefusedError: ")  # the text behind


def test_a_host_that_never_answers_times_out_in_words():
    hole = BlackHole()
    try:
        machine = _checked(_attached(f"tcp://{hole.address}"), timeout=1)
    finally:
        hole.close()
    assert machine.last_error == (
        f"Engine unreachable: {hole.address} did not answer within 1 s (the host is down, or a "
        "firewall drops the traffic)."
    )


def test_a_name_that_does_not_resolve():
    machine = _checked(_attached("tcp://no-such-host.invalid:2376"))
    assert machine.last_error == (
        "Engine unreachable: the name no-such-host.invalid could not be resolved (DNS): check "
        "the address."
    )


def test_a_missing_socket():
    machine = _checked(_attached("unix:///tmp/dockerdash-no-such.sock"))
    assert machine.last_error == (
        "Engine unreachable: nothing listens at /tmp/dockerdash-no-such.sock (there is no such "
        "socket)."
    )


def test_a_certificate_from_another_ca_is_named_with_the_ca(tmp_path):
    listener = TLSListener(tmp_path, other_ca())
    try:
        machine = _checked(_attached(f"tcp://127.0.0.1:{listener.port}"))
    finally:
        listener.close()
    ca = certs.get_or_create_ca().name
    assert machine.last_error.startswith(
        f"Engine unreachable: the TLS certificate 127.0.0.1:{listener.port} presented (subject "
        "CN=tls-test,O=dockerdash, issued by CN=Someone else's CA"
    )
    assert machine.last_error.endswith(
        f"is not trusted by the CA {ca}: it was not issued by that CA."
    )
    assert "CERTIFICATE_VERIFY_FAILED" in machine.last_error_detail


def test_an_engine_that_refuses_our_client_certificate(tmp_path):
    ours = certs.get_or_create_ca()
    stranger = other_ca()
    listener = TLSListener(tmp_path, ours, client_ca=stranger.cert)
    try:
        machine = _checked(_attached(f"tcp://127.0.0.1:{listener.port}"))
    finally:
        listener.close()
    assert machine.last_error == (
        f"Engine unreachable: 127.0.0.1:{listener.port} refused the dashboard's client "
        f"certificate of the CA {ours.name} (the engine does not trust it): provision the "
        "machine again or regenerate its certificates."
    )


def test_ssh_refused_in_words():
    port = closed_port()
    with pytest.raises(SSHError) as error:
        SSHSession("127.0.0.1", port, "root", generate_key()[0], timeout=2)
    assert str(error.value) == (
        f"SSH to 127.0.0.1:{port} failed: 127.0.0.1:{port} refused the connection: is SSH "
        "running and listening there?"
    )


def test_the_details_are_behind_a_toggle_and_in_inspect(viewer_client):
    machine = _checked(_attached(f"tcp://127.0.0.1:{closed_port()}"))
    page = viewer_client.get(reverse("machines:list")).content.decode()
    assert '<details class="error-detail"><summary>Engine unreachable: 127.0.0.1:' in page
    detail = viewer_client.get(reverse("machines:detail", args=[machine.name])).content.decode()
    assert "Connection refused" in detail
    out = io.StringIO()
    call_command("machine", "inspect", machine.name, stdout=out)
    inspected = json.loads(out.getvalue())
    assert inspected["LastError"] == machine.last_error
    assert "Connection refused" in inspected["LastErrorDetail"]
