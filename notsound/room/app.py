"""The lecture room's Starlette app: pages, JSON API, media, ask, and the live feed.

:func:`create_app` builds it from a :class:`Room`; :class:`~notsound.room.access.Guard`
wraps it (tokens, roles, limits, security headers). URLs and shapes are those
of DESIGN.md, "The lecture room"; every name from a URL goes through
:mod:`notsound.room.paths` (404 for anything outside the library folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from common.errors import NotSoundError
from library.folder import EmptySessionError, FolderError
from library.search import QueryError
from summarizer.ask import check_question
from summarizer.settings import no_key_help

from ..web import WebSettings
from ..web_feed import CaptionFeed
from .access import OWNER, Access, Guard
from .asking import AskConfig, conversation, stream_answer
from .feed import FeedEndpoint, watch_notes
from .lectures import EXPORTS, LectureCache
from .media import PartResponse, SlideImages, export_text
from .paths import NotFound, recording_part, session_folder, slide_number
from .search import RoomSearch

__all__ = ["Room", "LiveSession", "create_app", "MAX_ASK_BYTES"]

log = logging.getLogger(__name__)

MAX_ASK_BYTES = 4096
_STATIC_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
          ".json": "application/json", ".woff2": "font/woff2"}
_CAPTION_PAGE = {"/captions": "index.html", "/app.js": "app.js", "/style.css": "style.css"}


@dataclass(frozen=True)
class LiveSession:
    """The session ``notsound live`` is captioning: its folder and its caption feed."""

    folder: Path
    feed: CaptionFeed


@dataclass(frozen=True)
class Room:
    """What one room serves.

    Attributes:
        library: the folder of session folders.
        access: tokens (:class:`~notsound.room.access.Access`).
        web: feed and server limits (``notsound.web.WebSettings``).
        live: the running session (``notsound live --web``), else ``None``.
        ask: how to ask (LLM settings and key); ``None``: no ``ask`` (no key).
    """

    library: Path
    access: Access
    web: WebSettings = WebSettings()
    live: LiveSession | None = None
    ask: AskConfig | None = None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status, headers={"Cache-Control": "no-store"})


def _json(data: object) -> JSONResponse:
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


def _static_file(*parts: str) -> Response:
    path = resources.files("notsound").joinpath("static", *parts)
    try:
        body = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return _error(404, "no such page")
    ctype = _TYPES.get(Path(parts[-1]).suffix, "application/octet-stream")
    return Response(body, headers={"Content-Type": ctype, "Cache-Control": "no-cache"})


class RoomApp:
    """The route handlers over one :class:`Room` (shared caches, one search index)."""

    def __init__(self, room: Room):
        self.room = room
        self.images = SlideImages()
        live_name = room.live.folder.name if room.live else None
        self.lectures = LectureCache(room.library, live_name)
        self.search_index = RoomSearch(room.library)
        self.feed = FeedEndpoint(room.live.feed, room.web) if room.live else None

    def folder(self, name: str) -> Path:
        return session_folder(self.room.library, name)

    # -- pages ---------------------------------------------------------------------

    async def root(self, request: Request) -> Response:
        target = "/captions" if self.room.live else "/library"
        query = request.url.query
        return RedirectResponse(target + (f"?{query}" if query else ""), 307)

    async def caption_page(self, request: Request) -> Response:
        if request.url.path == "/captions" and self.room.live is None:
            return _error(404, "no live session here: the library is at /library")
        return _static_file(_CAPTION_PAGE[request.url.path])

    async def library_page(self, request: Request) -> Response:
        return _static_file("room", "library.html")

    async def lecture_page(self, request: Request) -> Response:
        await asyncio.to_thread(self.folder, request.path_params["name"])
        return _static_file("room", "lecture.html")

    async def room_static(self, request: Request) -> Response:
        name = request.path_params["file"]
        if not _STATIC_NAME.fullmatch(name) or ".." in name:
            return _error(404, "no such file")
        return _static_file("room", name)

    async def favicon(self, request: Request) -> Response:
        return Response(status_code=204, headers={"Cache-Control": "max-age=86400"})

    # -- the API ------------------------------------------------------------------

    async def lecture_list(self, request: Request) -> Response:
        return _json({"lectures": await asyncio.to_thread(self.lectures.rows)})

    async def search(self, request: Request) -> Response:
        query = request.query_params.get("q", "")
        try:
            limit = int(request.query_params.get("limit", "20"))
        except ValueError:
            return _error(400, "limit must be a number")
        if not query.strip():
            return _error(400, "the query is empty: give a word or two to search for")
        titles = {r["name"]: r["title"] for r in await asyncio.to_thread(self.lectures.rows)}
        try:
            results = await asyncio.to_thread(self.search_index.search, query, limit, titles)
        except QueryError as exc:
            return _error(400, str(exc))
        except FolderError as exc:  # the index cannot be opened (a read-only library folder ...)
            return _error(503, str(exc))
        return _json({"query": query, "results": results})

    async def lecture(self, request: Request) -> Response:
        folder = await asyncio.to_thread(self.folder, request.path_params["name"])
        data = dict(await asyncio.to_thread(self.lectures.lecture, folder))
        owner = request.scope["state"]["role"] == OWNER
        name = data["name"]
        data["can_ask"] = owner and self.room.ask is not None
        data["can_export"] = owner
        translated = any("translation" in c for c in data["captions"])
        data["exports"] = [{"format": fmt, "label": label, "url": f"/lectures/{name}/export/{fmt}"}
                           for fmt, label in EXPORTS
                           if owner and (translated or not fmt.startswith("bilingual"))]
        return _json(data)

    async def recording(self, request: Request) -> Response:
        folder = await asyncio.to_thread(self.folder, request.path_params["name"])
        part = await asyncio.to_thread(recording_part, folder, request.path_params["part"])
        stat = await asyncio.to_thread(part.path.stat)
        return PartResponse(part.path, media_type="audio/ogg", stat_result=stat,
                            headers={"Cache-Control": "no-cache"})

    async def slide(self, request: Request) -> Response:
        folder = await asyncio.to_thread(self.folder, request.path_params["name"])
        stem, dot, ext = request.path_params["file"].partition(".")
        if (dot, ext) != (".", "png"):
            raise NotFound(stem)
        png = await asyncio.to_thread(self.images.png, folder, slide_number(stem))
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    async def export(self, request: Request) -> Response:
        folder = await asyncio.to_thread(self.folder, request.path_params["name"])
        layer = "live" if self.room.live and folder.name == self.room.live.folder.name else "best"
        try:
            text, filename, ctype = await asyncio.to_thread(export_text, folder, request.path_params["fmt"], layer)
        except EmptySessionError as exc:
            return _error(409, str(exc))
        return Response(text, headers={"Content-Type": ctype, "Cache-Control": "no-store",
                                       "Content-Disposition": f'attachment; filename="{filename}"'})

    async def ask_turns(self, request: Request) -> Response:
        folder = await asyncio.to_thread(self.folder, request.path_params["name"])
        layer = self.room.ask.settings.layer if self.room.ask else "best"
        return _json({"turns": await asyncio.to_thread(conversation, folder, layer)})

    async def ask(self, request: Request) -> Response:
        folder = await asyncio.to_thread(self.folder, request.path_params["name"])
        if self.room.ask is None:
            return _error(503, f"ask needs an LLM: {no_key_help()}")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_ASK_BYTES:
                return _error(413, f"the question is larger than {MAX_ASK_BYTES} bytes")
        try:
            question = check_question(_question(body), self.room.ask.settings)
        except (ValueError, NotSoundError) as exc:  # not JSON, or an empty or too long question
            return _error(400, str(exc))
        return StreamingResponse(stream_answer(folder, question, self.room.ask),
                                 media_type="application/x-ndjson",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def live_feed(self, ws: WebSocket) -> None:
        if self.feed is None:
            await ws.send_denial_response(_error(404, "no live session here"))
            return
        await self.feed(ws)

    # -- the app --------------------------------------------------------------------

    def routes(self) -> list:
        get = ["GET"]
        return [
            Route("/", self.root, methods=get),
            *(Route(path, self.caption_page, methods=get) for path in _CAPTION_PAGE),
            Route("/favicon.ico", self.favicon, methods=get),
            Route("/library", self.library_page, methods=get),
            Route("/lecture/{name}", self.lecture_page, methods=get),
            Route("/static/room/{file}", self.room_static, methods=get),
            Route("/api/lectures", self.lecture_list, methods=get),
            Route("/api/search", self.search, methods=get),
            Route("/api/lectures/{name}", self.lecture, methods=get),
            Route("/api/lectures/{name}/ask", self.ask_turns, methods=get),
            Route("/api/lectures/{name}/ask", self.ask, methods=["POST"]),
            Route("/lectures/{name}/recording/{part}", self.recording, methods=get),
            Route("/lectures/{name}/slides/{file}", self.slide, methods=get),
            Route("/lectures/{name}/export/{fmt}", self.export, methods=get),
            WebSocketRoute("/feed", self.live_feed),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        live = self.room.live
        # Live, the notes; otherwise the library list and the search index are made ready at
        # once (reading every journal of a large library takes seconds), not at the first request.
        task = (asyncio.create_task(watch_notes(live.feed, live.folder, self.room.web.notes_poll_s))
                if live else asyncio.create_task(asyncio.to_thread(self._warm)))
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await asyncio.to_thread(self.search_index.close)

    def _warm(self) -> None:
        try:
            self.lectures.rows()
            self.search_index.warm()
        except Exception:  # thread boundary: the first request meets the same error and reports it
            log.warning("the library could not be read ahead; the first request reads it", exc_info=True)


def _question(body: bytes) -> str:
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        raise ValueError("the body must be JSON: {\"question\": \"...\"}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("question"), str):
        raise ValueError("the body must be JSON: {\"question\": \"...\"}")
    return obj["question"]


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(404, "no such page")


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return _error(exc.status_code, str(exc.detail))


def create_app(room: Room) -> Guard:
    """The room as an ASGI app (Starlette behind the access guard)."""
    handlers = RoomApp(room)
    app = Starlette(routes=handlers.routes(), lifespan=handlers.lifespan,
                    exception_handlers={NotFound: _not_found, HTTPException: _http_error})
    app.router.redirect_slashes = False  # one URL per thing: "/x/" is not "/x"
    return Guard(app, room.access)
