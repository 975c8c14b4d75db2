"""Terms a lecture is likely to use, ranked from its deck.

The vocabulary is what the recognizer is told (faster-whisper ``hotwords``
through :class:`models.base.DecodeHints`) and what :mod:`slides.correct`
corrects towards. Candidates:

- short slide titles ("Backpropagation", "Gradient Descent"),
- Latin words that are technical (rare in everyday English by ``wordfreq``),
  acronyms and mixed case (``ReLU``, ``CNN``, ``PyTorch``), hyphenated terms,
- multi-word terms: two or three words without stop words that recur in the
  deck or stand in a title ("learning rate", "cross entropy"),
- Chinese words found by jieba's TF-IDF keyword extraction (two or more
  characters).

Never numbers, formulas (lines that are mostly symbols), LaTeX commands or
single letters. Each term is scored by where it occurs (title 3, text 1,
notes 0.5) times a rarity bonus, and the list is bounded:
:data:`MAX_TERMS` terms of at most :data:`MAX_TERM_CHARS` characters.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable

from common.script import HAN_RUN, has_cjk

from .deck import Deck

__all__ = ["MAX_TERMS", "MAX_TERM_CHARS", "build_vocabulary", "clean_terms", "hotword_text",
           "zipf"]

log = logging.getLogger(__name__)

MAX_TERMS = 100
MAX_TERM_CHARS = 64
#: a word at least this common in everyday English (wordfreq Zipf scale) is not a term by itself
COMMON_ZIPF = 4.0
WEIGHTS = {"title": 3.0, "text": 1.0, "notes": 0.5}

_LATIN = re.compile(r"(?<![\\\w])[A-Za-z][A-Za-z0-9]*(?:[-'’][A-Za-z0-9]+)*")
_MATH = re.compile(r"[=^_\\∑∫√≤≥±×÷∂∇→←≈≠∈∀∃]")
_VERSIONED = re.compile(r"^[A-Z][A-Za-z]+-?\d+[A-Za-z]?$")  # ResNet-50, GPT-4
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_STOP = frozenset("""
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each etc few for from further
had has have having he her here hers him his how i if in into is it its itself just let like may
me might more most must my no nor not now of off on once only or other our out over own per same
she should so some such than that the their them then there these they this those through to too
under until up use used using very via vs was we were what when where which while who whom why
will with would you your yours e.g i.e example examples slide slides lecture today chapter part
section figure table question questions answer summary outline overview introduction conclusion
""".split())


def zipf(word: str) -> float:
    """How common ``word`` is in English (wordfreq Zipf: 7 = "the", 3 = once per million, 0 = unknown)."""
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en")


def _formula_line(line: str) -> bool:
    symbols = len(_MATH.findall(line)) + line.count("(") + sum(ch.isdigit() for ch in line)
    words = len([w for w in _LATIN.findall(line) if len(w) >= 3])
    return bool(_MATH.search(line)) and symbols >= words


def _is_latin_term(word: str) -> bool:
    """A single word that is a term by its shape or rarity (not a number, letter or stop word)."""
    if len(word) < 2 or word.lower() in _STOP:
        return False
    if any(ch.isdigit() for ch in word):
        return bool(_VERSIONED.match(word))
    inner_caps = sum(ch.isupper() for ch in word[1:])
    if inner_caps:  # ReLU, PyTorch, CNN
        return True
    parts = [part for part in re.split(r"[-'’]", word) if len(part) >= 2]
    return len(word) >= 4 and any(zipf(part) < COMMON_ZIPF for part in parts)


def _phrases(words: list[str]) -> Iterable[str]:
    """Two- and three-word runs without stop words or numbers."""
    for n in (2, 3):
        for i in range(len(words) - n + 1):
            run = words[i:i + n]
            if all(len(w) >= 2 and w.lower() not in _STOP and not any(c.isdigit() for c in w) for w in run):
                yield " ".join(run)


class _Tally:
    """Scores of candidate terms, keyed case-insensitively, with the most frequent spelling."""

    def __init__(self) -> None:
        self.score: defaultdict[str, float] = defaultdict(float)
        self.count: Counter[str] = Counter()
        self.spellings: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def add(self, term: str, weight: float) -> None:
        key = term.casefold()
        self.score[key] += weight
        self.count[key] += 1
        self.spellings[key][term] += 1

    def spelling(self, key: str) -> str:
        return self.spellings[key].most_common(1)[0][0]


def _proper_noun(word: str, position: int, in_title: bool) -> bool:
    """A capitalised word inside running text ("we use Adam here"), not a title-case heading."""
    return (not in_title and position > 0 and len(word) >= 3 and word[0].isupper()
            and word[1:].islower() and word.lower() not in _STOP)


def _latin(tally: _Tally, phrases: _Tally, text: str, weight: float, in_title: bool = False) -> None:
    for line in text.split("\n"):
        if _formula_line(line):
            continue
        for chunk in re.split(r"[,.;:!?()\[\]{}|/\"“”•·–—]+", line):
            words = _LATIN.findall(chunk)
            for position, word in enumerate(words):
                if _is_latin_term(word) or _proper_noun(word, position, in_title):
                    tally.add(word, weight)
            for phrase in _phrases(words):
                phrases.add(phrase, weight)


def _chinese(deck: Deck, limit: int) -> list[tuple[str, float]]:
    parts = []
    for slide in deck.slides:
        parts += [slide.title] * 3 + [slide.text, slide.notes]
    text = "\n".join(" ".join(HAN_RUN.findall(p)) for p in parts)
    if not text.strip():
        return []
    import jieba
    import jieba.analyse

    jieba.setLogLevel(logging.WARNING)
    tags = jieba.analyse.extract_tags(text, topK=limit, withWeight=True)
    return [(w, weight) for w, weight in tags if len(w) >= 2 and HAN_RUN.fullmatch(w)]


def _title_terms(tally: _Tally, title: str) -> None:
    words = _LATIN.findall(title)
    if 1 <= len(words) <= 4 and len(title) <= 40 and not has_cjk(title) and not _formula_line(title):
        phrase = " ".join(words)
        if len(words) > 1 or _is_latin_term(phrase):
            tally.add(phrase, WEIGHTS["title"] * 2)


def build_vocabulary(deck: Deck, limit: int = MAX_TERMS) -> tuple[str, ...]:
    """The deck's terms, most useful first, at most ``limit`` (and :data:`MAX_TERMS`)."""
    limit = min(limit, MAX_TERMS)
    words, phrases, titles = _Tally(), _Tally(), _Tally()
    for slide in deck.slides:
        _title_terms(titles, slide.title)
        for field in ("title", "text", "notes"):
            _latin(words, phrases, getattr(slide, field), WEIGHTS[field], field == "title")
    ranked: dict[str, tuple[float, str]] = {}
    for key, score in words.score.items():
        bonus = 1.0 + max(0.0, COMMON_ZIPF - zipf(key)) / 2
        ranked[key] = (score * bonus, words.spelling(key))
    for key, score in phrases.score.items():
        if phrases.count[key] >= 2 or key in titles.score:
            rare = any(zipf(w) < COMMON_ZIPF for w in key.split())
            ranked[key] = (score * (1.5 if rare else 1.0), phrases.spelling(key))
    for key, score in titles.score.items():
        old = ranked.get(key, (0.0, ""))[0]
        ranked[key] = (old + score, titles.spelling(key))
    _merge_plurals(ranked)
    for term, weight in _chinese(deck, limit):
        ranked[term] = (weight * 10, term)
    order = sorted(ranked.values(), key=lambda item: (-item[0], item[1]))
    return clean_terms((term for _, term in order), limit)


