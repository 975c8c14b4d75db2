"""Queries against the lecture index: FTS5 query text, ranked hits, highlighted snippets.

A query is plain text, never FTS5 syntax: it is cut into tokens the way the
index cut the captions (:func:`library.textseg.query_terms`), each token or
phrase is double-quoted, and all of them must occur (implicit AND). Hits are
ranked by FTS5's BM25. Snippets are cut from the original text (the index
holds the segmented text only for matching) with the query's words marked.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import PurePath

from common.errors import EXIT_USAGE

from .folder import FolderError, SessionNotFoundError
from .textseg import has_han, query_terms

__all__ = ["KINDS", "Hit", "QueryError", "EmptyQueryError", "fts_query", "highlight", "snippet", "run_search",
           "parse_since", "session_ids"]

#: what a hit can be: a caption of the journal, a section of notes.md or of summary.md
KINDS = ("caption", "notes", "summary")
#: characters of original text a snippet shows around the first match
SNIPPET_CHARS = 160
#: longest query, in characters and in words
MAX_QUERY_CHARS = 4096
MAX_QUERY_TERMS = 128
_ELLIPSIS = "…"


class QueryError(FolderError, ValueError):
    """A query that cannot be searched (the message says why)."""

    exit_code = EXIT_USAGE


class EmptyQueryError(QueryError):
    """The query has no word to search for (empty, or only punctuation)."""


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        session: the session folder's name.
        kind: ``caption``, ``notes`` or ``summary``.
        utt: the caption's utterance number; ``None`` for notes and summary sections.
        start: seconds into the lecture (a caption's start; a section's first
            time stamp in its heading, else ``None``).
        end: the caption's end; ``None`` for sections.
        text: the original text of the caption or section (a section starts with its heading).
        snippet: part of ``text`` around the match, matched words between the markers given to search.
        score: BM25 relevance, negated so that higher is better (FTS5's own bm25() is lower-is-better);
            comparable between hits of one query only.
    """

    session: str
    kind: str
    utt: int | None
    start: float | None
    end: float | None
    text: str
    snippet: str
    score: float


def _quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def fts_query(query: str) -> tuple[str, list[list[str]]]:
    """The FTS5 MATCH expression for a plain-text query, and its token groups (for highlighting).

    Raises :class:`EmptyQueryError` when nothing is left to search for,
    :class:`QueryError` for a query over :data:`MAX_QUERY_CHARS` or :data:`MAX_QUERY_TERMS`.
    """
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is {len(query)} characters long: at most {MAX_QUERY_CHARS}")
    groups = query_terms(query)
    if not groups:
        raise EmptyQueryError(f"nothing to search for in {query!r}: give a word or two")
    if len(groups) > MAX_QUERY_TERMS:
        raise QueryError(f"the query has {len(groups)} words: at most {MAX_QUERY_TERMS}")
    return " AND ".join(_quote(" ".join(group)) for group in groups), groups


def _pattern(groups: Sequence[Sequence[str]]) -> re.Pattern[str]:
    parts = []
    for group in sorted(groups, key=lambda g: -sum(map(len, g))):
        if len(group) == 1 and has_han(group[0]):
            parts.append(re.escape(group[0]))
        else:  # whole words, the phrase's words separated by anything that is not a word
            parts.append(r"(?<![^\W_])" + r"[\W_]+".join(map(re.escape, group)) + r"(?![^\W_])")
    return re.compile("|".join(parts), re.IGNORECASE)


def _identity(text: str) -> str:
    return text


def highlight(
    text: str,
    groups: Sequence[Sequence[str]],
    mark: tuple[str, str] = ("[", "]"),
    escape: Callable[[str], str] = _identity,
) -> str:
    """``text`` with every occurrence of the query's words between ``mark``; ``escape`` applies to the rest."""
    if not groups:
        return escape(text)
    spans: list[list[int]] = []
    for m in _pattern(groups).finditer(text):
        if spans and not text[spans[-1][1] : m.start()].strip():
            spans[-1][1] = m.end()  # words next to each other: one mark ("[learning rate]")
        elif m.end() > m.start():
            spans.append([m.start(), m.end()])
    out, at = [], 0
    for begin, end in spans:
        out += [escape(text[at:begin]), mark[0], escape(text[begin:end]), mark[1]]
        at = end
    out.append(escape(text[at:]))
    return "".join(out)


