"""Finding the captions a question is about: the lecture index, then neighbours.

The index (:mod:`library.index`, SQLite FTS5) ANDs the words of a query, so a
question in plain language ("what did she say about the learning rate?")
would rarely match as a whole. The question's content words
(:func:`library.textseg.keywords`) are searched together and one by one, and
the rankings are merged (reciprocal rank fusion, the all-words search
counting double). Without a usable index the same words are matched against
the captions directly.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from library.folder import Final, FolderError
from library.textseg import keywords

from .ask_cite import parse_time

__all__ = ["question_terms", "search_captions", "expand", "time_mentions", "runs"]

log = logging.getLogger(__name__)

#: single-word searches per question, at most
MAX_TERMS = 6
#: terms of the question searched together at most
MAX_JOINED = 32
_RRF_K = 10
_TIME_WORD = re.compile(r"\b(?:\d{1,2}:)?\d{1,3}:\d{2}\b")


def question_terms(question: str) -> list[str]:
    """The content words of a question, each once, in order."""
    seen: list[str] = []
    for word in keywords(question):
        if word not in seen:
            seen.append(word)
    return seen


def _fuse(rankings: Iterable[tuple[float, Sequence[tuple[str, int]]]], limit: int) -> list[tuple[str, int]]:
    scores: dict[tuple[str, int], float] = defaultdict(float)
    for weight, ranking in rankings:
        for rank, key in enumerate(ranking):
            scores[key] += weight / (_RRF_K + rank)
    return sorted(scores, key=lambda k: -scores[k])[:limit]


def _index_search(out: Path, terms: list[str], session: str | None, limit: int) -> list[tuple[str, int]]:
    from library.index import open_index

    together = " ".join(terms[:MAX_JOINED])  # a long question: its first terms (the index takes 128)
    queries = [(2.0, together)] + [(1.0, t) for t in terms[:MAX_TERMS]] if len(terms) > 1 else [(1.0, terms[0])]
    rankings = []
    with open_index(out=out) as index:
        index.update()
        for weight, query in queries:
            hits = index.search(query, session=session, kinds=("caption",), limit=limit)
            rankings.append((weight, [(h.session, h.utt) for h in hits if h.utt is not None]))
    return _fuse(rankings, limit)


def _direct_search(finals_by_session: Mapping[str, Sequence[Final]], terms: list[str], limit: int):
    scored = []
    for session, finals in finals_by_session.items():
        for f in finals:
            text = f.text.lower()
            score = sum(1 for t in terms if t in text)
            if score:
                scored.append((-score, f.start, session, f.utt))
    scored.sort()
    return [(session, utt) for _, _, session, utt in scored[:limit]]


def search_captions(
    out: Path,
    question: str,
    fallback: Callable[[], Mapping[str, Sequence[Final]]],
    *,
    session: str | None,
    limit: int,
    index: bool = True,
) -> list[tuple[str, int]]:
    """``(session, utt)`` of the captions that best match ``question``, best first.

    Args:
        out: the folder of session folders (where the index lives).
        fallback: gives the captions to match directly when the index cannot
            be used (for one session, its captions).
        session: search this session only.
        index: use the search index of ``out`` (created if missing); without it the
            captions from ``fallback`` are matched directly.
    """
    terms = question_terms(question)
    if not terms:
        return []
    if not index:
        return _direct_search(fallback(), terms, limit)
    try:
        return _index_search(out, terms, session, limit)
    except (ImportError, OSError, sqlite3.Error, FolderError) as exc:  # never fatal for a question
        log.warning("the lecture index cannot be searched (%s); matching words directly", exc)
    return _direct_search(fallback(), terms, limit)


def time_mentions(question: str) -> list[float]:
    """Times named in a question (``12:34``, ``1:02:03``), in seconds."""
    return [t for t in (parse_time(m) for m in _TIME_WORD.findall(question)) if t is not None]


def expand(positions: Iterable[int], n: int, size: int) -> list[int]:
    """Each position with ``n`` neighbours on each side, in order of first appearance."""
    out: dict[int, None] = {}
    for p in positions:
        for q in range(max(0, p - n), min(size, p + n + 1)):
            out.setdefault(q, None)
    return list(out)


def runs(finals: Sequence[Final], positions: Iterable[int]) -> list[list[Final]]:
    """The captions at ``positions`` as runs of consecutive captions, in lecture order."""
    groups: list[list[Final]] = []
    last = -2
    for p in sorted(set(positions)):
        if p != last + 1 or not groups:
            groups.append([])
        groups[-1].append(finals[p])
        last = p
    return groups
