"""A tag filter is never a database lookup: `regex`, `a__b` and the like as a tag key in the
list's `tag` and `q` parameters, its htmx partials and its websocket get a clear answer at
once from the real server (`manage.py serve`), never a 500 nor a frozen process.

Before the fix `?tag=regex=.+.+.+.+.+.+.+.+Z` became `tags__regex`, a catastrophic regular
expression SQLite ran in Python (holding the GIL) over every machine's tags: minutes of a
frozen dashboard for one request."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests
from django.test import Client
from django.utils import timezone

from machines.models import Driver, Machine
from machines.services.listing import MachineFilterForm
from tests.browser import serve
from tests.rawsocket import first_frame

SLOW = "regex=.+.+.+.+.+.+.+.+Z"
CRAFTED = [SLOW, "regex=+", "env__regex=.+.+.+.+.+.+.+.+Z", "env__contains=a", "IRegex=a"]
ANSWER_WITHIN = 1.0  # seconds; one crafted request took 177 s before the fix


@pytest.fixture
def dashboard(transactional_db):
    process, base_url = serve("--no-runner")
    yield base_url
    process.close()


def _machines() -> None:
    none = Driver.objects.get_or_create(name="none", defaults={"kind": "none"})[0]
    for i in range(3):
        Machine.objects.create(
            name=f"web-{i}",
            driver=none,
            engine_url="unix:///run/dockerdash-nowhere.sock",
            state="running",
            last_checked=timezone.now(),
            tags={"env": "prod", "note": "a" * 60},
        )


def _session(user) -> requests.Session:
    client = Client()
    client.force_login(user)
    session = requests.Session()
    session.trust_env = False  # no proxy between the test and 127.0.0.1
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    return session


def test_crafted_tag_filters_answer_at_once_on_page_partial_and_socket(dashboard, viewer):
    _machines()
    http = _session(viewer)
    assert http.get(f"{dashboard}/?tag=env%3Dprod", timeout=30).status_code == 200  # warm
    cookie = f"sessionid={http.cookies['sessionid']}"
    for crafted in CRAFTED:
        for param in ("tag", "q"):
            query = f"?{param}={quote(crafted)}"
            page = http.get(f"{dashboard}/{query}", timeout=ANSWER_WITHIN)
            assert page.status_code == 200, (query, page.status_code)
            if param == "tag":
                assert "is not a tag" in page.text, query
            else:
                assert "No machine matches this filter" in page.text, query
            partial = http.get(
                f"{dashboard}/{query}",
                headers={"HX-Request": "true", "HX-Target": "machine-rows"},
                timeout=ANSWER_WITHIN,
            )
            assert partial.status_code == 200, (query, partial.status_code)
            frame = first_frame(dashboard, f"/ws/machines/{query}", cookie, ANSWER_WITHIN)
            assert 'id="machine-rows"' in frame, query
            containers = http.get(f"{dashboard}/containers/{query}", timeout=ANSWER_WITHIN)
            assert containers.status_code == 200, (query, containers.status_code)


def test_a_tag_key_that_is_a_lookup_word_is_refused_in_words():
    for crafted in CRAFTED:
        form = MachineFilterForm({"tag": crafted}, user=None)
        assert "tag" in form.errors, crafted
    assert "database word" in MachineFilterForm({"tag": SLOW}, user=None).errors["tag"][0]
    assert "'__'" in MachineFilterForm({"tag": "a__b=1"}, user=None).errors["tag"][0]


@pytest.mark.django_db
def test_tags_still_filter_by_key_and_exact_value():
    _machines()
    other = Machine.objects.get(name="web-2")
    other.tags = {"env": "test", "weird": "x.+y"}
    other.save()

    def names(query: dict) -> list[str]:
        return sorted(m.name for m in MachineFilterForm(query, user=None).queryset())

    assert names({"tag": "env=prod"}) == ["web-0", "web-1"]
    assert names({"tag": "env"}) == ["web-0", "web-1", "web-2"]
    assert names({"tag": "weird=x.+y"}) == ["web-2"]
    assert names({"tag": "weird=x..y"}) == []  # a value is matched exactly, never a pattern
    assert names({"q": "env=test"}) == ["web-2"]
