"""EC2 and Azure accounts in the dashboard, and the create form filled from their APIs per
region: against moto and the Resource Manager fake, with nothing booted."""

from __future__ import annotations

import re

from django.urls import reverse

from machines.models import Driver, Machine, Operation

from .cloudfakes.amazonec2 import ACCESS_KEY, SECRET_KEY
from .cloudfakes.azure import CLIENT, SECRET, SUBSCRIPTION, TENANT


def _selected(html: str, field: str) -> tuple[str, list[str]]:
    select = re.search(rf'<select name="opt-{field}"[^>]*>(.*?)</select>', html, re.S)
    assert select, f"no select for {field}"
    options = re.findall(r'<option value="([^"]*)"', select[1])
    chosen = re.search(r'<option value="([^"]*)"[^>]*selected', select[1])
    return (chosen[1] if chosen else ""), options


def _fields(client, account: Driver, **chosen: str) -> str:
    query = {"driver": account.pk, **{f"opt-{k}": v for k, v in chosen.items()}}
    url = reverse("machines:driver_fields")
    return client.get(url, query, HTTP_HX_REQUEST="true").content.decode()


def _ec2_account(ec2_api) -> Driver:
    return Driver.objects.create(
        name="aws-1",
        kind="amazonec2",
        settings={"endpoint": ec2_api.url},
        secrets={"access_key": ACCESS_KEY, "secret_key": SECRET_KEY},
    )


def _azure_account(azure_api) -> Driver:
    return Driver.objects.create(
        name="az-1",
        kind="azure",
        settings={
            "subscription_id": SUBSCRIPTION,
            "tenant_id": TENANT,
            "client_id": CLIENT,
            "resource_manager_url": azure_api.url,
        },
        secrets={"client_secret": SECRET},
    )


def test_an_admin_adds_ec2_and_azure_accounts_whose_secrets_are_never_shown(
    ec2_api, azure_api, admin_client_
):
    fields = admin_client_.get(reverse("machines:provider_fields"), {"kind": "amazonec2"})
    assert b'name="set-secret_key"' in fields.content and b'name="set-endpoint"' in fields.content
    page = admin_client_.post(
        reverse("machines:providers"),
        {
            "kind": "amazonec2",
            "name": "aws-1",
            "set-access_key": ACCESS_KEY,
            "set-secret_key": SECRET_KEY,
            "set-endpoint": ec2_api.url,
        },
        follow=True,
    ).content.decode()
    newest = ec2_api.debian_ami("us-east-1")
    assert "Added aws-1. Amazon EC2 accepts the access keys:" in page
    assert f"0 instance(s) in us-east-1, where the current Debian 12 AMI is {newest}" in page
    page = admin_client_.post(
        reverse("machines:providers"),
        {
            "kind": "azure",
            "name": "az-1",
            "set-subscription_id": SUBSCRIPTION,
            "set-tenant_id": TENANT,
            "set-client_id": CLIENT,
            "set-client_secret": SECRET,
            "set-environment": "AzurePublicCloud",
            "set-resource_manager_url": azure_api.url,
        },
        follow=True,
    ).content.decode()
    assert (
        "Added az-1. Azure accepts the service principal: subscription Ops (Pay-As-You-Go) "
        "(Enabled), 0 resource group(s); 4 locations"
    ) in page
    listing = admin_client_.get(reverse("machines:providers")).content.decode()
    for secret in (ACCESS_KEY, SECRET_KEY, SECRET):
        assert secret not in page + listing
    assert ec2_api.url in listing and azure_api.url in listing
    assert Driver.objects.get(name="az-1").secrets == {"client_secret": SECRET}


