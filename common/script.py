"""Which characters are Chinese, Japanese or Korean (CJK): the one definition.

Character sets (bodies of a regex character class, to combine inside ``[...]``):

- :data:`HAN`: CJK unified ideographs (U+4E00-9FFF), extension A (U+3400-4DBF),
  compatibility ideographs (U+F900-FAFF), extensions B-H and the
  compatibility supplement (U+20000-323AF).
- :data:`KANA`: hiragana and katakana (U+3040-30FF), katakana phonetic
  extensions (U+31F0-31FF), half-width katakana (U+FF66-FF9F), the kana
  supplements (U+1AFF0-1B16F).
- :data:`HANGUL`: syllables and jamo extended-B (U+AC00-D7FF), jamo
  (U+1100-11FF), compatibility jamo (U+3130-318F), jamo extended-A
  (U+A960-A97F).
- :data:`CJK` = Han + kana + hangul: the letters, no punctuation. Counting
  (words, tokens, a text's CJK share) and :func:`is_cjk` use this set.
- :data:`CJK_PUNCTUATION`: CJK symbols and punctuation (U+3000-303F, the
  ideographic space included) and the half-/full-width forms block
  (U+FF00-FFEF: "，" "！" "（", full-width Latin letters and digits).

Only :func:`unspaced` includes punctuation: Han, kana and CJK punctuation are
written without spaces between words, so two pieces of them are joined
without one. Korean is written with spaces, so hangul is CJK but not unspaced.
Chinese-only tools (jieba, pinyin) take runs of :data:`HAN` (:data:`HAN_RUN`).
"""

from __future__ import annotations

import re

__all__ = ["HAN", "KANA", "HANGUL", "CJK", "CJK_PUNCTUATION", "CJK_CHAR", "HAN_CHAR", "HAN_RUN",
           "is_cjk", "has_cjk", "has_han", "cjk_count", "cjk_share", "unspaced", "count_words"]

HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U000323af"
KANA = "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f\U0001aff0-\U0001b16f"
HANGUL = "\uac00-\ud7ff\u1100-\u11ff\u3130-\u318f\ua960-\ua97f"
CJK = HAN + KANA + HANGUL
CJK_PUNCTUATION = "\u3000-\u303f\uff00-\uffef"

#: one CJK letter
CJK_CHAR = re.compile(f"[{CJK}]")
#: one Han character
HAN_CHAR = re.compile(f"[{HAN}]")
#: a run of Han characters (what jieba and pinyin take)
HAN_RUN = re.compile(f"[{HAN}]+")
_UNSPACED = re.compile(f"[{HAN}{KANA}{CJK_PUNCTUATION}]")
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")


def is_cjk(ch: str) -> bool:
    """Whether the character ``ch`` is a CJK letter (Han, kana or hangul)."""
    return CJK_CHAR.fullmatch(ch) is not None


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds a CJK letter."""
    return CJK_CHAR.search(text) is not None


def has_han(text: str) -> bool:
    """Whether ``text`` holds a Han character."""
    return HAN_CHAR.search(text) is not None


def cjk_count(text: str) -> int:
    """How many CJK letters ``text`` holds."""
    return len(CJK_CHAR.findall(text))


def cjk_share(text: str) -> float | None:
    """CJK letters per letter of ``text`` (``str.isalpha``); ``None`` when it has no letters."""
    letters = sum(1 for ch in text if ch.isalpha())
    return cjk_count(text) / letters if letters else None


def unspaced(ch: str) -> bool:
    """Whether ``ch`` is Han, kana or CJK punctuation: no space goes between two of them."""
    return _UNSPACED.fullmatch(ch) is not None


def count_words(text: str) -> int:
    """Words of ``text``: each CJK letter counts one, so does each other word or number
    (letters and digits, joined by ``'`` ``’`` ``-``: "learning-rate" is one)."""
    return cjk_count(text) + len(_WORD.findall(CJK_CHAR.sub(" ", text)))
