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
LONG_FILES = (
    "test_kvm_driver.py",
    "test_remote_client.py",
    "test_cloud_amazonec2.py",
    "test_cloud_azure.py",
    "test_swarm_engine.py",
    "test_provision.py",
    "test_browser_inside.py",
    "test_watching_outage.py",
    "test_cli_parity.py",
)


def pytest_collection_modifyitems(items) -> None:
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))
