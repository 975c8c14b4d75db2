"""An extractive outline for when no LLM key is configured.

The session is cut into windows of a few minutes. Each window is a document
for TF-IDF: a term (a Latin word of three letters or more that is not a stop
word, or a Chinese word of two characters or more as jieba cuts the text,
again without stop words; see :func:`library.textseg.keywords`) weighs its
count in the window times ``log(1 + windows / windows containing it)``. A
sentence scores the sum of its distinct terms' weights divided by the square
root of its term count, so it rewards sentences dense in words typical of
this window rather than long ones. The best sentences of each window are
kept in the order they were said, with their times, under a heading naming
the window's top terms. The search index cuts Chinese with the same
segmenter, so a heading's terms are words that ``notsound search`` finds.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from library.textseg import keywords

from .transcript import Final, fmt_time

__all__ = ["Sentence", "split_sentences", "terms", "extractive_outline"]

_SENTENCE_END = re.compile(r"(?<=[.!?。！？；;])\s*")


@dataclass(frozen=True)
class Sentence:
    """A sentence of the transcript with the start time of its caption."""

    time: float
    text: str


def split_sentences(finals: Sequence[Final]) -> list[Sentence]:
    out = []
    for final in finals:
        for piece in _SENTENCE_END.split(final.text):
            piece = piece.strip()
            if piece:
                out.append(Sentence(final.start, piece))
    return out


def terms(text: str) -> list[str]:
    """Content terms: lower-case Latin words and Chinese words (jieba), without stop words."""
    return keywords(text)


def _windows(sentences: Sequence[Sentence], window_s: float) -> list[list[Sentence]]:
    groups: dict[int, list[Sentence]] = {}
    for sentence in sentences:
        groups.setdefault(int(sentence.time // window_s), []).append(sentence)
    return [groups[k] for k in sorted(groups)]


def _pick(window: Sequence[Sentence], weights: dict[str, float], k: int) -> list[Sentence]:
    scored = []
    seen: set[str] = set()
    for i, sentence in enumerate(window):
        distinct = set(terms(sentence.text))
        key = sentence.text.lower()
        if len(distinct) < 2 or key in seen:
            continue
        seen.add(key)
        scored.append((sum(weights[t] for t in distinct) / math.sqrt(len(distinct)), i))
    best = sorted(i for _, i in sorted(scored, reverse=True)[:k])
    return [window[i] for i in best] or list(window[:k])


def extractive_outline(
    finals: Sequence[Final], *, window_s: float = 300.0, per_window: int = 3
) -> list[tuple[str, list[Sentence]]]:
    """Per window: a heading (time range and top terms) and its most informative sentences."""
    windows = _windows(split_sentences(finals), window_s)
    counts = [Counter(t for s in w for t in terms(s.text)) for w in windows]
    df = Counter(t for c in counts for t in c)
    n = len(windows)
    outline = []
    for window, count in zip(windows, counts, strict=True):
        weights = {t: c * math.log(1 + n / df[t]) for t, c in count.items()}
        top = [t for t, _ in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:3]]
        start = window[0].time // window_s * window_s
        label = f"{fmt_time(start)}–{fmt_time(start + window_s)}"
        outline.append((f"{label} · {', '.join(top)}" if top else label, _pick(window, weights, per_window)))
    return outline
