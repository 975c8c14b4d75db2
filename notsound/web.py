"""``notsound live --web [HOST:]PORT``: the caption page, served from the capture process.

One websockets server answers plain HTTP before the upgrade (``process_request``,
as the worker does for ``/health``) and the page's feed after it:

- ``GET /`` the page; ``GET /app.js``, ``GET /style.css`` its two static files
  (no data in them, served to anyone);
- ``GET /feed?since=SEQ&session=NAME`` (WebSocket) the captions; see
  :mod:`notsound.web_feed` and DESIGN.md, "Caption page".

Bound to loopback, the page needs no token (and answers only a loopback
``Host``, against DNS rebinding). Bound to anything else, ``/`` and ``/feed``
need the viewer token in ``?t=TOKEN``: 401 without it, 403 with a wrong one,
compared in constant time. The token is read-only: it shows captions and
nothing else; the worker's key and the LLM key never reach this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import http
import logging
import re
import secrets
import socket
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from common.errors import NotSoundError
from common.limits import TokenBucket, is_loopback
from common.secret_file import SecretFileError, read_secret_file

from .web_feed import CaptionFeed, FeedFull, FeedLimits, Viewer, render_notes

__all__ = ["WebError", "WebSettings", "CaptionPage", "open_page", "parse_web_address",
           "read_token_file", "is_loopback", "terminal_qr"]

log = logging.getLogger(__name__)

FEED_PATH = "/feed"
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
MAX_TARGET = 1024  # longest request target (path and query) accepted
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = (("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"),
                    ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"),
                    ("Cross-Origin-Opener-Policy", "same-origin"),
                    ("Cross-Origin-Resource-Policy", "same-origin"))


class WebError(NotSoundError, RuntimeError):
    """The caption page cannot be served as asked; the message says what to change."""


@dataclass(frozen=True)
class WebSettings:
    """The caption page of ``notsound live --web``.

    Attributes:
        host / port: address to bind; port 0 picks a free one.
        token: the viewer token required on ``/`` and ``/feed`` (empty: none,
            allowed only on loopback).
        limits: per-feed and per-viewer bounds (:class:`FeedLimits`).
        send_buffer_bytes: kernel send buffer of each viewer's socket.
        write_limit: bytes buffered for a viewer before its sender waits.
        max_frame_bytes: largest frame a page may send (it needs to send none).
        incoming_per_s / incoming_burst: frames a page may send; more closes it.
        notes_poll_s: how often ``notes.md`` is checked for changes.
        ping_interval_s: keepalive pings; a page that does not answer is closed.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    token: str = ""
    limits: FeedLimits = FeedLimits()
    send_buffer_bytes: int = 64 * 1024
    write_limit: int = 32 * 1024
    max_frame_bytes: int = 1024
    incoming_per_s: float = 1.0
    incoming_burst: int = 8
    notes_poll_s: float = 2.0
    ping_interval_s: float = 20.0


