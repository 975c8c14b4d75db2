"""The lecture room on a real server for browser tests, screenshots and the browser bench.

:class:`RoomThread` runs a :class:`~notsound.room.RoomServer` on 127.0.0.1
port 0 in a thread with its own event loop, so playwright's synchronous API
drives chromium from the test's thread.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path

from notsound.room import AskConfig, LiveSession, Room, RoomServer, room_for
from notsound.web import WebSettings
from summarizer import LLMSettings
from summarizer.settings import AskSettings

__all__ = ["CHROMIUM", "RoomThread", "launch_chromium", "room"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Playback started by a test's script (not a click) is allowed; the audio goes to a fake device.
CHROMIUM_ARGS = ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]


def room(library: Path, *, llm_url: str | None = None, viewer_token: str = "", owner_token: str = "",
         live: LiveSession | None = None) -> Room:
    """A room over ``library`` on 127.0.0.1 (off loopback rules when tokens are given)."""
    ask = None
    if llm_url:
        llm = LLMSettings(base_url=llm_url, timeout_s=5.0, deadline_s=10.0, max_retries=0)
        ask = AskConfig(llm=llm, settings=AskSettings(), key="sk-room-test")
    web = WebSettings(host="127.0.0.1", port=0, token=viewer_token, owner_token=owner_token)
    return room_for(library, web, live=live, ask=ask)


class RoomThread:
    """``with RoomThread(room) as server:`` the room served until the block ends."""

    def __init__(self, served: Room):
        self.server = RoomServer(served)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="room", daemon=True)

    def __enter__(self) -> RoomThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def call(self, fn):
        """``fn()`` run on the server's event loop (where the feed lives); its result."""
        async def run():
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.port}{path}"


def launch_chromium(playwright):
    """Debian's chromium under playwright (``scripts/system-deps.sh`` installs it)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
