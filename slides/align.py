"""Which slide is being talked about: captions aligned to the deck.

A hidden Markov model whose states are the slides. Emission: the cosine
similarity of a caption's TF-IDF vector (Latin word stems, Chinese character
bigrams; IDF over the slides) to each slide's, sharpened by ``sharpness``.
Transition, per caption: mostly stay, often the next slide, rarely a skip
ahead, more rarely back (a lecturer who returns to an earlier slide). A
caption with no words in common with any slide leaves the estimate as it was.

:class:`SlideTracker` is the live form (one caption at a time, forward
filtering: the answer uses only captions so far); :func:`align_texts` is the
batch form (Viterbi over the whole lecture, which may revise earlier
captions in the light of later ones).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from common.script import HAN_RUN

from .deck import Deck

__all__ = ["AlignOptions", "SlideTracker", "align_texts"]

_LATIN = re.compile(r"[a-z][a-z0-9]+")
_STOP = frozenset("""a an and are as at be but by can do for from has have how i if in is it its of on
or so that the then there these this to was we what when which will with you your our they them not
all one two just more also into about here now very okay right let us see look""".split())


@dataclass(frozen=True)
class AlignOptions:
    """The alignment model.

    Attributes:
        stay: probability per caption of staying on the slide.
        forward: of moving to the next slide.
        skip: of jumping further ahead (shared by the slides after the next).
        back: of going back (shared by the earlier slides, the previous one most).
        sharpness: how strongly text similarity beats the transition prior.
    """

    stay: float = 0.82
    forward: float = 0.12
    skip: float = 0.03
    back: float = 0.03
    sharpness: float = 12.0


def _tokens(text: str) -> list[str]:
    lowered = text.lower()
    words = [w[:-1] if len(w) > 4 and w.endswith("s") and not w.endswith("ss") else w
             for w in _LATIN.findall(lowered) if w not in _STOP]
    for run in HAN_RUN.findall(lowered):
        words += [run[i:i + 2] for i in range(len(run) - 1)] or [run]
    return words


class _Model:
    """IDF, slide vectors and the transition matrix of one deck."""

    def __init__(self, deck: Deck, options: AlignOptions):
        self.numbers = [s.number for s in deck.slides]
        docs = [Counter(_tokens(f"{s.title}\n{s.title}\n{s.text}\n{s.notes}")) for s in deck.slides]
        df = Counter(term for doc in docs for term in doc)
        n = len(docs)
        self.idf = {t: math.log((1 + n) / (1 + c)) + 1.0 for t, c in df.items()}
        self.vectors = [self._normed(doc) for doc in docs]
        self.transition = _transition(n, options)
        self.sharpness = options.sharpness

    def _normed(self, counts: Counter[str]) -> dict[str, float]:
        vec = {t: (1 + math.log(c)) * self.idf.get(t, 0.0) for t, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in vec.values()))
        return {t: v / norm for t, v in vec.items()} if norm else {}

    def log_emission(self, text: str) -> np.ndarray | None:
        """Log-likelihood of ``text`` under each slide, or None when it says nothing about slides."""
        query = self._normed(Counter(t for t in _tokens(text) if t in self.idf))
        if not query:
            return None
        sims = np.array([sum(v * vec.get(t, 0.0) for t, v in query.items()) for vec in self.vectors])
        return self.sharpness * sims


def _transition(n: int, o: AlignOptions) -> np.ndarray:
    """Row i: the probabilities of going from slide i to each slide."""
    t = np.zeros((n, n))
    for i in range(n):
        t[i, i] = o.stay
        if i + 1 < n:
            t[i, i + 1] = o.forward
        ahead = np.arange(i + 2, n)
        if len(ahead):
            weights = 1.0 / (ahead - i)
            t[i, ahead] = o.skip * weights / weights.sum()
        behind = np.arange(0, i)
        if len(behind):
            weights = 1.0 / (i - behind)
            t[i, behind] = o.back * weights / weights.sum()
        t[i] /= t[i].sum()
    return t


class SlideTracker:
    """The slide being talked about, updated one caption at a time (live use).

    ``push(text)`` returns the number of the most likely slide given the captions
    so far. Before any caption says something about a slide, that is the first slide.
    """

    def __init__(self, deck: Deck, options: AlignOptions | None = None):
        if not deck.slides:
            raise ValueError("a deck without slides cannot be aligned to")
        self.model = _Model(deck, options or AlignOptions())
        n = len(deck.slides)
        self.belief = np.full(n, 0.5 / max(1, n - 1)) if n > 1 else np.ones(1)
        self.belief[0] = 0.5 if n > 1 else 1.0

    @property
    def current(self) -> int:
        return self.model.numbers[int(np.argmax(self.belief))]

    def push(self, text: str) -> int:
        """Take the next caption into account; the most likely slide now."""
        emission = self.model.log_emission(text)
        if emission is not None:
            predicted = self.belief @ self.model.transition
            posterior = predicted * np.exp(emission - emission.max())
            total = posterior.sum()
            if total > 0 and np.isfinite(total):
                self.belief = posterior / total
        return self.current


def align_texts(deck: Deck, texts: Sequence[str], options: AlignOptions | None = None) -> list[int]:
    """The slide number of each caption, from the whole lecture at once (Viterbi)."""
    if not texts or not deck.slides:
        return []
    model = _Model(deck, options or AlignOptions())
    n = len(deck.slides)
    log_t = np.log(np.maximum(model.transition, 1e-300))
    score = np.full(n, math.log(0.5 / max(1, n - 1))) if n > 1 else np.zeros(1)
    score[0] = math.log(0.5) if n > 1 else 0.0
    back: list[np.ndarray] = []
    for k, text in enumerate(texts):
        emission = model.log_emission(text)
        if k:
            candidates = score[:, None] + log_t
            back.append(np.argmax(candidates, axis=0))
            score = candidates.max(axis=0)
        if emission is not None:
            score = score + emission
    path = [int(np.argmax(score))]
    for pointers in reversed(back):
        path.append(int(pointers[path[-1]]))
    path.reverse()
    return [model.numbers[i] for i in path]
