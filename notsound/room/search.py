"""``/api/search``: the library's search index (``library.index``, Chinese and English) for the room.

One :class:`~library.index.LectureIndex` per app, used by one thread at a time
(a lock), brought up to date at most every ``refresh_s`` seconds before a
search. Snippets come as segments ``[[text, is_hit], ...]`` so the page builds
them with ``textContent`` and ``<mark>``, never from HTML.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from library.index import LectureIndex, open_index

__all__ = ["RoomSearch", "segments"]

_OPEN, _CLOSE = "\x01", "\x02"
MAX_LIMIT = 100


def _plain(text: str) -> str:
    return text.replace(_OPEN, "").replace(_CLOSE, "")


def segments(marked: str) -> list[list[Any]]:
    """A snippet with :data:`_OPEN` / :data:`_CLOSE` marks as ``[[text, is_hit], ...]``."""
    out: list[list[Any]] = []
    for i, piece in enumerate(marked.split(_OPEN)):
        hit, _, rest = piece.partition(_CLOSE) if i else ("", "", piece)
        if i and hit:
            out.append([hit, True])
        if rest:
            out.append([rest, False])
    return out


class RoomSearch:
    """Searches of one library folder, safe to call from worker threads."""

    def __init__(self, library: Path, refresh_s: float = 2.0):
        self.library = library
        self.refresh_s = refresh_s
        self._index: LectureIndex | None = None
        self._updated = float("-inf")
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Open the index and bring it up to date now (the first search then needs not)."""
        with self._lock:
            self._fresh()

    def search(self, query: str, limit: int, titles: dict[str, str]) -> list[dict[str, Any]]:
        """The best hits for ``query`` as the API's result dicts (QueryError for an empty one)."""
        with self._lock:
            index = self._fresh()
            hits = index.search(query, limit=min(max(1, limit), MAX_LIMIT),
                                      mark=(_OPEN, _CLOSE), escape=_plain)
        return [{"session": h.session, "title": titles.get(h.session, h.session),
                 "t": float(h.start) if h.start is not None else 0.0, "utt": h.utt, "kind": h.kind,
                 "snippet": segments(h.snippet)} for h in hits]

    def _fresh(self) -> LectureIndex:
        """The index, updated unless it was within ``refresh_s`` (the lock is held)."""
        if self._index is None:
            self._index = open_index(self.library)
        if time.monotonic() - self._updated >= self.refresh_s:
            self._index.update()
            self._updated = time.monotonic()
        return self._index

    def close(self) -> None:
        with self._lock:
            if self._index is not None:
                self._index.close()
                self._index = None
