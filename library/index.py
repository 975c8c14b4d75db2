"""The search index of the lectures folder: SQLite FTS5 over captions, notes and summaries.

The session folders are the source of truth; the index (``OUT/.index.sqlite3``)
is a cache that can be thrown away at any time. :meth:`LectureIndex.update`
reads only what changed since the last look: per session it keeps the
journal's size, modification time and the byte offset read up to (only
complete lines count, so a journal that ``notsound live`` is appending to is
read safely), plus a hash of the journal's first bytes; a journal that shrank
or was replaced is read again from the start. ``notes.md`` and ``summary.md``
are indexed by sections (a heading and what follows it) and replaced when
their size or modification time changes. A session folder that is gone from
disk leaves the index.

The file is in WAL mode, so searches run while another process updates it.
A file that is not a database, is damaged, or has another schema version is
moved aside (``.index.sqlite3.broken``) and rebuilt: never fatal.

Rows: ``entries`` (session, kind, utt, start, end, original text, segmented
text where segmenting changed it) with an external-content FTS5 table over
the segmented text (``unicode61``; Chinese pre-cut by jieba, see
:mod:`library.textseg`).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .folder import (
    DEFAULT_OUT,
    NOTES,
    SUMMARY,
    FolderError,
    TranscriptReader,
    list_sessions,
    read_meta,
    transcript_path,
)
from .index_files import (
    HEAD_BYTES,
    file_sig,
    head_hash,
    markdown_sections,
    read_markdown,
    session_day,
    stat_sig,
)
from .index_schema import SCHEMA_VERSION, create_schema, is_corruption, transaction
from .search import KINDS, Hit, run_search, session_ids
from .textseg import segment_for_index

__all__ = ["INDEX_NAME", "SCHEMA_VERSION", "IndexUnavailableError", "UpdateStats", "LectureIndex", "open_index"]

log = logging.getLogger(__name__)

INDEX_NAME = ".index.sqlite3"
#: how long a writer waits for another process's write transaction
BUSY_TIMEOUT_MS = 15_000


class IndexUnavailableError(FolderError):
    """The index cannot be opened or created even from scratch (the message says where and why)."""


@dataclass(frozen=True)
class UpdateStats:
    """What :meth:`LectureIndex.update` (or :meth:`~LectureIndex.rebuild`) did.

    Attributes:
        sessions: session folders on disk.
        changed: sessions whose rows changed (new captions, new notes or summary, removed).
        captions: caption rows added.
        sections: notes/summary section rows written.
        removed: sessions gone from disk, dropped from the index.
        reread: sessions whose journal shrank or was replaced and was read again from the start.
        rebuilt: why the index was started from scratch ("missing", "corrupt", "schema",
            "rebuild"), or "" when it was not.
        seconds: wall time taken.
    """

    sessions: int = 0
    changed: int = 0
    captions: int = 0
    sections: int = 0
    removed: int = 0
    reread: int = 0
    rebuilt: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class _Seen:
    """A session as the index last saw it."""

    id: int
    j_size: int
    j_mtime: int
    j_offset: int
    j_head: bytes
    j_head_len: int
    notes_sig: str
    summary_sig: str


class _SchemaMismatch(Exception):
    pass


def _tokens(text: str) -> str | None:
    """The segmented text to store, or None where it equals the text (stored once, not twice)."""
    tokens = segment_for_index(text)
    return None if tokens == text else tokens


class LectureIndex:
    """The search index of one lectures folder. Not for use by two threads at once.

    Attributes:
        out: the lectures folder (the folder of session folders).
        path: the index file.
        recovered: why the file was started from scratch when opened ("missing",
            "corrupt", "schema"), or "".
    """

    def __init__(self, out: Path, path: Path):
        self.out = out
        self.path = path
        self.recovered = ""
        self._db = self._open()

    # -- opening, recovery ---------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                             check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0 and not db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                transaction(db, lambda: create_schema(db))
                self.recovered = self.recovered or "missing"
            elif version != SCHEMA_VERSION:
                raise _SchemaMismatch(f"schema version {version}, this version of notsound uses {SCHEMA_VERSION}")
            db.execute("SELECT count(*) FROM sessions").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._connect()
        except _SchemaMismatch as exc:
            self._discard(str(exc), "schema")
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise IndexUnavailableError(f"cannot open the search index {self.path}: {exc}") from None
            self._discard(str(exc), "corrupt")
        except OSError as exc:
            raise IndexUnavailableError(f"cannot create the search index {self.path}: {exc.strerror or exc}") from None
        try:
            return self._connect()
        except (sqlite3.DatabaseError, _SchemaMismatch, OSError) as exc:
            raise IndexUnavailableError(f"cannot create the search index {self.path}: {exc}") from None

    def _discard(self, why: str, reason: str) -> None:
        """Move the index file (and its WAL) aside so a fresh one can take its place."""
        log.warning("search index %s unusable (%s): moved aside and rebuilt from the session folders",
                    self.path, why)
        for suffix in ("", "-wal", "-shm"):
            src = self.path.with_name(self.path.name + suffix)
            try:
                os.replace(src, src.with_name(self.path.name + ".broken" + suffix))
            except FileNotFoundError:
                pass
        self.recovered = reason

    def _guarded(self, action: Callable[[], object], refill: bool = True):
        """Run ``action``; if the file turns out to be damaged, start a fresh index (filled
        from the session folders when ``refill``) and run it again."""
        try:
            try:
                return action()
            except sqlite3.DatabaseError as exc:
                if not is_corruption(exc):
                    raise
                self._db.close()
                self._discard(str(exc), "corrupt")
                self._db = self._connect()
                if refill:
                    self._update()
                return action()
        except sqlite3.Error as exc:  # full disk, read-only, locked past the busy timeout
            raise IndexUnavailableError(f"search index {self.path}: {exc}") from None

    # -- updating ------------------------------------------------------------

    def update(self) -> UpdateStats:
        """Bring the index up to date with the session folders (only what changed is read)."""
        return self._guarded(self._update, refill=False)

    def rebuild(self) -> UpdateStats:
        """Forget everything and index every session folder again."""
        return self._guarded(self._rebuild, refill=False)

    def _rebuild(self) -> UpdateStats:
        def recreate() -> None:
            self._db.execute("DROP TABLE IF EXISTS entries_fts")
            self._db.execute("DROP VIEW IF EXISTS entries_doc")
            for table in ("entries", "sessions"):
                self._db.execute(f"DROP TABLE IF EXISTS {table}")
            create_schema(self._db, force=True)

        transaction(self._db, recreate)
        self.recovered = "rebuild"
        return self._update()

    def _update(self) -> UpdateStats:
        began = time.perf_counter()
        counts = {"changed": 0, "captions": 0, "sections": 0, "removed": 0, "reread": 0}
        on_disk = {p.name: p for p in list_sessions(self.out)}
        seen = {row[1]: _Seen(row[0], *row[2:]) for row in self._db.execute(
            "SELECT id, name, j_size, j_mtime, j_offset, j_head, j_head_len, notes_sig, summary_sig FROM sessions")}
        for name in sorted(seen.keys() - on_disk.keys()):
            transaction(self._db, lambda sid=seen[name].id: self._drop_session(sid))
            counts["removed"] += 1
            counts["changed"] += 1
        for name, folder in on_disk.items():
            self._update_session(name, folder, seen.get(name), counts)
        stats = UpdateStats(sessions=len(on_disk), rebuilt=self.recovered,
                            seconds=time.perf_counter() - began, **counts)
        self.recovered = ""
        return stats

    def _drop_session(self, sid: int) -> None:
        self._db.execute("DELETE FROM entries WHERE session_id = ?", (sid,))
        self._db.execute("DELETE FROM sessions WHERE id = ?", (sid,))

    def _update_session(self, name: str, folder: Path, seen: _Seen | None, counts: dict[str, int]) -> None:
        sigs = (stat_sig(transcript_path(folder)), file_sig(folder / NOTES), file_sig(folder / SUMMARY))
        if seen and sigs == ((seen.j_size, seen.j_mtime), seen.notes_sig, seen.summary_sig):
            return
        added = transaction(self._db, lambda: self._index_session(name, folder, counts))
        counts["changed"] += bool(added)

    def _current(self, name: str) -> _Seen | None:
        row = self._db.execute(
            "SELECT id, j_size, j_mtime, j_offset, j_head, j_head_len, notes_sig, summary_sig"
            " FROM sessions WHERE name = ?", (name,)).fetchone()
        return _Seen(*row) if row else None

    def _index_session(self, name: str, folder: Path, counts: dict[str, int]) -> int:
        """Inside a write transaction: look at the files and the session's row again (another
        process may have just done the work) and index what is new. Returns the rows written or removed."""
        sigs = (stat_sig(transcript_path(folder)), file_sig(folder / NOTES), file_sig(folder / SUMMARY))
        seen = self._current(name)
        day = session_day(folder, read_meta(folder))
        if seen is None:
            self._db.execute("INSERT INTO sessions(name, day) VALUES (?, ?)", (name, day))
            seen = self._current(name)
        else:
            self._db.execute("UPDATE sessions SET day = ? WHERE id = ?", (day, seen.id))
        touched = 0
        if sigs[0] != (seen.j_size, seen.j_mtime):
            added, removed = self._index_journal(seen, transcript_path(folder), sigs[0], counts)
            counts["captions"] += added
            touched += added + removed
        for kind, sig, old, column in (("notes", sigs[1], seen.notes_sig, "notes_sig"),
                                       ("summary", sigs[2], seen.summary_sig, "summary_sig")):
            if sig != old:
                added, removed = self._index_markdown(seen.id, kind, folder / (NOTES if kind == "notes" else SUMMARY))
                self._db.execute(f"UPDATE sessions SET {column} = ? WHERE id = ?", (sig, seen.id))
                counts["sections"] += added
                touched += added + removed
        return touched

    def _index_journal(self, seen: _Seen, path: Path, sig: tuple[int, int],
                       counts: dict[str, int]) -> tuple[int, int]:
        """New captions of the journal: (rows added, rows removed because the journal was replaced)."""
        offset, removed = seen.j_offset, 0
        if offset and (sig[0] < offset or head_hash(path, seen.j_head_len) != seen.j_head):
            removed = self._db.execute("DELETE FROM entries WHERE session_id = ? AND kind = 'caption'",
                                       (seen.id,)).rowcount
            offset = 0
            counts["reread"] += 1
        reader = TranscriptReader(path, offset)
        rows = [(seen.id, f.utt, f.start, f.end, f.text, _tokens(f.text)) for f in reader.read_new() if f.text]
        added = self._db.executemany(
            "INSERT OR IGNORE INTO entries(session_id, kind, utt, start, end_, text, tokens)"
            " VALUES (?, 'caption', ?, ?, ?, ?, ?)", rows).rowcount if rows else 0
        consumed = max(offset, reader.consumed)
        head_len = min(consumed, HEAD_BYTES)
        self._db.execute(
            "UPDATE sessions SET j_size = ?, j_mtime = ?, j_offset = ?, j_head = ?, j_head_len = ? WHERE id = ?",
            (sig[0], sig[1], consumed, head_hash(path, head_len), head_len, seen.id))
        return added, removed

    def _index_markdown(self, sid: int, kind: str, path: Path) -> tuple[int, int]:
        """Replace the session's sections of one kind: (rows added, rows removed)."""
        removed = self._db.execute("DELETE FROM entries WHERE session_id = ? AND kind = ?", (sid, kind)).rowcount
        rows = [(sid, kind, start, text, _tokens(text))
                for text, start in markdown_sections(read_markdown(path))]
        if rows:
            self._db.executemany(
                "INSERT INTO entries(session_id, kind, start, text, tokens) VALUES (?, ?, ?, ?, ?)", rows)
        return len(rows), removed

    # -- searching -----------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        session: str | None = None,
        since: date | None = None,
        kinds: Sequence[str] = KINDS,
        limit: int = 20,
        mark: tuple[str, str] = ("[", "]"),
        escape: Callable[[str], str] | None = None,
    ) -> list[Hit]:
        """The best hits for ``query`` (plain text), best first; see :class:`library.search.Hit`.

        ``session``: a session folder's name (or path: its name is used) to search
        only that lecture; :class:`SessionNotFoundError` if the index has no such
        session. ``since``: only sessions on or after that date. ``mark``: the
        strings put around matched words in snippets; ``escape``: applied to the
        rest of the snippet (e.g. ``rich.markup.escape``). Raises
        :class:`library.search.EmptyQueryError` for a query without words. Does
        not update the index: call :meth:`update` first.
        """
        return self._guarded(lambda: self._search(query, session, since, kinds, limit, mark, escape))

    def _search(self, query, session, since, kinds, limit, mark, escape) -> list[Hit]:
        ids = session_ids(self._db, session, since, self.out)
        extra = {"escape": escape} if escape is not None else {}
        return run_search(self._db, query, session_ids=ids, kinds=tuple(kinds), limit=limit, mark=mark, **extra)

    def sessions(self) -> dict[str, str]:
        """Indexed session names and their dates (``YYYY-MM-DD``)."""
        return dict(self._db.execute("SELECT name, day FROM sessions ORDER BY name"))

    def count(self, kind: str | None = None) -> int:
        """Rows in the index (of one kind)."""
        if kind is None:
            return self._db.execute("SELECT count(*) FROM entries").fetchone()[0]
        return self._db.execute("SELECT count(*) FROM entries WHERE kind = ?", (kind,)).fetchone()[0]

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> LectureIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_index(out: Path | None = None, path: Path | None = None) -> LectureIndex:
    """The index of the lectures folder ``out`` (default ./lectures), in ``path``
    (default ``OUT/.index.sqlite3``); created, or recreated when unusable. Call
    :meth:`LectureIndex.update` to bring it up to date."""
    out = Path(out).expanduser() if out is not None else DEFAULT_OUT
    return LectureIndex(out, Path(path).expanduser() if path is not None else out / INDEX_NAME)
