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


# Files that take minutes go first, so that under pytest-xdist (--dist loadfile) the other
# worker works through the short ones meanwhile instead of waiting on a long tail.
LONG_FILES = ("test_kvm_driver.py",)


def pytest_collection_modifyitems(items) -> None:
    items.sort(key=lambda item: item.path.name not in LONG_FILES)
