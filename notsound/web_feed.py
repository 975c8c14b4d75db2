"""The caption feed behind the browser page: what each viewer is sent, without I/O.

The feed keeps one append-only list of final captions, encoded once and shared
by every viewer. A final's ``seq`` is its place in that list (1, 2, ...); the
list is loaded from the session's journal at start and then grows with each
new final, in journal order, so ``seq`` stays the same when ``notsound live``
restarts on the same session. A viewer is only a few cursors into the shared
lists: catching up from ``since=SEQ`` is a cursor set to ``SEQ``, and a viewer
costs the same memory whether it is one caption behind or a whole lecture.

The current partial and the notes are kept as their newest value only; a
viewer gets them once it has every final (a slow viewer skips stale partials).
Translations, when a translator adds them, are a second shared list that every
viewer receives from its start on each connection (a translation replaces the
previous one of its ``utt``, so repeats are harmless).

A viewer that falls more than ``max_lag`` messages behind the feed is dropped
(:attr:`Viewer.drop` is called): publishing never waits for a viewer. See
DESIGN.md, "Caption page", for the messages.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FEED_VERSION", "FeedLimits", "FeedFull", "Viewer", "CaptionFeed", "render_notes"]

#: version of the page <-> feed messages (sent in ``hello``)
FEED_VERSION = 1


@dataclass(frozen=True)
class FeedLimits:
    """Bounds on what one feed and its viewers may cost.

    Attributes:
        max_viewers: viewers connected at once; one more is refused (HTTP 503).
        max_lag: messages (finals and translations) a viewer may be behind the
            newest one before it is dropped; it reconnects and catches up.
        batch: most messages handed to a viewer's sender at once.
        max_text_chars: longest caption or translation text sent.
        max_notes_bytes: largest ``notes.md`` shown on the page.
    """

    max_viewers: int = 500
    max_lag: int = 256
    batch: int = 64
    max_text_chars: int = 4000
    max_notes_bytes: int = 256 << 10

    def __post_init__(self) -> None:
        for name in ("max_viewers", "max_lag", "batch", "max_text_chars", "max_notes_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


class FeedFull(Exception):
    """No room for another viewer (``max_viewers`` are connected)."""


def _encode(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _seconds(value: Any) -> float:
    value = float(value)
    return round(value, 3) if math.isfinite(value) and value > 0 else 0.0


@dataclass(eq=False)
class Viewer:
    """One connected page: cursors into the feed's shared lists.

    ``drop`` is called (once) when the feed gives up on this viewer; the web
    layer closes the connection there. ``wake`` is called whenever the viewer
    has something new to take.
    """

    joined: int  # finals in the feed when it joined: later ones count as lag
    cursor: int  # next final to send (an index into CaptionFeed.finals)
    tjoined: int
    tcursor: int = 0
    partial_version: int = -1
    notes_version: int = 0
    dropped: bool = False
    wake: Callable[[], None] = field(default=lambda: None, repr=False)
    drop: Callable[[], None] = field(default=lambda: None, repr=False)

    def lag(self, finals: int, translations: int) -> int:
        return (finals - max(self.cursor, self.joined)) + (translations - max(self.tcursor, self.tjoined))


@dataclass
class FeedStats:
    """Counters since the feed started."""

    joined: int = 0
    dropped: int = 0
    finals: int = 0
    partials: int = 0


class CaptionFeed:
    """The captions of one session as the page receives them; see the module docstring."""

    def __init__(self, session: str, limits: FeedLimits | None = None):
        self.session = session
        self.limits = limits or FeedLimits()
        self.finals: list[str] = []  # encoded "final" messages; seq = index + 1
        self.translations: list[str] = []  # encoded "translation" messages
        self.viewers: set[Viewer] = set()
        self.stats = FeedStats()
        self._utts: set[int] = set()
        self._partial: tuple[int, str] | None = None
        self._partial_msg = _encode({"type": "partial", "utt": -1, "text": ""})
        self._partial_version = 0
        self._notes_msg: str | None = None
        self._notes_version = 0

    # -- what the caption side calls -------------------------------------------

    def load(self, finals: Iterable[Any]) -> int:
        """Add finals already journaled (at start), in journal order; returns how many."""
        before = len(self.finals)
        for final in finals:
            self._append_final(final)
        return len(self.finals) - before

    def publish_final(self, caption: Any) -> None:
        """A new final (anything with ``utt``, ``start``, ``end``, ``text``); a repeated utt is ignored."""
        if not self._append_final(caption):
            return
        self.stats.finals += 1
        if self._partial is not None and self._partial[0] <= caption.utt:
            self._set_partial(caption.utt, "")
        self._notify()

    def publish_partial(self, partial: Any) -> None:
        """The newest partial of an open utterance; replaces the previous one."""
        utt = partial.utt
        if utt in self._utts or (self._partial is not None and utt < self._partial[0]):
            return
        self.stats.partials += 1
        self._set_partial(utt, partial.text)
        self._notify()

    def publish_translation(self, utt: int, text: str) -> None:
        """A translation of final ``utt``, shown under its caption (replaces an earlier one)."""
        text = " ".join(str(text).split())[: self.limits.max_text_chars]
        self.translations.append(_encode({"type": "translation", "utt": int(utt), "text": text}))
        self._notify()

    def set_notes(self, markdown: str) -> None:
        """New ``notes.md`` content; the page gets it rendered to safe HTML."""
        self.set_notes_html(render_notes(markdown[: self.limits.max_notes_bytes]))

    def set_notes_html(self, html: str) -> None:
        """Notes already rendered by :func:`render_notes` (e.g. in a worker thread)."""
        msg = _encode({"type": "notes", "html": html})
        if msg == self._notes_msg:
            return
        self._notes_msg = msg
        self._notes_version += 1
        self._notify()

    # -- what the web side calls --------------------------------------------------

    def join(self, since: int | None = None, session: str | None = None) -> tuple[Viewer, str]:
        """A new viewer that already has finals ``1..since`` of ``session``, and its hello message.

        A ``since`` from another session, or beyond the finals there are (the
        journal was replaced), starts from the first final with ``reset``.
        """
        if len(self.viewers) >= self.limits.max_viewers:
            raise FeedFull(f"{len(self.viewers)} viewers are connected (limit {self.limits.max_viewers})")
        known = since is not None and session == self.session and 0 <= since <= len(self.finals)
        cursor = since if known else 0
        viewer = Viewer(joined=len(self.finals), cursor=cursor, tjoined=len(self.translations))
        self.viewers.add(viewer)
        self.stats.joined += 1
        hello = _encode({"type": "hello", "feed": FEED_VERSION, "session": self.session,
                         "reset": not known, "last": len(self.finals)})
        return viewer, hello

    def leave(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)

    def take(self, viewer: Viewer) -> list[str]:
        """The next messages for ``viewer`` (finals first, then translations, partial, notes)."""
        room = self.limits.batch
        out = self.finals[viewer.cursor:viewer.cursor + room]
        viewer.cursor += len(out)
        room -= len(out)
        if room > 0 and viewer.tcursor < len(self.translations):
            more = self.translations[viewer.tcursor:viewer.tcursor + room]
            viewer.tcursor += len(more)
            out.extend(more)
            room -= len(more)
        if room > 0 and viewer.cursor == len(self.finals):
            if viewer.partial_version != self._partial_version:
                first = viewer.partial_version < 0
                viewer.partial_version = self._partial_version
                if self._partial is not None or not first:  # a new viewer needs no "no partial"
                    out.append(self._partial_msg)
            if self._notes_msg is not None and viewer.notes_version != self._notes_version:
                viewer.notes_version = self._notes_version
                out.append(self._notes_msg)
        return out

    def pending(self, viewer: Viewer) -> bool:
        """Whether :meth:`take` would return something."""
        return (viewer.cursor < len(self.finals) or viewer.tcursor < len(self.translations)
                or viewer.partial_version != self._partial_version
                or (self._notes_msg is not None and viewer.notes_version != self._notes_version))

    # -- internals ------------------------------------------------------------------

    def _append_final(self, caption: Any) -> bool:
        utt = int(caption.utt)
        if utt in self._utts:
            return False
        self._utts.add(utt)
        text = " ".join(str(caption.text).split())[: self.limits.max_text_chars]
        events = [str(e)[:40] for e in getattr(caption, "events", ())][:8]
        message = {
            "type": "final", "seq": len(self.finals) + 1, "utt": utt,
            "start": _seconds(caption.start), "end": _seconds(caption.end),
            "text": text, "lang": str(getattr(caption, "lang", "") or "")[:16], "events": events,
        }
        speaker = str(getattr(caption, "speaker", "") or "")[:24]
        if speaker:
            message["speaker"] = speaker
        self.finals.append(_encode(message))
        return True

    def _set_partial(self, utt: int, text: str) -> None:
        text = " ".join(str(text).split())[: self.limits.max_text_chars]
        self._partial = (utt, text) if text else None
        self._partial_msg = _encode({"type": "partial", "utt": utt, "text": text})
        self._partial_version += 1

    def _notify(self) -> None:
        finals, translations = len(self.finals), len(self.translations)
        for viewer in list(self.viewers):
            if viewer.lag(finals, translations) > self.limits.max_lag:
                self._drop(viewer)
            else:
                viewer.wake()

    def _drop(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)
        if not viewer.dropped:
            viewer.dropped = True
            self.stats.dropped += 1
            viewer.drop()


def render_notes(markdown: str) -> str:
    """``notes.md`` as HTML that carries no markup from the text itself.

    markdown-it-py with raw HTML off: every ``<`` in the text is escaped, and
    links with ``javascript:``, ``vbscript:``, ``file:`` or ``data:`` targets
    are not made. The page's Content-Security-Policy blocks the rest (no
    inline script, no images from elsewhere).
    """
    from markdown_it import MarkdownIt

    return MarkdownIt("js-default").render(markdown)
