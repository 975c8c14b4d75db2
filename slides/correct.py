"""Term correction after the recognizer, for every engine.

A :class:`Corrector` rewrites the places in a final's text that are a
misrecognised deck term, and leaves everything else alone. It is deliberately
conservative; the rules, in the order they are tried at each position
(longest window first):

- **join** — two or three words that, joined, spell a term letter for letter
  ("soft max" -> "softmax", "back propagation" -> "backpropagation"), when
  the term is not itself an everyday word. Nothing is misheard here, only
  spaced apart, so this is a respelling, not a changed word.
- **spelling** — one word, or a window of words, within a small Levenshtein
  distance of a term (1 edit up to 7 letters, 2 up to 11, 3 beyond), with
  the same first letter, where every word that would change is *not* a
  correct word. A correct word is one that is common in English (``wordfreq``
  Zipf >= :data:`PROTECT_ZIPF`), occurs in the deck, or is an inflection of
  the term (a term is a prefix of it or it of the term: "convolutional" stays).
  Words of four letters or fewer are never changed by spelling.
- **case** — a word that is not a correct word and equals a term but for
  case ("relu" -> "ReLU").
- **pinyin** — Chinese: a run of characters that sounds like a Chinese term
  (same toneless pinyin; for terms of three or more characters also the
  common accent merges zh/z, ch/c, sh/s, n/l, -ng/-n) but is written
  differently, and is not itself a word of jieba's dictionary
  ("题读" -> "梯度", but "提督" stays).

The journal keeps the engine's text as ``raw`` next to the corrected text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from common.script import HAN_RUN, has_cjk, has_han

from .deck import Deck
from .vocabulary import build_vocabulary, clean_terms, zipf

__all__ = ["Change", "Correction", "Corrector", "PROTECT_ZIPF", "corrector_for"]

log = logging.getLogger(__name__)

#: a word at least this common in English is a correct word and is never changed by spelling
PROTECT_ZIPF = 2.5
#: a term at least this common is not produced by joining words ("drop out" stays)
JOIN_MAX_ZIPF = 3.0
MAX_WINDOW = 3

#: a word: letters of any script (so "Schrödinger" is one word, never "Schr" + "dinger")
_WORD = re.compile(r"[^\W\d_][^\W\d_'’]*")
_JOINER = re.compile(r"^[ \-]?$")


@dataclass(frozen=True)
class Change:
    """One rewrite: ``original`` at character ``start`` of the engine's text became ``replacement``."""

    start: int
    original: str
    replacement: str
    kind: str  # "join", "spelling", "case" or "pinyin"


@dataclass(frozen=True)
class Correction:
    """The corrected text and what was changed (empty when nothing was)."""

    text: str
    changes: tuple[Change, ...] = ()


