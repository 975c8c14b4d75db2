"""Bearer authentication and /admin/keys over websockets' Request/Response objects, and over a real socket."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from live.admin import (
    ADMIN_PREFIX,
    UNAUTHORIZED_MESSAGE,
    authenticate,
    bearer_token,
    handle_admin,
    json_response,
)
from live.keys import KeyRecord, KeyStore, hash_token


def request(path: str, token: str | None = None, method: str = "GET", scheme: str = "Bearer") -> Request:
    headers = Headers([("Host", "localhost")])
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    return Request(path, headers, method=method)


def body(response: Response) -> dict:
    assert response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(response.body)
    return json.loads(response.body)


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path)


@pytest.fixture
def admin_token(store: KeyStore) -> str:
    token = store.ensure_admin()
    assert token is not None
    return token


@pytest.fixture
def user_token(store: KeyStore) -> str:
    return store.create(name="student")[1]


# -- bearer tokens and authentication --------------------------------------------


def test_bearer_token_comes_only_from_the_authorization_header():
    assert bearer_token(request("/v1/stream", "ns_x")) == "ns_x"
    assert bearer_token(request("/v1/stream", "ns_x", scheme="bearer")) == "ns_x"
    assert bearer_token(request("/v1/stream?key=ns_x&token=ns_x&access_token=ns_x")) is None
    assert bearer_token(request("/v1/stream", "ns_x", scheme="Basic")) is None
    assert bearer_token(request("/v1/stream", "", scheme="Bearer")) is None
    assert bearer_token(request("/v1/stream", "a b")) is None
    twice = request("/v1/stream", "ns_x")
    twice.headers["Authorization"] = "Bearer ns_y"
    assert bearer_token(twice) is None


def test_authenticate_returns_the_record_of_a_good_key(store, user_token):
    record = authenticate(store, request("/v1/stream", user_token))
    assert isinstance(record, KeyRecord) and record.name == "student"


def test_missing_unknown_and_revoked_keys_get_the_same_401(store, user_token):
    record = store.verify(user_token)
    unknown = f"ns_{record.id}_{'A' * 43}"
    store_copy = KeyStore(store.state_dir)
    store_copy.revoke(record.id)
    answers = [authenticate(store, r) for r in (
        request("/v1/stream"), request("/v1/stream", unknown), request("/v1/stream", user_token),
        request(f"/v1/stream?token={user_token}"), request("/v1/stream", "garbage"),
    )]
    for answer in answers:
        assert isinstance(answer, Response)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert body(answer) == {"error": UNAUTHORIZED_MESSAGE}
    assert len({a.body for a in answers}) == 1


def test_a_damaged_key_file_fails_closed(store, user_token):
    store.path.write_text("{")
    answer = authenticate(store, request("/v1/stream", user_token))
    assert isinstance(answer, Response) and answer.status_code == 503
    assert "keys.json" not in answer.body.decode()  # the detail goes to the log, not the client


# -- /admin/keys -----------------------------------------------------------------


def test_admin_creates_lists_and_revokes_keys(store, admin_token):
    created = handle_admin(store, request("/admin/keys?name=room%205&max_streams=3", admin_token, "POST"))
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"
    data = body(created)
    new_key, new_record = data["key"], data["record"]
    assert (new_record["name"], new_record["max_streams"], new_record["admin"]) == ("room 5", 3, False)
    assert created.headers["Location"] == f"/admin/keys/{new_record['id']}"
    assert store.verify(new_key).id == new_record["id"]

    listed = handle_admin(store, request("/admin/keys", admin_token))
    assert listed.status_code == 200
    records = {r["id"]: r for r in body(listed)["keys"]}
    assert records[new_record["id"]]["name"] == "room 5"
    assert len(records) == 2
    text = listed.body.decode()
    for secret in (new_key, admin_token, hash_token(new_key), hash_token(admin_token)):
        assert secret not in text
    assert "sha256" not in text and '"key"' not in text

    revoked = handle_admin(store, request(f"/admin/keys/{new_record['id']}", admin_token, "DELETE"))
    assert revoked.status_code == 200 and body(revoked) == {"id": new_record["id"], "revoked": True}
    assert store.verify(new_key) is None
    listed = {r["id"]: r for r in body(handle_admin(store, request("/admin/keys", admin_token)))["keys"]}
    assert listed[new_record["id"]]["revoked"] is True


def test_admin_can_create_admin_keys(store, admin_token):
    data = body(handle_admin(store, request("/admin/keys?admin=1", admin_token, "POST")))
    assert data["record"]["admin"] is True
    assert handle_admin(store, request("/admin/keys", data["key"])).status_code == 200


def test_non_admin_key_cannot_manage_keys(store, user_token, admin_token):
    before = store.list()
    for method, path in (("POST", "/admin/keys?admin=1"), ("GET", "/admin/keys"),
                         ("DELETE", f"/admin/keys/{before[0].id}")):
        answer = handle_admin(store, request(path, user_token, method))
        assert answer.status_code == 403, (method, path)
        assert "admin" in body(answer)["error"]
    assert store.list() == before


def test_admin_endpoints_need_a_key(store, admin_token):
    for token in (None, "ns_deadbeef_" + "A" * 43):
        answer = handle_admin(store, request("/admin/keys", token, "POST"))
        assert answer.status_code == 401 and "WWW-Authenticate" in answer.headers
    assert len(store.list()) == 1


def test_revoking_an_unknown_key_is_404(store, admin_token):
    answer = handle_admin(store, request("/admin/keys/deadbeef", admin_token, "DELETE"))
    assert answer.status_code == 404 and "deadbeef" in body(answer)["error"]


@pytest.mark.parametrize("method,path,allow", [
    ("PUT", "/admin/keys", "GET, POST"),
    ("DELETE", "/admin/keys", "GET, POST"),
    ("GET", "/admin/keys/deadbeef", "DELETE"),
    ("POST", "/admin/keys/deadbeef", "DELETE"),
])
def test_other_methods_are_405_with_allow(store, admin_token, method, path, allow):
    answer = handle_admin(store, request(path, admin_token, method))
    assert answer.status_code == 405 and answer.headers["Allow"] == allow


@pytest.mark.parametrize("path,words", [
    ("/admin/keys?admin=2", "admin must be 0 or 1"),
    ("/admin/keys?admin=yes", "admin must be 0 or 1"),
    ("/admin/keys?max_streams=-1", "max_streams must be a whole number"),
    ("/admin/keys?max_streams=abc", "max_streams must be a whole number"),
    ("/admin/keys?max_streams=99999", "max_streams must be a whole number"),
    ("/admin/keys?max_streams=%C2%B2", "max_streams must be a whole number"),
    ("/admin/keys?name=" + "x" * 65, "at most 64 characters"),
    ("/admin/keys?name=a%0Ab", "printable"),
    ("/admin/keys?name=%FF", "malformed query string"),
    ("/admin/keys?colour=red", "unknown parameter 'colour'"),
    ("/admin/keys?name=a&name=b", "given twice"),
    ("/admin/keys?novalue", "malformed query string"),
])
def test_bad_query_values_are_400_with_a_clear_message(store, admin_token, path, words):
    answer = handle_admin(store, request(path, admin_token, "POST"))
    assert answer.status_code == 400
    assert words in body(answer)["error"]
    assert len(store.list()) == 1


def test_get_and_delete_take_no_parameters(store, admin_token):
    assert handle_admin(store, request("/admin/keys?all=1", admin_token)).status_code == 400
    bad_id = handle_admin(store, request("/admin/keys/DEADBEEF", admin_token, "DELETE"))
    assert bad_id.status_code == 400 and "8 lowercase hex" in body(bad_id)["error"]


def test_long_query_string_is_414(store, admin_token):
    answer = handle_admin(store, request("/admin/keys?name=" + "x" * 2100, admin_token, "POST"))
    assert answer.status_code == 414
    assert len(store.list()) == 1


def test_unknown_admin_path_is_404(store, admin_token):
    answer = handle_admin(store, request("/admin/users", admin_token))
    assert answer.status_code == 404 and "/admin/keys" in body(answer)["error"]


def test_json_response_adds_headers():
    answer = json_response(__import__("http").HTTPStatus.OK, {"a": 1}, [("X-Test", "1")])
    assert answer.status_code == 200 and answer.reason_phrase == "OK"
    assert answer.headers["X-Test"] == "1" and body(answer) == {"a": 1}


# -- over a real socket -------------------------------------------------------------


async def _http(port: int, method: str, path: str, token: str | None = None) -> tuple[int, dict]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 0\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


async def test_admin_endpoints_work_through_a_real_websockets_server(store, admin_token):
    def process_request(connection, req):
        if req.path.startswith(ADMIN_PREFIX):
            return handle_admin(store, req)
        return json_response(__import__("http").HTTPStatus.NOT_FOUND, {"error": "no"})

    async def handler(ws):  # pragma: no cover - never upgraded here
        await ws.close()

    async with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
        port = server.sockets[0].getsockname()[1]
        status, data = await _http(port, "POST", "/admin/keys?name=lab", admin_token)
        assert status == 201 and store.verify(data["key"]) is not None
        status, listed = await _http(port, "GET", "/admin/keys", admin_token)
        assert status == 200 and len(listed["keys"]) == 2
        status, _ = await _http(port, "DELETE", f"/admin/keys/{data['record']['id']}", admin_token)
        assert status == 200 and store.verify(data["key"]) is None
        status, _ = await _http(port, "GET", "/admin/keys")
        assert status == 401
