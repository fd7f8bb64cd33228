from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from machines.services.roles import ADMIN, OPERATOR, VIEWER

pytest_plugins = [
    "tests.fleet",
    "tests.browser",
    "tests.sockets",
    "tests.cloudfakes.fixtures",
    "tests.registry",
    "tests.inside",
    "tests.receivers",
    "tests.swarmfleet",
    "tests.gitrepo",
]


def _user(role: str):
    user = get_user_model().objects.create_user(username=role, password=f"{role}-pw-1234")
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def viewer(db):
    return _user(VIEWER)


@pytest.fixture
def operator(db):
    return _user(OPERATOR)


@pytest.fixture
def admin_user(db):
    return _user(ADMIN)


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer_client(viewer) -> Client:
    return _client(viewer)


@pytest.fixture
def operator_client(operator) -> Client:
    return _client(operator)


@pytest.fixture
def admin_client_(admin_user) -> Client:
    return _client(admin_user)


# Files that take minutes go first, longest first (as measured with four workers), so that
# under pytest-xdist (--dist loadfile) the other workers work through the short ones meanwhile
# instead of one worker being the suite's long tail.
LONG_FILES = (  # seconds each took in a fresh clone's four-worker run (under load)
    "test_kvm_driver.py",  # 522
    "test_remote_client.py",  # 278
    "test_provision.py",  # 174
    "test_swarm_engine.py",  # 161
    "test_cloud_azure.py",  # 159
    "test_cloud_amazonec2.py",  # 145
    "test_browser_inside.py",  # 136
    "test_watching_outage.py",  # 91
    "test_cloud_lifecycle.py",  # 79
    "test_cloud_failures.py",  # 70
    "test_cli_scripts.py",  # 66
    "test_browser_clusters.py",  # 66
    "test_cli_parity.py",  # 64
    "test_browser_live.py",  # 64
    "test_stack_git.py",  # 53
    "test_scale_out.py",  # 52
    "test_cli_container.py",  # 50
    "test_access.py",  # 48
    "test_alerts_engine.py",  # 46
    "test_container_driver.py",  # 43
    "test_browser_fleet.py",  # 40
    "test_cli_mount.py",  # 32
    "test_client_certs.py",  # 32
    "test_browser_cloud_ec2.py",  # 31
    "test_deploy_security.py",  # 30
    "test_runner.py",  # 30
    "test_cli_env.py",  # 30
    "test_driver_seam.py",  # 29
    "test_cli_swarm.py",  # 27
    "test_dead_runner.py",  # 27
    "test_browser_alerts.py",  # 23
    "test_browser_create.py",  # 22
    "test_provision_ssh.py",  # 22
    "test_teams.py",  # 22
)


def pytest_collection_modifyitems(items) -> None:
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))