def snippet(
    text: str,
    groups: Sequence[Sequence[str]],
    mark: tuple[str, str] = ("[", "]"),
    escape: Callable[[str], str] = _identity,
    width: int = SNIPPET_CHARS,
) -> str:
    """About ``width`` characters of ``text`` around its first match, highlighted, on one line."""
    flat = " ".join(text.split())
    if len(flat) > width:
        first = _pattern(groups).search(flat) if groups else None
        begin = min(max(0, (first.start() if first else 0) - width // 3), len(flat) - width)
        end = begin + width
        if begin and flat[begin - 1].isalnum() and " " in flat[begin : begin + 20]:
            begin = flat.index(" ", begin) + 1  # start on a whole word
        if end < len(flat) and flat[end].isalnum() and " " in flat[end - 20 : end]:
            end = flat.rindex(" ", end - 20, end)
        flat = (_ELLIPSIS if begin else "") + flat[begin:end].strip() + (_ELLIPSIS if end < len(flat) else "")
    return highlight(flat, groups, mark, escape)


def session_ids(db: sqlite3.Connection, session: str | None, since: date | None, out: object) -> list[int] | None:
    """Ids of the indexed sessions a search is limited to (``None``: all of them).

    ``session`` is a folder name or path (its name is used); one the index does
    not hold raises :class:`SessionNotFoundError` naming the lectures folder ``out``.
    """
    if session is None and since is None:
        return None
    sql, params = "SELECT id FROM sessions WHERE 1", []
    if session is not None:
        name = PurePath(str(session)).name
        if not db.execute("SELECT 1 FROM sessions WHERE name = ?", (name,)).fetchone():
            raise SessionNotFoundError(f"no session {name!r} in the lectures folder {out}")
        sql, params = sql + " AND name = ?", [name]
    if since is not None:
        sql, params = sql + " AND day >= ?", [*params, since.isoformat()]
    return [row[0] for row in db.execute(sql, params)]


def _filters(session_ids: Sequence[int] | None, kinds: Sequence[str]) -> tuple[str, list]:
    """The outer query's exact conditions (an empty string when every row qualifies)."""
    conditions, params = [], []
    if session_ids is not None:
        conditions.append(f"e.session_id IN ({','.join('?' * len(session_ids))})")
        params += list(session_ids)
    if set(kinds) != set(KINDS):
        conditions.append(f"e.kind IN ({','.join('?' * len(kinds))})")
        params += list(kinds)
    return (" WHERE " + " AND ".join(conditions) if conditions else ""), params


def _rowid_range(db: sqlite3.Connection, session_ids: Sequence[int] | None) -> tuple[str, list]:
    """A rowid range holding every row of the sessions, for FTS5 to rank only those.

    Rows are numbered as they are indexed, so a session's rows lie close
    together; other sessions' rows inside the range are dropped by the exact filter.
    """
    if session_ids is None:
        return "", []
    marks = ",".join("?" * len(session_ids))
    low, high = db.execute(f"SELECT min(id), max(id) FROM entries WHERE session_id IN ({marks})",
                           list(session_ids)).fetchone()
    return " AND rowid BETWEEN ? AND ?", [low if low is not None else 0, high if high is not None else -1]


def run_search(
    db: sqlite3.Connection,
    query: str,
    *,
    session_ids: Sequence[int] | None,
    kinds: Sequence[str],
    limit: int,
    mark: tuple[str, str] = ("[", "]"),
    escape: Callable[[str], str] = _identity,
) -> list[Hit]:
    """The best ``limit`` hits for ``query`` among ``session_ids`` (``None``: all) and ``kinds``.

    FTS5 ranks the matches in a subquery and only the best rows are joined
    to their text: the join is what costs when a common word matches
    thousands of captions. With filters, the ranking is limited to the rowid
    range of the sessions asked for and the exact filter applies after it.
    """
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise ValueError(f"kinds must be some of {', '.join(KINDS)}, not {sorted(unknown) or 'none'}")
    match, groups = fts_query(query)
    if limit <= 0 or session_ids == []:
        return []
    where, params = _filters(session_ids, kinds)
    span, span_params = _rowid_range(db, session_ids)
    inner_limit = "" if where else " ORDER BY score LIMIT ?"
    rows = db.execute(
        "SELECT s.name, e.kind, e.utt, e.start, e.end_, e.text, m.score FROM"
        " (SELECT rowid AS id, bm25(entries_fts) AS score FROM entries_fts"
        f"  WHERE entries_fts MATCH ?{span}{inner_limit}) AS m"
        f" JOIN entries e ON e.id = m.id JOIN sessions s ON s.id = e.session_id{where}"
        " ORDER BY m.score LIMIT ?",
        [match, *span_params, *([] if where else [limit]), *params, limit],
    ).fetchall()
    return [
        Hit(name, kind, utt, start, end, text, snippet(text, groups, mark, escape), -score)
        for name, kind, utt, start, end, text, score in rows
    ]


def parse_since(value: str | date | None) -> date | None:
    """A ``--since`` value (``YYYY-MM-DD``) as a date; ValueError with a clear message otherwise."""
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"--since wants a date as YYYY-MM-DD, not {value!r}") from None