def _merge_plurals(ranked: dict[str, tuple[float, str]]) -> None:
    """"gradients" counts for "gradient" when both are candidates."""
    for key in [k for k in ranked if k.endswith("s") and not k.endswith("ss")]:
        singular = key[:-1]
        if singular in ranked and key in ranked:
            score, spelling = ranked.pop(key)
            old, kept = ranked[singular]
            ranked[singular] = (old + score, kept)


def clean_terms(terms: Iterable[object], limit: int = MAX_TERMS) -> tuple[str, ...]:
    """Terms as sent to a worker: text only, stripped, no control characters, no repeats,
    at most ``limit`` (and :data:`MAX_TERMS`) of at most :data:`MAX_TERM_CHARS` characters."""
    out: list[str] = []
    seen: set[str] = set()
    for term in terms:
        if not isinstance(term, str):
            continue
        term = " ".join(_CONTROL.sub(" ", term).split())
        if not term or len(term) > MAX_TERM_CHARS or term.casefold() in seen:
            continue
        seen.add(term.casefold())
        out.append(term)
        if len(out) >= min(limit, MAX_TERMS):
            break
    return tuple(out)


def hotword_text(terms: Iterable[str]) -> str:
    """The terms as one faster-whisper ``hotwords`` string (most useful first: it is cut at the end)."""
    return ", ".join(clean_terms(terms))