def _letters(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def _max_edits(length: int) -> int:
    return 1 if length <= 7 else 2 if length <= 11 else 3


@lru_cache(maxsize=65536)
def _common(word: str) -> bool:
    return zipf(word.lower()) >= PROTECT_ZIPF


@dataclass(frozen=True)
class _Term:
    text: str
    letters: str
    words: tuple[str, ...]
    joinable: bool


class Corrector:
    """Corrects texts against a fixed list of terms (build once per session).

    Args:
        terms: the deck's vocabulary (:func:`slides.vocabulary.build_vocabulary`).
        deck_words: words spelled in the deck; they count as correct words.
    """

    def __init__(self, terms: Iterable[str], deck_words: Iterable[str] = ()):
        clean = clean_terms(terms)
        # Terms with digits ("GPT-4", "ResNet-50") are left to the recognizer's hints: their
        # letters alone would match "gpt" in "gpt 3.5" and turn it into another version.
        self.latin = [self._term(t) for t in clean if not has_cjk(t) and len(_letters(t)) >= 3
                      and not any(ch.isdigit() for ch in t)]
        self.chinese = sorted((t for t in clean if HAN_RUN.fullmatch(t) and len(t) >= 2),
                              key=len, reverse=True)
        # "Convolutional" makes "convolutional" correct, but "ReLU" does not make "relu" correct
        self.deck_words = {v for w in deck_words for v in {w, w.lower() if w[1:] == w[1:].lower() else w}}
        self._pinyin = {t: _pinyin(t) for t in self.chinese}

    @staticmethod
    def _term(text: str) -> _Term:
        letters = _letters(text)
        words = tuple(w.lower() for w in _WORD.findall(text))
        return _Term(text, letters, words, zipf(letters) < JOIN_MAX_ZIPF and zipf(text.lower()) < JOIN_MAX_ZIPF)

    def correct(self, text: str) -> Correction:
        """``text`` with misrecognised terms rewritten, and the list of changes."""
        if not text or not (self.latin or self.chinese):
            return Correction(text)
        changes = self._latin_changes(text) if self.latin else []
        if self.chinese and has_han(text):
            taken = [(c.start, c.start + len(c.original)) for c in changes]
            changes += [c for c in self._chinese_changes(text)
                        if not any(a < c.start + len(c.original) and c.start < b for a, b in taken)]
        if not changes:
            return Correction(text)
        changes.sort(key=lambda c: c.start)
        out, at = [], 0
        for change in changes:
            out.append(text[at:change.start])
            out.append(change.replacement)
            at = change.start + len(change.original)
        out.append(text[at:])
        return Correction("".join(out), tuple(changes))

    # -- Latin -------------------------------------------------------------------

    def _correct_word(self, word: str) -> bool:
        low = word.lower().replace("’", "'")
        return word in self.deck_words or low in self.deck_words or _common(low.split("'")[0])

    def _latin_changes(self, text: str) -> list[Change]:
        tokens = list(_WORD.finditer(text))
        changes: list[Change] = []
        i = 0
        while i < len(tokens):
            change, used = self._best_window(text, tokens, i)
            if change is not None:
                changes.append(change)
            i += used
        return changes

    def _best_window(self, text: str, tokens: list, i: int) -> tuple[Change | None, int]:
        for n in range(min(MAX_WINDOW, len(tokens) - i), 0, -1):
            window = tokens[i:i + n]
            if any(not _JOINER.match(text[a.end():b.start()]) for a, b in zip(window, window[1:], strict=False)):
                continue
            words = [m.group() for m in window]
            if not all(w.isascii() for w in words):
                continue  # words of other Latin alphabets are never rewritten into deck terms
            start, end = window[0].start(), window[-1].end()
            original = text[start:end]
            for term in self.latin:
                kind = self._match(original, words, term)
                if kind == "same":
                    return None, n
                if kind is not None:
                    return Change(start, original, _fit_case(original, term.text), kind), n
        return None, 1

    def _match(self, original: str, words: list[str], term: _Term) -> str | None:
        """How ``original`` (the window's text, ``words`` its words) matches ``term``, or None."""
        letters = _letters(original)
        if original.lower() == term.text.lower() or (letters == term.letters and len(words) == len(term.words)):
            if original == term.text or len(words) > 1 or self._correct_word(words[0]):
                return "same"
            return "case"
        if letters == term.letters:
            return "join" if len(words) > len(term.words) and term.joinable else None
        return "spelling" if self._near(letters, words, term) else None

    def _near(self, letters: str, words: list[str], term: _Term) -> bool:
        from rapidfuzz.distance import Levenshtein

        if not letters or letters[0] != term.letters[0] or len(words) != max(1, len(term.words)):
            return False
        limit = _max_edits(len(term.letters))
        if abs(len(letters) - len(term.letters)) > limit:
            return False
        if Levenshtein.distance(letters, term.letters, score_cutoff=limit) > limit:
            return False
        for word, target in zip(words, term.words or (term.letters,), strict=False):
            low = word.lower()
            if low == target:
                continue
            if len(low) <= 4 or self._correct_word(word) or low.startswith(target) or target.startswith(low):
                return False
        return True

    # -- Chinese -------------------------------------------------------------------

    def _chinese_changes(self, text: str) -> list[Change]:
        changes: list[Change] = []
        for run in HAN_RUN.finditer(text):
            sounds = _pinyin(run.group())
            free = [True] * len(sounds)
            for term in self.chinese:
                size = len(term)
                for k in range(len(sounds) - size + 1):
                    window = run.group()[k:k + size]
                    if not all(free[k:k + size]) or window == term:
                        continue
                    if self._sounds_like(window, sounds[k:k + size], term):
                        changes.append(Change(run.start() + k, window, term, "pinyin"))
                        free[k:k + size] = [False] * size
        return changes

    def _sounds_like(self, window: str, sounds: Sequence[str], term: str) -> bool:
        target = self._pinyin[term]
        if len(term) >= 3:
            same = [_fuzzy(s) for s in sounds] == [_fuzzy(s) for s in target]
        else:
            same = list(sounds) == list(target)
        return same and not _dictionary_word(window)


def corrector_for(deck: Deck, terms: Iterable[str] | None = None) -> Corrector:
    """A :class:`Corrector` for a deck: its vocabulary, with the deck's own words as correct words."""
    words = _WORD.findall("\n".join(s.content for s in deck.slides))
    return Corrector(build_vocabulary(deck) if terms is None else terms, words)


def _fit_case(original: str, term: str) -> str:
    """``term`` with the original's leading case when the term is plain or title case."""
    words = term.split()
    if any(ch.isupper() for w in words for ch in w[1:]):
        return term  # ReLU, PyTorch: as the deck spells it
    if original[:1].islower() and all(w[:1].isupper() or not w[:1].isalpha() for w in words):
        return " ".join(w[:1].lower() + w[1:] for w in words)
    if original[:1].isupper() and term[:1].islower():
        return term[:1].upper() + term[1:]
    return term


@lru_cache(maxsize=65536)
def _pinyin(text: str) -> tuple[str, ...]:
    from pypinyin import lazy_pinyin

    return tuple(lazy_pinyin(text))


def _fuzzy(syllable: str) -> str:
    """A syllable with the merges of common accents (zh/z, ch/c, sh/s, n/l, -ng/-n)."""
    s = re.sub(r"^([zcs])h", r"\1", syllable)
    s = re.sub(r"^l", "n", s)
    return re.sub(r"ng$", "n", s)


def _dictionary_word(word: str) -> bool:
    return _jieba_freq().get(word, 0) > 0


@lru_cache(maxsize=1)
def _jieba_freq() -> dict[str, int]:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.dt.check_initialized()
    return jieba.dt.FREQ
