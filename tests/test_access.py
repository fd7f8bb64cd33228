"""Login on every page, POST and websocket; roles checked server-side."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from dockerdash.asgi import application
from machines.models import BulkAction, Cluster, Container, Machine, Operation, Stack
from machines.sockets.routing import websocket_urlpatterns

from .fleet import make_machine

# A value for each kind of URL parameter, so every pattern can be reversed.
SAMPLE_KWARGS = {
    "name": "web-1",
    "action": "restart",
    "pk": 1,
    "machine_id": 1,
    "operation_id": 1,
    "container_id": "c0ffee",
    "bulk_id": 1,
    "cluster_id": 1,
    "stack_id": 1,
    "stack": "shop",
    "service": "shop_web",
}
# Django's own public pages: the login form and logout (no password reset: it is gone); a
# stack's webhook, whose URL carries its key (tests/test_stack_diff.py: a wrong key is 404).
PUBLIC = ("login", "logout", "stack_webhook")


def _all_patterns(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for p in resolver.url_patterns:
        if isinstance(p, URLResolver):
            ns = f"{p.namespace}:" if p.namespace else ""
            yield from _all_patterns(p, prefix + ns)
        elif isinstance(p, URLPattern) and p.name:
            yield prefix + p.name, p


def _urls():
    for name, pattern in _all_patterns():
        if name.split(":")[-1] in PUBLIC:
            continue
        converters = set(pattern.pattern.regex.groupindex)
        if not converters <= set(SAMPLE_KWARGS):
            continue  # the admin's per-model pages; its index and login cover the admin
        kwargs = {k: v for k, v in SAMPLE_KWARGS.items() if k in converters}
        yield name, reverse(name, kwargs=kwargs or None)


URLS = sorted(set(_urls()))


def test_every_url_pattern_is_enumerated():
    names = {name for name, _ in URLS}
    assert {
        "machines:list",
        "machines:create",
        "machines:detail",
        "machines:action",
        "machines:remove",
        "machines:operation_cancel",
        "machines:fleet",
        "machines:container_action",
        "machines:container_logs",
        "machines:client_bundle",
        "admin:index",
    } <= names


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "url"), URLS)
def test_anonymous_get_is_sent_to_login(name, url):
    response = Client().get(url)
    if _api(name, response):
        return
    assert response.status_code == 302, name
    assert response["Location"].startswith(("/accounts/login/", "/admin/login/")), name


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "url"), URLS)
def test_anonymous_post_is_forbidden(name, url, generic_machine):
    count = Operation.objects.count()
    response = Client().post(url, {"name": "x"})
    if _api(name, response):
        assert Operation.objects.count() == count
        return
    if name.startswith("admin:"):
        # The admin has its own login page and redirects there.
        assert response.status_code in (302, 403), name
    else:
        assert response.status_code == 403, name
    assert Operation.objects.count() == count


API_PAGES = ("api:openapi-json", "api:openapi-view")


def _api(name: str, response) -> bool:
    """The REST API answers an anonymous request 401 in JSON (a script follows no login
    redirect); only its document and docs page send a person to the login page."""
    if not name.startswith("api:") or name in API_PAGES:
        return False  # the pages' rules: a login redirect, a 403 to a POST
    if response.status_code == 401:
        assert response.json()["detail"].startswith("Send an API token"), name
    else:  # the API's root, or a method the path does not take
        assert response.status_code in (404, 405), (name, response.status_code)
    return True


def _ws_paths():
    for route in websocket_urlpatterns:
        path = str(route.pattern)
        for key, value in SAMPLE_KWARGS.items():
            path = path.replace(f"<int:{key}>", str(value)).replace(f"<str:{key}>", str(value))
        yield "/" + path


WS_PATHS = list(_ws_paths())


def test_every_websocket_route_is_enumerated():
    assert WS_PATHS == [
        "/ws/machines/",
        "/ws/machines/1/",
        "/ws/machines/1/containers/",
        "/ws/machines/1/containers/c0ffee/logs/",
        "/ws/machines/1/containers/c0ffee/terminal/",
        "/ws/machines/1/containers/c0ffee/stats/",
        "/ws/machines/1/shell/",
        "/ws/machines/1/engine/",
        "/ws/containers/",
        "/ws/bulk/1/",
        "/ws/operations/1/",
        "/ws/alerts/",
        "/ws/clusters/1/",
        "/ws/clusters/1/stacks/1/",
        "/ws/clusters/1/stacks/1/logs/shop_web/",
        "/ws/machines/1/metrics/",
    ]


async def _connect(path: str, headers: list[tuple[bytes, bytes]]):
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return connected


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", WS_PATHS)
async def test_anonymous_websocket_is_refused(path):
    headers = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]
    assert not await _connect(path, headers)


def _session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.mark.django_db(transaction=True)
async def test_websocket_from_foreign_origin_is_refused(viewer, generic_machine):
    from asgiref.sync import sync_to_async

    cookie = await sync_to_async(_session_cookie)(viewer)
    good = [
        (b"origin", b"http://127.0.0.1:8000"),
        (b"host", b"127.0.0.1:8000"),
        (b"cookie", cookie),
    ]
    evil = [(b"origin", b"http://evil.example"), (b"host", b"127.0.0.1:8000"), (b"cookie", cookie)]
    assert await _connect("/ws/machines/", good)
    assert not await _connect("/ws/machines/", evil)


def _every_route_has_its_object() -> None:
    """The objects WS_PATHS name (pk 1, container c0ffee), so that every consumer accepts
    (a host's root shell needs a machine dockerdash provisions)."""
    machine = make_machine(
        "generic",
        pk=1,
        name="web-1",
        engine_url="unix:///nonexistent/docker.sock",
        tags={"env": "a"},
    )
    Container.objects.create(machine=machine, container_id="c0ffee", name="app")
    Operation.objects.create(pk=1, machine=machine, machine_name="web-1", kind="restart")
    BulkAction.objects.create(pk=1, kind="restart")
    cluster = Cluster.objects.create(pk=1, name="web-1")
    Stack.objects.create(pk=1, cluster=cluster, name="shop", compose="services: {}\n")


# Another port, another scheme, another host, no Origin at all: none is the dashboard's.
FOREIGN_ORIGINS = [
    b"http://localhost:3000",
    b"http://127.0.0.1:3000",
    b"https://127.0.0.1:8000",
    b"http://127.0.0.1:8000.evil.example",
    None,
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", WS_PATHS)
async def test_websocket_only_from_the_dashboards_own_origin(path, admin_user):
    from asgiref.sync import sync_to_async

    await sync_to_async(_every_route_has_its_object)()
    cookie = await sync_to_async(_session_cookie)(admin_user)
    host = [(b"host", b"127.0.0.1:8000"), (b"cookie", cookie)]
    for origin in FOREIGN_ORIGINS:
        headers = host if origin is None else [(b"origin", origin), *host]
        assert not await _connect(path, headers), origin
    assert await _connect(path, [(b"origin", b"http://127.0.0.1:8000"), *host])


@pytest.mark.django_db(transaction=True)
async def test_websocket_from_a_trusted_origin_is_accepted(settings, viewer):
    from asgiref.sync import sync_to_async

    settings.CSRF_TRUSTED_ORIGINS = ["https://dash.example.com"]
    cookie = await sync_to_async(_session_cookie)(viewer)
    headers = [(b"host", b"127.0.0.1:8000"), (b"cookie", cookie)]
    assert await _connect("/ws/machines/", [(b"origin", b"https://dash.example.com"), *headers])
    assert not await _connect("/ws/machines/", [(b"origin", b"http://dash.example.com"), *headers])
    # A Host the dashboard does not answer to is refused, as Django refuses it for HTTP.
    evil_host = [(b"origin", b"http://evil.example"), (b"host", b"evil.example"), headers[1]]
    assert not await _connect("/ws/machines/", evil_host)


@pytest.mark.django_db(transaction=True)
async def test_logged_in_viewer_gets_a_snapshot_without_actions(viewer, generic_machine):
    from asgiref.sync import sync_to_async

    cookie = await sync_to_async(_session_cookie)(viewer)
    communicator = WebsocketCommunicator(
        application,
        "/ws/machines/",
        headers=[
            (b"origin", b"http://127.0.0.1:8000"),
            (b"host", b"127.0.0.1:8000"),
            (b"cookie", cookie),
        ],
    )
    connected, _ = await communicator.connect()
    assert connected
    snapshot = await communicator.receive_from()
    await communicator.disconnect()
    assert 'id="machine-rows"' in snapshot
    assert "web-1" in snapshot
    assert "hx-post" not in snapshot


@pytest.mark.django_db
def test_viewer_sees_no_buttons_and_gets_403_on_every_post(viewer_client, generic_machine):
    page = viewer_client.get(reverse("machines:list")).content.decode()
    assert "web-1" in page
    assert "hx-post" not in page
    assert "Create machine" not in page
    detail = viewer_client.get(reverse("machines:detail", args=["web-1"])).content.decode()
    assert "Restart" not in detail and "Remove" not in detail
    posts = [
        reverse("machines:action", args=["web-1", action])
        for action in ("start", "stop", "restart", "kill", "provision", "upgrade")
    ] + [
        reverse("machines:create"),
        reverse("machines:remove", args=["web-1"]),
        reverse("machines:operation_cancel", args=[1]),
        reverse("machines:container_action", args=["web-1", "c0ffee", "stop"]),
    ]
    for url in posts:
        assert viewer_client.post(url, {"confirm": "web-1"}).status_code == 403, url
    assert viewer_client.get(reverse("machines:create")).status_code == 403
    # Container logs and the client certificates are keys to the engine: operators only.
    assert viewer_client.get(reverse("machines:client_bundle", args=["web-1"])).status_code == 403
    logs = reverse("machines:container_logs", args=["web-1", "c0ffee"])
    assert viewer_client.get(logs).status_code == 403
    assert Operation.objects.count() == 0
    assert Machine.objects.filter(name="web-1").exists()


@pytest.mark.django_db
def test_operator_can_act_but_not_create_or_remove(operator_client, generic_machine):
    page = operator_client.get(reverse("machines:list")).content.decode()
    assert "hx-post" in page and "Create machine" not in page
    response = operator_client.post(
        reverse("machines:action", args=["web-1", "restart"]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert 'id="machine-' in response.content.decode()
    op = Operation.objects.get()
    assert (op.kind, op.status, op.requested_by.username) == ("restart", "pending", "operator")
    assert operator_client.get(reverse("machines:create")).status_code == 403
    remove = operator_client.post(reverse("machines:remove", args=["web-1"]), {"confirm": "web-1"})
    assert remove.status_code == 403


@pytest.mark.django_db
def test_second_click_while_one_is_pending_is_refused(operator_client, generic_machine):
    url = reverse("machines:action", args=["web-1", "restart"])
    assert operator_client.post(url, HTTP_HX_REQUEST="true").status_code == 200
    second = operator_client.post(url, HTTP_HX_REQUEST="true")
    assert second.status_code == 409
    assert "web-1 is busy: restart (pending)" in second.content.decode()
    assert Operation.objects.count() == 1


@pytest.mark.django_db
def test_empty_list_leads_to_create(admin_client_):
    page = admin_client_.get(reverse("machines:list")).content.decode()
    assert "No machines yet" in page
    assert reverse("machines:create") in page


@pytest.mark.django_db
def test_htmx_request_gets_the_rows_partial(viewer_client, generic_machine):
    response = viewer_client.get(reverse("machines:list"), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith("<tr")
    assert "<html" not in body


# -- Teams: every route and websocket x (anonymous, viewer, operator-of-other-group,
# operator, admin). The operators hold no global role: only their team's, on machine group
# "a" (env=a, which web-1 is in) or "b" (env=b). A machine outside a user's groups is a 404,
# and never named on any page the user can open.
NAMES_THE_MACHINE = {"name", "machine_id", "operation_id", "container_id"}
ROLES = ("anonymous", "viewer", "other", "operator", "admin")


def _people() -> dict:
    from django.contrib.auth.models import Group

    from .helpers import team_member

    _every_route_has_its_object()
    make_machine("generic", name="db-9", tags={"env": "b"})
    people = {"anonymous": None}
    for role in ("viewer", "admin"):
        people[role] = User.objects.create_user(role, password="x-pw-12345")
        people[role].groups.add(Group.objects.get(name=role))
    people["other"] = team_member("other", "operator", "b", "env=b")
    people["operator"] = team_member("operator", "operator", "a", "env=a")
    return people


def _names_machine(name: str) -> bool:
    pattern = dict(_all_patterns())[name]
    return bool(NAMES_THE_MACHINE & set(pattern.pattern.regex.groupindex))


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_every_route_for_every_role(role):
    person = _people()[role]
    client = Client()
    if person is not None:
        client.force_login(person)
    for name, url in URLS:
        if name.startswith("admin:") or _api(name, _NoApi()):
            continue
        for method in ("get", "post"):
            ops = Operation.objects.count()
            response = getattr(client, method)(url, {"confirm": "web-1"})
            code = response.status_code
            assert code < 500, (role, method, name, code)
            if role == "anonymous":
                assert code in (302, 403), (method, name, code)
            elif role == "other" and _names_machine(name):
                # Exactly what a machine that does not exist gets: a 404 (or a 403/405
                # that does not depend on the machine: a page for admins, a GET to a POST).
                missing = getattr(client, method)(url.replace("web-1", "no-such-machine"))
                assert code == missing.status_code and code in (403, 404, 405), (name, code)
            elif role == "other":
                assert b"web-1" not in response.content, (method, name)
            elif role == "operator" and "/clusters/" in url:
                # Clusters span machines of any team: global roles only (a 404, as for the
                # fleet's alerts), whatever a team's role on web-1.
                assert code in (404, 405), (method, name, code)
            elif role == "operator" and _names_machine(name) and code == 404:
                # Only where a global admin gets a 404 too (an action the route lacks, a
                # machine without TLS certificates): web-1 is the operator's machine.
                admin = Client()
                admin.force_login(User.objects.get(username="admin"))
                assert getattr(admin, method)(url).status_code == 404, (method, name)
            if role in ("anonymous", "viewer", "other"):
                assert Operation.objects.count() == ops, (role, method, name)


class _NoApi:
    status_code = 404


WS_OPERATE = {"logs", "terminal", "shell"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", WS_PATHS)
async def test_every_websocket_for_every_role(role, path):
    from asgiref.sync import sync_to_async

    person = (await sync_to_async(_people)())[role]
    headers = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]
    if person is not None:
        headers.append((b"cookie", await sync_to_async(_session_cookie)(person)))
    socket = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await socket.connect()
    frames = []
    while connected and not await socket.receive_nothing(timeout=0.3):
        frames.append(await socket.receive_output())
    await socket.disconnect()
    names_machine = "/1/" in path
    if role == "anonymous":
        expected = False
    elif role == "other":
        # Its own lists open (web-1 absent from them); web-1's sockets and the fleet's
        # alerts (they name every machine) do not.
        expected = not names_machine and path != "/ws/alerts/"
        assert not any("web-1" in f.get("text", "") for f in frames), path
    elif role == "operator":
        expected = path != "/ws/machines/1/shell/" and path != "/ws/alerts/"
        expected = expected and path != "/ws/bulk/1/"  # someone else's bulk action
        expected = expected and not path.startswith("/ws/clusters/")  # global roles only
    elif role == "viewer":
        expected = not any(f"/{word}/" in path for word in WS_OPERATE)
    else:
        expected = True
    assert connected == expected, (role, path)
