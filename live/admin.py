"""Bearer authentication and the ``/admin/keys`` endpoints, answered before the WebSocket upgrade.

Pure functions over websockets' :class:`~websockets.http11.Request` that
return :class:`~websockets.http11.Response` objects; the worker's
``process_request`` routes ``/admin/...`` to :func:`handle_admin` and calls
:func:`authenticate` for ``/v1/stream``. Requests carry no body (websockets
accepts none), so parameters go in the query string:

- ``POST /admin/keys?name=N&admin=0|1&max_streams=N`` → 201, the new key (shown once) and its record
- ``GET /admin/keys`` → 200, every record (never a key or a hash)
- ``DELETE /admin/keys/ID`` → 200, or 404 for an unknown id

Only admin keys may use them (403 otherwise). Keys travel only in the
``Authorization: Bearer KEY`` header, never in the URL.
"""

from __future__ import annotations

import http
import json
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .keys import MAX_STREAMS_LIMIT, KeyRecord, KeyStore, KeyStoreError, is_key_id

__all__ = [
    "ADMIN_PREFIX", "KEYS_PATH", "MAX_QUERY_BYTES", "UNAUTHORIZED_MESSAGE",
    "json_response", "bearer_token", "authenticate", "handle_admin",
]

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/admin/"
KEYS_PATH = "/admin/keys"
MAX_QUERY_BYTES = 2048
#: the one answer for a missing, unknown or revoked key: it must not say which
UNAUTHORIZED_MESSAGE = "missing, unknown or revoked API key: send the header `Authorization: Bearer KEY`"
_NO_STORE = ("Cache-Control", "no-store")
_CREATE_PARAMS = ("name", "admin", "max_streams")
_BOOLEANS = {"0": False, "1": True, "false": False, "true": True}
_Status = http.HTTPStatus


class _BadRequest(ValueError):
    """A request to answer with 400 and this message."""


def json_response(status: http.HTTPStatus, body: dict[str, Any],
                  headers: Iterable[tuple[str, str]] = ()) -> Response:
    """A JSON response for ``process_request`` (the same shape as the worker's ``/health``)."""
    data = json.dumps(body).encode()
    all_headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    for name, value in headers:
        all_headers[name] = value
    return Response(status.value, status.phrase, all_headers, data)


def bearer_token(request: Request) -> str | None:
    """The key from ``Authorization: Bearer KEY``; None when absent, repeated or another scheme."""
    values = request.headers.get_all("Authorization")
    if len(values) != 1:
        return None
    scheme, _, token = values[0].strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def authenticate(store: KeyStore, request: Request) -> KeyRecord | Response:
    """The caller's key record, or the response to send instead (401, or 503 if the key file
    cannot be read: failing closed)."""
    token = bearer_token(request)
    try:
        record = store.verify(token) if token is not None else None
    except KeyStoreError as exc:
        log.error("cannot check API keys: %s", exc)
        return _error(_Status.SERVICE_UNAVAILABLE, "cannot check API keys now; see the worker's log")
    if record is None:
        return json_response(_Status.UNAUTHORIZED, {"error": UNAUTHORIZED_MESSAGE},
                             [("WWW-Authenticate", 'Bearer realm="notsound"'), _NO_STORE])
    return record


def handle_admin(store: KeyStore, request: Request) -> Response:
    """Answer a request for a path under ``/admin/`` (it writes ``keys.json``: blocking I/O)."""
    path, _, query = request.path.partition("?")
    if len(query) > MAX_QUERY_BYTES:
        return _error(_Status.REQUEST_URI_TOO_LONG, f"query string over {MAX_QUERY_BYTES} bytes")
    caller = authenticate(store, request)
    if isinstance(caller, Response):
        return caller
    if not caller.admin:
        return _error(_Status.FORBIDDEN, "this key may not manage keys: use an admin key")
    try:
        return _route(store, request.method, path, query)
    except _BadRequest as exc:
        return _error(_Status.BAD_REQUEST, str(exc))
    except KeyStoreError as exc:
        log.error("admin request %s %s failed: %s", request.method, path, exc)
        return _error(_Status.SERVICE_UNAVAILABLE, "the key file cannot be used now; see the worker's log")


def _route(store: KeyStore, method: str, path: str, query: str) -> Response:
    if path in (KEYS_PATH, KEYS_PATH + "/"):
        if method == "GET":
            _no_params(query)
            return json_response(_Status.OK, {"keys": [r.to_dict() for r in store.list()]}, [_NO_STORE])
        if method == "POST":
            return _create(store, _params(query, _CREATE_PARAMS))
        return _not_allowed("GET, POST")
    if path.startswith(KEYS_PATH + "/"):
        if method != "DELETE":
            return _not_allowed("DELETE")
        _no_params(query)
        return _revoke(store, path[len(KEYS_PATH) + 1:])
    return _error(_Status.NOT_FOUND, f"no admin endpoint {path[:100]}; the endpoint is {KEYS_PATH}")


def _create(store: KeyStore, params: dict[str, str]) -> Response:
    admin = _BOOLEANS.get(params.get("admin", "0").lower())
    if admin is None:
        raise _BadRequest(f"admin must be 0 or 1, not {_show(params['admin'])}")
    raw = params.get("max_streams", "0")
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise _BadRequest(f"max_streams must be a whole number from 0 to {MAX_STREAMS_LIMIT} "
                          f"(0: the worker's default), not {_show(raw)}")
    try:
        record, token = store.create(name=params.get("name", ""), admin=admin, max_streams=int(raw))
    except ValueError as exc:
        raise _BadRequest(str(exc)) from None
    body = {"key": token, "record": record.to_dict(),
            "note": "store this key now: it is not shown again"}
    return json_response(_Status.CREATED, body, [("Location", f"{KEYS_PATH}/{record.id}"), _NO_STORE])


def _revoke(store: KeyStore, key_id: str) -> Response:
    if not is_key_id(key_id):
        raise _BadRequest(f"a key id is 8 lowercase hex characters (see GET {KEYS_PATH})")
    if not store.revoke(key_id):
        return _error(_Status.NOT_FOUND, f"no key with id {key_id}")
    return json_response(_Status.OK, {"id": key_id, "revoked": True}, [_NO_STORE])


def _params(query: str, allowed: tuple[str, ...]) -> dict[str, str]:
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True, errors="strict",
                          max_num_fields=2 * len(allowed))
    except ValueError as exc:  # also bad percent-encoding (UnicodeDecodeError)
        raise _BadRequest(f"malformed query string ({exc}); parameters: {', '.join(allowed)}") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            raise _BadRequest(f"unknown parameter {_show(name)}; parameters: {', '.join(allowed)}")
        if name in params:
            raise _BadRequest(f"parameter {name} given twice")
        params[name] = value
    return params


def _no_params(query: str) -> None:
    if query:
        raise _BadRequest("this endpoint takes no query parameters")


def _show(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


def _not_allowed(allow: str) -> Response:
    return json_response(_Status.METHOD_NOT_ALLOWED, {"error": f"method not allowed; use {allow}"},
                         [("Allow", allow), _NO_STORE])


def _error(status: http.HTTPStatus, message: str) -> Response:
    return json_response(status, {"error": message}, [_NO_STORE])