def parse_web_address(spec: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` as ``(host, port)``; host defaults to loopback."""
    text = str(spec).strip()
    host, port = "127.0.0.1", text
    if text.startswith("["):
        end = text.find("]:")
        if end < 0:
            raise WebError(f"--web {spec!r}: write an IPv6 address as [ADDR]:PORT")
        host, port = text[1:end], text[end + 2:]
    elif ":" in text:
        host, port = text.rsplit(":", 1)
    if not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise WebError(f"--web {spec!r}: expected [HOST:]PORT with a port from 0 to 65535, e.g. 8080 "
                       "or 0.0.0.0:8080")
    return host, int(port)


def read_token_file(path: Path) -> str:
    """The viewer token: the first line of ``path`` (16-128 of A-Z a-z 0-9 _ -)."""
    try:
        first = read_secret_file(path, "viewer token")
    except SecretFileError as exc:
        raise WebError(str(exc)) from None
    if not _TOKEN.fullmatch(first):
        raise WebError(f"viewer token file {path}: its first line must be 16-128 characters of "
                       "A-Z a-z 0-9 _ - (it goes into the page's URL)")
    return first


def _static(name: str) -> bytes:
    return resources.files("notsound").joinpath("static", name).read_bytes()


def _response(status: http.HTTPStatus, body: bytes, content_type: str = "text/plain; charset=utf-8",
              cache: str = "no-store") -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", cache), *SECURITY_HEADERS])
    return Response(status.value, status.phrase, headers, body)


def _error(status: http.HTTPStatus, message: str) -> Response:
    return _response(status, (message + "\n").encode())


class CaptionPage:
    """The page's server. Use as ``async with CaptionPage(feed, settings, session_dir) as page``."""

    def __init__(self, feed: CaptionFeed, settings: WebSettings, session_dir: Path | None = None):
        if not settings.token and not is_loopback(settings.host):
            raise WebError(f"the caption page on {settings.host} needs a viewer token")
        self.feed = feed
        self.settings = settings
        self.session_dir = session_dir
        self._files = {path: (_static(name), ctype) for path, (name, ctype) in STATIC.items()}
        self._server: Server | None = None
        self._notes_task: asyncio.Task | None = None

    async def start(self) -> CaptionPage:
        s = self.settings
        try:
            self._server = await serve(
                self._handle, s.host, s.port, process_request=self._process_request,
                compression=None, max_size=s.max_frame_bytes, max_queue=4, write_limit=s.write_limit,
                ping_interval=s.ping_interval_s, ping_timeout=s.ping_interval_s, close_timeout=2.0,
                server_header="notsound",
            )
        except OSError as exc:
            raise WebError(f"cannot serve the caption page on {s.host}:{s.port}: {exc.strerror or exc}; "
                           "choose another address with --web [HOST:]PORT") from None
        if self.session_dir is not None:
            self._notes_task = asyncio.create_task(self._watch_notes(), name="web-notes")
        return self

    async def stop(self) -> None:
        if self._notes_task is not None:
            self._notes_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._notes_task
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> CaptionPage:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "caption page not started"
        return self._server.sockets[0].getsockname()[1]

    def url(self, host: str | None = None) -> str:
        """The page's address for a browser (with the token when one is needed)."""
        host = host or self.settings.host
        if host in ("0.0.0.0", "::", ""):
            host = lan_address()
        if ":" in host:
            host = f"[{host}]"
        query = f"?t={self.settings.token}" if self.settings.token else ""
        return f"http://{host}:{self.port}/{query}"

    def describe(self) -> str:
        """Where to open the page, for the terminal (with a QR code when it needs a token)."""
        url = self.url()
        if not self.settings.token:
            return f"captions in the browser: {url}"
        return (f"captions for the room (read-only link, share it with the class):\n  {url}\n"
                f"{terminal_qr(url)}")

    # -- HTTP before the upgrade ---------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if len(request.path) > MAX_TARGET:
            return _error(http.HTTPStatus.REQUEST_URI_TOO_LONG, "request target too long")
        path, _, query = request.path.partition("?")
        if path in ("/app.js", "/style.css"):
            body, ctype = self._files[path]
            return _response(http.HTTPStatus.OK, body, ctype, cache="no-cache")
        if path == "/favicon.ico":
            return _response(http.HTTPStatus.NO_CONTENT, b"", cache="max-age=86400")
        if path not in ("/", FEED_PATH):
            return _error(http.HTTPStatus.NOT_FOUND, "no such page")
        try:
            params = parse_qs(query, max_num_fields=8)
        except ValueError:
            return _error(http.HTTPStatus.BAD_REQUEST, "too many query parameters")
        refused = self._refuse(request, params)
        if refused is not None:
            return refused
        if path == "/":
            body, ctype = self._files["/"]
            return _response(http.HTTPStatus.OK, body, ctype)
        if not self._same_origin(request):
            return _error(http.HTTPStatus.FORBIDDEN, "the feed is for this server's own page")
        if len(self.feed.viewers) >= self.feed.limits.max_viewers:
            return _error(http.HTTPStatus.SERVICE_UNAVAILABLE, "too many viewers; try again later")
        connection.feed_query = _feed_query(params)  # read by _handle
        return None

    def _refuse(self, request: Request, params: dict[str, list[str]]) -> Response | None:
        token = self.settings.token
        if not token:
            try:
                host = urlsplit("//" + _header(request, "Host")).hostname or ""
            except ValueError:
                host = ""
            if not is_loopback(host):
                return _error(http.HTTPStatus.FORBIDDEN, "this caption page answers only on loopback")
            return None
        given = params.get("t", [""])[0]
        if not given:
            return _error(http.HTTPStatus.UNAUTHORIZED, "open the caption page with the link that has its token")
        if not hmac.compare_digest(given.encode(), token.encode()):
            return _error(http.HTTPStatus.FORBIDDEN, "wrong token: ask for the current caption link")
        return None

    @staticmethod
    def _same_origin(request: Request) -> bool:
        if not request.headers.get_all("Origin"):  # not a browser: the token (or loopback) counts
            return True
        try:
            origin = urlsplit(_header(request, "Origin")).netloc.lower()
        except ValueError:
            return False
        return bool(origin) and origin == _header(request, "Host").lower()

    # -- the feed --------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        since, session = getattr(ws, "feed_query", (None, None))
        try:
            viewer, hello = self.feed.join(since, session)
        except FeedFull:
            await ws.close(1013, "too many viewers")
            return
        self._tune(ws)
        wake = asyncio.Event()
        viewer.wake = wake.set
        viewer.drop = ws.transport.abort  # at once: a viewer that does not read holds nothing
        tasks = [asyncio.create_task(self._send(ws, viewer, hello, wake)),
                 asyncio.create_task(self._read(ws))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.feed.leave(viewer)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _send(self, ws: ServerConnection, viewer: Viewer, hello: str, wake: asyncio.Event) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(hello)
            while not viewer.dropped:
                for message in self.feed.take(viewer):
                    await ws.send(message)
                if not self.feed.pending(viewer):
                    wake.clear()
                    await wake.wait()

    async def _read(self, ws: ServerConnection) -> None:
        """The page needs to send nothing: a few frames are tolerated, a stream of them is not."""
        bucket = TokenBucket(self.settings.incoming_per_s, self.settings.incoming_burst)
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                if not bucket.take():
                    await ws.close(1008, "too many messages")
                    return

    def _tune(self, ws: ServerConnection) -> None:
        sock = ws.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.settings.send_buffer_bytes)

    async def _watch_notes(self) -> None:
        assert self.session_dir is not None
        path, seen = self.session_dir / "notes.md", None
        while True:
            try:
                st = path.stat()
                if (st.st_mtime_ns, st.st_size) != seen:
                    seen = (st.st_mtime_ns, st.st_size)
                    html = await asyncio.to_thread(_read_notes, path, self.feed.limits.max_notes_bytes)
                    self.feed.set_notes_html(html)
            except FileNotFoundError:
                pass
            except (OSError, UnicodeDecodeError) as exc:
                log.warning("cannot show %s on the caption page: %s", path, exc)
            await asyncio.sleep(self.settings.notes_poll_s)


def open_page(spec: str, session_dir: Path, *, token_file: Path | None = None,
              max_viewers: int = FeedLimits.max_viewers) -> CaptionPage:
    """The caption page of a session (not started): ``--web [HOST:]PORT`` and its token.

    The feed starts with every final already in the session's journal (and
    the translations already in ``translations.jsonl``), so a page opened
    late, or after ``notsound live`` restarted, shows the whole lecture. A token is required off loopback (random unless ``token_file``
    gives one) and whenever ``token_file`` is given.
    """
    from library.folder import read_finals, read_translations

    host, port = parse_web_address(spec)
    token = read_token_file(token_file) if token_file else ""
    if not token and not is_loopback(host):
        token = secrets.token_urlsafe(18)  # 144 random bits, URL-safe
    feed = CaptionFeed(session_dir.name, FeedLimits(max_viewers=max_viewers))
    feed.load(read_finals(session_dir))
    for utt, translation in sorted(read_translations(session_dir).items()):
        if translation.text:  # translated in an earlier run of the session
            feed.publish_translation(utt, translation.text)
    return CaptionPage(feed, WebSettings(host=host, port=port, token=token), session_dir)


def _header(request: Request, name: str) -> str:
    """The one value of header ``name``; empty when it is missing or repeated."""
    values = request.headers.get_all(name)
    return values[0] if len(values) == 1 else ""


def _read_notes(path: Path, limit: int) -> str:
    with path.open("rb") as fh:
        data = fh.read(limit)
    return render_notes(data.decode("utf-8", errors="replace"))


def _feed_query(params: dict[str, list[str]]) -> tuple[int | None, str | None]:
    since = params.get("since", [""])[0]
    session = params.get("session", [""])[0][:200] or None
    return (int(since) if since.isascii() and since.isdigit() and len(since) < 10 else None), session


def lan_address() -> str:
    """This machine's address on the local network, for the link students open."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        return s.getsockname()[0]
    return socket.gethostname()


def terminal_qr(url: str) -> str:
    """``url`` as a QR code drawn with block characters, for the terminal."""
    import io

    import segno

    out = io.StringIO()
    segno.make(url, error="l").terminal(out=out, compact=True, border=2)
    return out.getvalue()
