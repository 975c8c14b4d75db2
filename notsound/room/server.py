"""The room on uvicorn, in the caller's event loop: start, the bound port, links, graceful stop.

:class:`RoomServer` binds its socket itself (port 0 picks a free one, read
back from the socket), so a busy port or a bad address is a clear
:class:`~notsound.web.WebError` before anything else starts, and runs
uvicorn's ``startup``/``main_loop``/``shutdown`` as a task of the running
loop: no second loop, no signal handlers of its own (``notsound live`` keeps
Ctrl-C). WebSocket connections use uvicorn's websockets (sans-I/O) protocol
with the caption page's limits: each viewer's kernel send buffer and write
buffer are bounded, and a viewer the feed drops is aborted at once (the
``notsound.abort`` scope extension read by :mod:`notsound.room.feed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from common.limits import is_loopback

from ..web import WebError, WebSettings, lan_address, terminal_qr
from .app import Room, create_app
from .feed import ABORT_EXTENSION

__all__ = ["RoomServer"]

log = logging.getLogger(__name__)

#: most bytes of a request's headers
MAX_HEADER_BYTES = 16 * 1024


def _feed_protocol(settings: WebSettings) -> type:
    """uvicorn's WebSocket protocol with each viewer's buffers bounded and an abort for the feed."""

    class FeedProtocol(WebSocketsSansIOProtocol):
        def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
            super().connection_made(transport)
            self.close_timeout = 2.0
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.send_buffer_bytes)
            transport.set_write_buffer_limits(high=settings.write_limit)

        def handle_connect(self, event) -> None:  # type: ignore[no-untyped-def]
            super().handle_connect(event)
            scope = getattr(self, "scope", None)
            if scope is not None:
                scope["extensions"][ABORT_EXTENSION] = {"abort": self.transport.abort}

    return FeedProtocol


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so (else every answer
    # written in two pieces waits for the client's delayed ACK, 40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.listen(512)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        busy = " (another program uses that port)" if exc.errno in (98, 48) else ""
        raise WebError(f"cannot serve on {host}:{port}: {exc.strerror or exc}{busy}; "
                       "choose another address with --web [HOST:]PORT") from None
    return sock


class RoomServer:
    """The room's web server. Use as ``async with RoomServer(room) as server``."""

    def __init__(self, room: Room):
        s = room.web
        if not s.token and not is_loopback(s.host):
            raise WebError(f"the room on {s.host} needs a viewer token")
        self.room = room
        self.settings = s
        self.feed = room.live.feed if room.live else None
        self._config = uvicorn.Config(
            create_app(room), host=s.host, port=s.port, lifespan="on", log_config=None, log_level="warning",
            access_log=False, server_header=False, proxy_headers=False, http="h11",
            ws=_feed_protocol(s), ws_max_size=s.max_frame_bytes, ws_ping_interval=s.ping_interval_s,
            ws_ping_timeout=s.ping_interval_s, ws_per_message_deflate=False,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES, timeout_graceful_shutdown=2,
            timeout_keep_alive=15)
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._main: asyncio.Task | None = None
        self._port = 0

    async def start(self) -> RoomServer:
        self._socket = _bind(self.settings.host, self.settings.port)
        self._port = self._socket.getsockname()[1]
        server = uvicorn.Server(self._config)
        self._config.load()
        server.lifespan = self._config.lifespan_class(self._config)
        try:
            await server.startup(sockets=[self._socket])
        except SystemExit:  # uvicorn's answer to a failed startup
            self._socket.close()
            raise WebError("the room's web server did not start; see the log above") from None
        self._server = server
        self._main = asyncio.create_task(server.main_loop(), name="room-server")
        return self

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.should_exit = True
        if self._main is not None:
            await asyncio.gather(self._main, return_exceptions=True)
        await server.shutdown(sockets=[self._socket] if self._socket else None)

    async def __aenter__(self) -> RoomServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The port bound (read from the socket at start)."""
        assert self._port, "room server not started"
        return self._port

    def url(self, path: str = "/", token: str | None = None, host: str | None = None) -> str:
        """An address of the room for a browser (with ``?t=`` when a token is needed)."""
        host = host or self.settings.host
        if host in ("0.0.0.0", "::", ""):
            host = lan_address()
        if ":" in host:
            host = f"[{host}]"
        token = self.settings.token if token is None else token
        query = f"?t={token}" if token else ""
        return f"http://{host}:{self.port}{path}{query}"

    def describe(self) -> str:
        """Where to open the room, for the terminal (a QR code for the viewers' link)."""
        what = "captions" if self.feed is not None else "the lecture room"
        url = self.url()
        if not self.settings.token:
            return f"{what} in the browser: {url}"
        lines = [f"{what} for the room (read-only link, share it with the class):\n  {url}\n{terminal_qr(url)}"]
        if self.settings.owner_token:
            lines.append(f"your own link (ask, exports; do not share it):\n  "
                         f"{self.url(token=self.settings.owner_token)}")
        return "\n".join(lines)
