"""Provider accounts in the dashboard, and the create form filled from an account's API.

Against the providers' fakes (tests/cloudfakes) with no VM behind them: nothing here boots.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.urls import reverse

from machines.drivers import driver_class
from machines.drivers.cloud.api import CloudError, Failure, with_retries
from machines.drivers.hetzner.driver import label_value
from machines.models import Driver, Machine, Operation

from .cloudfakes.fixtures import KINDS

# What each fake offers by default: region, size (and its price), image; a region elsewhere
# with a size only it has, and one it lacks.
DEFAULTS = {
    "digitalocean": ("region", "nyc3", "size", "s-1vcpu-1gb", "$6.00/month", "debian-12-x64"),
    "hetzner": ("server_location", "fsn1", "server_type", "cx22", "€3.79/month", "debian-12"),
}
ELSEWHERE = {"digitalocean": ("ams3", "g-2vcpu-8gb", "c-2"), "hetzner": ("ash", "cpx11", "cx22")}
LISTING = {"digitalocean": ("/regions", 3), "hetzner": ("/locations", 2)}  # pages of 3


def _token_field(kind: str) -> str:
    return driver_class(kind).token_field


def _account(api_only, token: str | None = None) -> Driver:
    return Driver.objects.create(
        name=f"{api_only.kind}-acc",
        kind=api_only.kind,
        settings={"api_url": api_only.fake.url},
        secrets={_token_field(api_only.kind): token or api_only.token},
    )


def _selected(html: str, field: str) -> tuple[str, list[str]]:
    select = re.search(rf'<select name="opt-{field}"[^>]*>(.*?)</select>', html, re.S)
    assert select, f"no select for {field}"
    options = re.findall(r'<option value="([^"]*)"', select[1])
    chosen = re.search(r'<option value="([^"]*)"[^>]*selected', select[1])
    return (chosen[1] if chosen else ""), options


@pytest.mark.parametrize("api_only", KINDS, indirect=True)
def test_an_admin_adds_an_account_whose_token_is_never_shown_again(api_only, admin_client_):
    kind, token_field = api_only.kind, _token_field(api_only.kind)
    fields = admin_client_.get(reverse("machines:provider_fields"), {"kind": kind}).content
    assert f'name="set-{token_field}"'.encode() in fields and b'type="password"' in fields

    response = admin_client_.post(
        reverse("machines:providers"),
        {
            "kind": kind,
            "name": "acc-1",
            f"set-{token_field}": api_only.token,
            "set-api_url": api_only.fake.url,
        },
        follow=True,
    )
    page = response.content.decode()
    assert "Added acc-1." in page and "accepts the token" in page
    assert api_only.token not in page
    account = Driver.objects.get(name="acc-1")
    assert account.secrets == {token_field: api_only.token}
    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets FROM machines_driver WHERE id = %s", [account.pk])
        assert api_only.token not in cursor.fetchone()[0]

    tested = admin_client_.post(reverse("machines:provider_test", args=[account.pk]))
    text = tested.content.decode()
    assert 'class="test-result ok"' in text
    if kind == "digitalocean":
        assert (
            "ops@example.com (team Ops team), status active; 0 droplet(s) of a limit of 25" in text
        )
    else:
        assert "the project has 0 server(s) and 0 SSH key(s); 5 locations, 7 server types" in text
    assert api_only.token not in admin_client_.get(reverse("machines:providers")).content.decode()


@pytest.mark.parametrize("api_only", KINDS, indirect=True)
def test_an_unsafe_url_is_refused_and_a_wrong_token_is_said_so(api_only, admin_client_):
    kind, token_field = api_only.kind, _token_field(api_only.kind)
    data = {
        "kind": kind,
        "name": "acc-2",
        f"set-{token_field}": api_only.token,
        "set-api_url": "http://api.example.com",
    }
    refused = admin_client_.post(reverse("machines:providers"), data)
    assert refused.status_code == 400
    page = refused.content.decode()
    assert "Use https: over plain http the token would cross the network readable" in page
    assert api_only.token not in page  # not even typed back into the form
    assert not Driver.objects.filter(name="acc-2").exists()

    data.update({"set-api_url": api_only.fake.url, f"set-{token_field}": "wrong"})
    page = admin_client_.post(reverse("machines:providers"), data, follow=True).content.decode()
    assert "Added acc-2, but its test failed:" in page
    assert "refused the API token (401 unauthorized: Unable to authenticate you)" in page


def test_provider_accounts_are_for_admins(operator_client, admin_client_):
    assert operator_client.get(reverse("machines:providers")).status_code == 403
    assert b"Providers</a>" not in operator_client.get(reverse("machines:list")).content
    assert b"Providers</a>" in admin_client_.get(reverse("machines:list")).content


@pytest.mark.parametrize("api_only", KINDS, indirect=True)
def test_the_create_form_offers_what_the_account_can_create(api_only, admin_client_):
    kind, fake = api_only.kind, api_only.fake
    region_field, region, size_field, size, price, image = DEFAULTS[kind]
    account = _account(api_only)
    path, pages = LISTING[kind]
    fake.rate_limit_next("GET", path)  # the first listing is refused once: retried
    url = reverse("machines:driver_fields")
    html = admin_client_.get(url, {"driver": account.pk}, HTTP_HX_REQUEST="true").content.decode()
    assert fake.count("GET", path, 429) == 1 and fake.count("GET", path, 200) == pages

    assert _selected(html, region_field)[0] == region
    chosen, sizes = _selected(html, size_field)
    assert chosen == size and re.search(rf"{size}: [^<]*{re.escape(price)}", html)
    assert "s-1vcpu-512mb-10gb" in sizes if kind == "digitalocean" else "cx11" not in sizes
    assert _selected(html, "image")[0] == image
    asked = len(fake.seen)
    admin_client_.get(url, {"driver": account.pk}, HTTP_HX_REQUEST="true")
    assert len(fake.seen) == asked  # cached: no new request

    there, only_there, not_there = ELSEWHERE[kind]
    html = admin_client_.get(
        url, {"driver": account.pk, f"opt-{region_field}": there}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert _selected(html, region_field)[0] == there
    chosen, sizes = _selected(html, size_field)
    assert only_there in sizes and not_there not in sizes


@pytest.mark.parametrize("api_only", ["hetzner"], indirect=True)
def test_hetzner_hides_images_deprecated_by_either_field(api_only, admin_client_):
    account = _account(api_only)
    url = reverse("machines:driver_fields")
    html = admin_client_.get(url, {"driver": account.pk}, HTTP_HX_REQUEST="true").content.decode()
    _, images = _selected(html, "image")
    assert "debian-12" in images and "rocky-9" in images
    assert "centos-stream-8" not in images  # `deprecated`: a date, as Hetzner's OpenAPI says
    assert "fedora-39" not in images  # the `deprecation` object


@pytest.mark.parametrize("api_only", KINDS, indirect=True)
def test_creating_from_the_form_takes_the_accounts_defaults_and_refuses_unknown_ones(
    api_only, admin_client_
):
    region_field, region, size_field, size, _, image = DEFAULTS[api_only.kind]
    account = _account(api_only)
    base = {"name": "cl-1", "driver": account.pk, "opt-ssh_user": "root", "opt-ssh_port": "22"}
    bad = admin_client_.post(reverse("machines:create"), {**base, f"opt-{region_field}": "xx9"})
    assert bad.status_code == 400
    assert "&#x27;xx9&#x27; is not a region of this account" in bad.content.decode()
    assert not Machine.objects.exists()

    if api_only.kind == "digitalocean":  # an existing key needs its private half
        fingerprint = "3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:45"
        bad = admin_client_.post(
            reverse("machines:create"), {**base, "opt-ssh_key_fingerprint": fingerprint}
        )
        assert "Give the private key of that fingerprint" in bad.content.decode()
    assert admin_client_.post(reverse("machines:create"), base).status_code == 302
    machine = Machine.objects.get(name="cl-1")
    options = machine.driver_options
    assert (options[region_field], options[size_field], options["image"]) == (region, size, image)
    assert Operation.objects.get(machine=machine).kind == "create"


def test_retries_are_bounded_and_only_what_may_be_repeated_is():
    waits: list[float] = []
    limited = Failure(429, "too_many_requests", "API rate limit exceeded.", retry_after=2)

    def always_limited():
        raise CloudError("x")

    with pytest.raises(CloudError) as refused:
        with_retries(
            "P", "listing sizes", always_limited, lambda e: limited, print, sleep=waits.append
        )
    assert waits == [2, 2, 2, 2]
    assert str(refused.value) == (
        "P kept refusing requests as too many (rate limit) while listing sizes, 5 times; "
        "try again in a few minutes"
    )
    outage = Failure(500, "server_error", "Unexpected server-side error")
    waits.clear()
    with pytest.raises(CloudError, match=r"P failed while creating the VM \(500 server_error"):
        with_retries(
            "P",
            "creating the VM",
            always_limited,
            lambda e: outage,
            print,
            idempotent=False,
            sleep=waits.append,
        )
    assert waits == []  # a create is not repeated after an outage: it may have happened


def test_label_values_name_every_machine_one_to_one():
    assert label_value("web-1.example") == "web-1.example"
    assert label_value("web-") != label_value("web")
    assert re.fullmatch(r"[a-z0-9A-Z][a-z0-9A-Z\-_.]*[a-z0-9A-Z]", label_value("web-"))
