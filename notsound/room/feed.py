"""``/feed``: the live session's captions over a WebSocket, from :class:`notsound.web_feed.CaptionFeed`.

The protocol and the limits are the caption page's (DESIGN.md, "Caption
page"): the feed decides what each viewer is sent; this endpoint only moves
messages. A viewer the feed drops (too far behind) has its connection aborted
at once when the server offers that (the ``notsound.abort`` extension of
:mod:`notsound.room.server`), so it holds no buffers; a page may send a few
frames, a stream of them closes it (1008); one more viewer than allowed gets
HTTP 503 before the upgrade. ``notes.md`` of the live session is watched and
pushed to every viewer rendered safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import anyio
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from common.limits import TokenBucket

from ..web import WebSettings
from ..web_feed import CaptionFeed, FeedFull, Viewer, render_notes

__all__ = ["FeedEndpoint", "watch_notes", "ABORT_EXTENSION"]

log = logging.getLogger(__name__)

ABORT_EXTENSION = "notsound.abort"
_CLOSED = (WebSocketDisconnect, OSError, RuntimeError)


def _since(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None


class FeedEndpoint:
    """The ``/feed`` WebSocket route of one live session."""

    def __init__(self, feed: CaptionFeed, settings: WebSettings):
        self.feed = feed
        self.settings = settings

    async def __call__(self, ws: WebSocket) -> None:
        feed = self.feed
        if len(feed.viewers) >= feed.limits.max_viewers:
            await ws.send_denial_response(JSONResponse({"error": "too many viewers; try again later"}, 503))
            return
        since = _since(ws.query_params.get("since", ""))
        session = ws.query_params.get("session", "")[:200] or None
        try:
            viewer, hello = feed.join(since, session)
        except FeedFull:
            await ws.send_denial_response(JSONResponse({"error": "too many viewers; try again later"}, 503))
            return
        try:
            await ws.accept()
            wake = asyncio.Event()
            viewer.wake = wake.set
            viewer.drop = self._dropper(ws, wake)
            async with anyio.create_task_group() as tasks:
                async def until_done(job, *args) -> None:
                    await job(*args)
                    tasks.cancel_scope.cancel()  # one side ended: so does the other

                tasks.start_soon(until_done, self._send, ws, viewer, hello, wake)
                tasks.start_soon(until_done, self._read, ws)
        finally:
            feed.leave(viewer)
        with contextlib.suppress(*_CLOSED):
            await ws.close()

    @staticmethod
    def _dropper(ws: WebSocket, wake: asyncio.Event):
        abort = ws.scope.get("extensions", {}).get(ABORT_EXTENSION, {}).get("abort")

        def drop() -> None:
            if abort is not None:
                abort()  # at once: a viewer that does not read holds nothing
            wake.set()

        return drop

    async def _send(self, ws: WebSocket, viewer: Viewer, hello: str, wake: asyncio.Event) -> None:
        with contextlib.suppress(*_CLOSED):
            await ws.send_text(hello)
            while not viewer.dropped:
                for message in self.feed.take(viewer):
                    await ws.send_text(message)
                if not self.feed.pending(viewer) and not viewer.dropped:
                    wake.clear()
                    await wake.wait()

    async def _read(self, ws: WebSocket) -> None:
        """The page needs to send nothing: a few frames are tolerated, a stream of them is not."""
        bucket = TokenBucket(self.settings.incoming_per_s, self.settings.incoming_burst)
        with contextlib.suppress(*_CLOSED):
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if not bucket.take():
                    await ws.close(1008, "too many messages")
                    return


async def watch_notes(feed: CaptionFeed, session_dir: Path, poll_s: float) -> None:
    """Push ``notes.md`` of the live session to the feed whenever it changes (until cancelled)."""
    path, seen = session_dir / "notes.md", None
    while True:
        try:
            st = path.stat()
            if (st.st_mtime_ns, st.st_size) != seen:
                seen = (st.st_mtime_ns, st.st_size)
                html = await asyncio.to_thread(_read_notes, path, feed.limits.max_notes_bytes)
                feed.set_notes_html(html)
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot show %s on the caption page: %s", path, exc)
        await asyncio.sleep(poll_s)


def _read_notes(path: Path, limit: int) -> str:
    with path.open("rb") as fh:
        data = fh.read(limit)
    return render_notes(data.decode("utf-8", errors="replace"))
