"""Who may do what in the lecture room, and the headers every answer carries (pure ASGI middleware).

Bound to loopback the owner is the only one who can reach the server: every
request may do everything, but its ``Host`` must be a loopback name (DNS
rebinding). Bound off loopback there are two tokens: the viewer's (pages, the
API's GETs, audio, slides, the feed) and the owner's (also ``ask``, exports and
every other request that is not a GET). A token arrives once as ``?t=TOKEN``:
the answer is a redirect to the same URL without it that sets an HttpOnly,
SameSite=Strict cookie, so no token stays in an address bar, a page or a
``Referer``. The feed's WebSocket cannot follow a redirect and takes ``?t=``
itself. Missing token: 401; wrong token: 403 (compared in constant time).

Every answer carries the Content-Security-Policy (no inline script or style)
and the other security headers; request targets, query strings and bodies
are bounded before any route sees them.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from common.limits import is_loopback

__all__ = ["CSP", "SECURITY_HEADERS", "COOKIE", "Access", "Guard", "OWNER", "VIEWER"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OWNER, VIEWER = "owner", "viewer"
COOKIE = "notsound_room"
MAX_TARGET = 1024  # longest request target (path and query) accepted
MAX_PARAMS = 8  # most query parameters
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self'; media-src 'self'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = (("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"),
                    ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"),
                    ("Cross-Origin-Opener-Policy", "same-origin"),
                    ("Cross-Origin-Resource-Policy", "same-origin"))
_RAW_HEADERS = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS]
#: paths anyone may fetch: code and style, no lecture data in them
PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = ("/app.js", "/style.css", "/favicon.ico")


@dataclass(frozen=True)
class Access:
    """The room's tokens.

    Attributes:
        loopback: the server is bound to a loopback address (no tokens then).
        viewer_token: read-only token (off loopback).
        owner_token: token of the lecturer (off loopback); empty: nobody off the
            machine may ask or export.
    """

    loopback: bool
    viewer_token: str = field(default="", repr=False)
    owner_token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if not self.loopback and not self.viewer_token:
            raise ValueError("off loopback the room needs a viewer token")

    def role_of(self, given: str) -> str | None:
        """``owner``, ``viewer`` or ``None`` for a presented token (constant time for each)."""
        owner = bool(self.owner_token) and hmac.compare_digest(given.encode(), self.owner_token.encode())
        viewer = hmac.compare_digest(given.encode(), self.viewer_token.encode())
        return OWNER if owner else VIEWER if viewer else None


def _owner_only(method: str, path: str) -> bool:
    if method not in ("GET", "HEAD"):
        return True
    parts = path.split("/")
    # /lectures/NAME/export/FMT and /api/lectures/NAME/ask (the owner's conversation)
    return (len(parts) == 5 and parts[1] == "lectures" and parts[3] == "export") or \
        (len(parts) == 5 and parts[1:3] == ["api", "lectures"] and parts[4] == "ask")


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == name]


def _one_header(scope: Scope, name: bytes) -> str:
    values = _headers(scope, name)
    return values[0] if len(values) == 1 else ""


def _cookie(scope: Scope) -> str:
    for header in _headers(scope, b"cookie"):
        for part in header.split(";"):
            key, _, value = part.strip().partition("=")
            if key == COOKIE:
                return value
    return ""


async def _answer(send: Send, scope: Scope, status: int, message: str,
                  extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """A small JSON error (or an empty redirect) for an HTTP request or a WebSocket handshake."""
    body = json.dumps({"error": message}).encode() if message else b""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store"), *_RAW_HEADERS, *(extra or [])]
    if scope["type"] == "websocket":
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class Guard:
    """The middleware: limits, Host check, tokens, roles (``scope["state"]["role"]``), headers."""

    def __init__(self, app: ASGIApp, access: Access):
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self._limits(scope) or self._host(scope)
        if refused is not None:
            await _answer(send, scope, *refused)
            return
        path = scope["path"]
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
        role = OWNER if self.access.loopback else None
        if role is None and not public:
            role = await self._token(scope, send)
            if role is None:
                return  # answered: 401, 403 or the cookie's redirect
        method = scope.get("method", "GET")
        if not public and _owner_only(method, path) and role != OWNER:
            await _answer(send, scope, 403, "only the lecturer (the owner's link) may do this")
            return
        if method == "POST" and not self._same_origin(scope, required_type=True):
            await _answer(send, scope, 403, "send JSON from this server's own page")
            return
        if scope["type"] == "websocket" and not self._same_origin(scope, required_type=False):
            await _answer(send, scope, 403, "the feed is for this server's own page")
            return
        scope.setdefault("state", {})["role"] = role or VIEWER
        await self.app(scope, receive, _with_headers(send))

    @staticmethod
    def _limits(scope: Scope) -> tuple[int, str] | None:
        query = scope.get("query_string", b"")
        if len(scope.get("raw_path", b"")) + len(query) + 1 > MAX_TARGET:
            return 414, "request target too long"
        if query.count(b"&") + 1 > MAX_PARAMS:
            return 400, "too many query parameters"
        path = scope["path"]
        if "\x00" in path or "\\" in path or b"%2f" in scope.get("raw_path", b"").lower():
            return 404, "no such page"
        return None

    def _host(self, scope: Scope) -> tuple[int, str] | None:
        if not self.access.loopback:
            return None
        try:
            host = urlsplit("//" + _one_header(scope, b"host")).hostname or ""
        except ValueError:
            host = ""
        return None if is_loopback(host) else (403, "this server answers only on loopback")

    async def _token(self, scope: Scope, send: Send) -> str | None:
        """The role of the request's token; ``None`` once the request is answered."""
        params = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = next((v for k, v in params if k == "t"), "")
        if given and scope["type"] == "http" and scope.get("method") in ("GET", "HEAD"):
            role = self.access.role_of(given)
            if role is None:
                await _answer(send, scope, 403, "wrong token: ask for the current link")
                return None
            rest = urlencode([(k, v) for k, v in params if k != "t"])
            location = scope["path"] + (f"?{rest}" if rest else "")
            cookie = f"{COOKIE}={given}; Path=/; HttpOnly; SameSite=Strict"
            await _answer(send, scope, 303, "", [(b"location", location.encode()),
                                                 (b"set-cookie", cookie.encode())])
            return None
        given = given or _cookie(scope)
        if not given:
            await _answer(send, scope, 401, "open the room with the link that has its token")
            return None
        role = self.access.role_of(given)
        if role is None:
            await _answer(send, scope, 403, "wrong token: ask for the current link")
        return role

    @staticmethod
    def _same_origin(scope: Scope, *, required_type: bool) -> bool:
        if required_type:
            ctype = _one_header(scope, b"content-type").split(";")[0].strip().lower()
            if ctype != "application/json":
                return False
        origins = _headers(scope, b"origin")
        if not origins:  # not a browser: the token (or loopback) counts
            return True
        try:
            origin = urlsplit(origins[0]).netloc.lower()
        except ValueError:
            return False
        return len(origins) == 1 and bool(origin) and origin == _one_header(scope, b"host").lower()


def _with_headers(send: Send) -> Send:
    async def wrapped(message: MutableMapping[str, Any]) -> None:
        if message["type"] in ("http.response.start", "websocket.http.response.start"):
            present = {k.lower() for k, _ in message.get("headers", ())}
            message["headers"] = [*message.get("headers", ()),
                                  *(h for h in _RAW_HEADERS if h[0] not in present)]
        await send(message)

    return wrapped