def test_the_ec2_form_offers_the_regions_types_and_debian_amis_of_the_region(
    ec2_api, admin_client_
):
    account = _ec2_account(ec2_api)
    ec2_api.rate_limit_next("DescribeInstanceTypes")  # throttled once: retried
    html = _fields(admin_client_, account)
    assert ec2_api.count("DescribeInstanceTypes", 503) == 1
    region, regions = _selected(html, "region")
    assert region == "us-east-1" and "eu-central-1" in regions
    chosen, types = _selected(html, "instance_type")
    assert chosen == "t2.micro" and "t4g.micro" in types
    assert "t2.micro: 1 vCPU, 1 GB, 16 GB disk, price not given by the API" in html
    ami, amis = _selected(html, "ami")
    assert ami == ec2_api.debian_ami("us-east-1")  # the newest amd64 Debian 12, by owner
    assert amis == [
        ec2_api.debian_ami("us-east-1"),
        ec2_api.debian_ami("us-east-1", "debian-12-amd64-20250610-2136"),
    ]  # not Debian 11, not the look-alike, and no arm64 image for an x86 type

    html = _fields(admin_client_, account, region="eu-central-1", instance_type="t4g.micro")
    assert _selected(html, "region")[0] == "eu-central-1"
    assert _selected(html, "ami") == (
        ec2_api.debian_ami("eu-central-1", "debian-12-arm64-20261101-2301"),
        [ec2_api.debian_ami("eu-central-1", "debian-12-arm64-20261101-2301")],
    )


def test_the_azure_form_offers_locations_sizes_and_images_of_the_location(azure_api, admin_client_):
    account = _azure_account(azure_api)
    html = _fields(admin_client_, account)
    location, locations = _selected(html, "location")
    assert location == "westus" and "europe" not in locations  # a logical region is not one
    size, sizes = _selected(html, "size")
    assert size == "Standard_B1s" and "Standard_NV6ads_A10_v5" not in sizes
    assert "Standard_B1s: 1 vCPU, 1 GB, 30 GB disk, price not given by the API" in html
    assert _selected(html, "image") == (
        "Debian:debian-12:12-gen2:latest",
        ["Debian:debian-12:12-gen2:latest", "Debian:debian-12:12:latest"],
    )
    html = _fields(admin_client_, account, location="westeurope", size="Standard_D2ps_v5")
    assert "Standard_NV6ads_A10_v5" in _selected(html, "size")[1]
    assert _selected(html, "image")[1] == ["Debian:debian-12:12-arm64:latest"]


def test_creating_from_the_form_takes_each_accounts_defaults(ec2_api, azure_api, admin_client_):
    ec2_account, azure_account = _ec2_account(ec2_api), _azure_account(azure_api)
    common = {"opt-ssh_port": "22"}
    ec2 = {
        "name": "e-1",
        "driver": ec2_account.pk,
        "opt-ssh_user": "admin",
        "opt-region": "us-east-1",
        "opt-zone": "a",
        "opt-root_size": "16",
        "opt-volume_type": "gp3",
        "opt-retries": "5",
        "opt-ami": "ami-0123456789abcdef0",  # any AMI may be given
    }
    assert admin_client_.post(reverse("machines:create"), {**common, **ec2}).status_code == 302
    options = Machine.objects.get(name="e-1").driver_options
    assert (options["instance_type"], options["ami"]) == ("t2.micro", "ami-0123456789abcdef0")
    azure = {
        "name": "a-1",
        "driver": azure_account.pk,
        "opt-ssh_user": "docker-user",
        "opt-resource_group": "docker-machine",
        "opt-location": "westeurope",
        "opt-docker_port": "2376",
        "opt-vnet": "docker-machine-vnet",
        "opt-subnet": "docker-machine",
        "opt-subnet_prefix": "192.168.0.0/16",
        "opt-storage_type": "Standard_LRS",
        "opt-size": "Standard_X9",
    }
    refused = admin_client_.post(reverse("machines:create"), azure)
    assert "&#x27;Standard_X9&#x27; is not a size offered in westeurope" in refused.content.decode()
    azure["opt-size"] = ""
    assert admin_client_.post(reverse("machines:create"), azure).status_code == 302
    options = Machine.objects.get(name="a-1").driver_options
    assert (options["size"], options["image"]) == (
        "Standard_B1s",
        "Debian:debian-12:12-gen2:latest",
    )
    assert Operation.objects.filter(kind="create").count() == 2
