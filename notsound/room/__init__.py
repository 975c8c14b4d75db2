"""The lecture room: every lecture of the library in the browser, and the live session's captions.

One Starlette app (:mod:`notsound.room.app`) on uvicorn
(:mod:`notsound.room.server`) serves ``notsound open`` (the library) and
``notsound live --web`` (the same, with the running session live in it).
:func:`open_live` and :func:`open_library` build the server from the CLI's
``--web [HOST:]PORT`` and token files; see DESIGN.md, "The lecture room".
"""

from __future__ import annotations

import secrets
from pathlib import Path

from common.limits import is_loopback

from ..web import WebError, WebSettings, parse_web_address, read_token_file
from ..web_feed import CaptionFeed, FeedLimits
from .access import Access
from .app import LiveSession, Room, create_app
from .asking import AskConfig
from .server import RoomServer

__all__ = ["AskConfig", "LiveSession", "Room", "RoomServer", "create_app", "open_live", "open_library",
           "web_settings", "room_for"]


def web_settings(spec: str, token_file: Path | None = None, owner_token_file: Path | None = None,
                 **limits) -> WebSettings:
    """``--web [HOST:]PORT`` and its token files as settings; off loopback a missing token is
    made at random (``secrets.token_urlsafe(18)``, 144 bits) and shown as a link."""
    host, port = parse_web_address(spec)
    token = read_token_file(token_file) if token_file else ""
    owner = read_token_file(owner_token_file) if owner_token_file else ""
    if not is_loopback(host):
        token = token or secrets.token_urlsafe(18)
        owner = owner or secrets.token_urlsafe(18)
    if token and token == owner:
        raise WebError("the viewer token and the owner token must differ")
    return WebSettings(host=host, port=port, token=token, owner_token=owner, **limits)


def room_for(library: Path, settings: WebSettings, live: LiveSession | None = None,
             ask: AskConfig | None = None) -> Room:
    """The :class:`Room` of a library folder served with ``settings``."""
    if not settings.token and not is_loopback(settings.host):
        raise WebError(f"the room on {settings.host} needs a viewer token")
    access = Access(loopback=not settings.token and is_loopback(settings.host),
                    viewer_token=settings.token, owner_token=settings.owner_token)
    return Room(library=library, access=access, web=settings, live=live, ask=ask)


def live_feed(session_dir: Path, max_viewers: int = FeedLimits.max_viewers) -> CaptionFeed:
    """The feed of a session, starting with every final already journaled (and the translations
    already made), so a page opened late, or after ``notsound live`` restarted, shows it all."""
    from library.folder import read_finals, translation_texts

    feed = CaptionFeed(session_dir.name, FeedLimits(max_viewers=max_viewers))
    feed.load(read_finals(session_dir))
    for utt, text in sorted(translation_texts(session_dir).items()):  # from an earlier run of the session
        feed.publish_translation(utt, text)
    return feed


def open_live(spec: str, session_dir: Path, *, token_file: Path | None = None,
              owner_token_file: Path | None = None, max_viewers: int = FeedLimits.max_viewers,
              ask: AskConfig | None = None) -> RoomServer:
    """The room of ``notsound live --web`` (not started): the session's library, the session live."""
    settings = web_settings(spec, token_file, owner_token_file)
    live = LiveSession(session_dir, live_feed(session_dir, max_viewers))
    return RoomServer(room_for(session_dir.parent, settings, live, ask))


def open_library(spec: str, library: Path, *, token_file: Path | None = None,
                 owner_token_file: Path | None = None, ask: AskConfig | None = None) -> RoomServer:
    """The room of ``notsound open`` (not started)."""
    if not library.is_dir():
        raise WebError(f"no lectures folder {library}: `notsound live` records one there "
                       "(or pass --out DIR)")
    return RoomServer(room_for(library, web_settings(spec, token_file, owner_token_file), ask=ask))
