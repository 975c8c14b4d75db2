"""The one definition of CJK characters and the helpers built on it."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from common.script import HAN_RUN, cjk_share, count_words, has_cjk, has_han, is_cjk, unspaced

#: Unicode names of the letters that must count as CJK
_CJK_NAMES = ("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH", "HIRAGANA LETTER", "KATAKANA LETTER",
              "HALFWIDTH KATAKANA LETTER", "HANGUL SYLLABLE", "HANGUL CHOSEONG", "HANGUL JUNGSEONG",
              "HANGUL JONGSEONG", "HANGUL LETTER")
#: letters of other scripts, never CJK
_OTHER_NAMES = ("LATIN", "GREEK", "CYRILLIC", "ARABIC", "HEBREW", "DEVANAGARI", "THAI", "DIGIT", "FULLWIDTH LATIN")


def _named(prefixes: tuple[str, ...]) -> list[str]:
    return [chr(c) for c in range(sys.maxunicode + 1)
            if unicodedata.name(chr(c), "").startswith(prefixes)]


def test_every_han_kana_and_hangul_letter_unicode_names_is_cjk():
    letters = _named(_CJK_NAMES)
    assert len(letters) > 90_000
    assert [f"U+{ord(ch):04X}" for ch in letters if not is_cjk(ch)] == []


def test_letters_of_other_scripts_are_not_cjk():
    letters = _named(_OTHER_NAMES)
    assert len(letters) > 2_000
    assert [f"U+{ord(ch):04X}" for ch in letters if is_cjk(ch)] == []


@pytest.mark.parametrize("ch", ["中", "㐀", "豈", "𠀀", "𫝀"])
def test_han_of_every_block_is_han_and_unspaced(ch):
    assert is_cjk(ch) and has_han(ch) and unspaced(ch) and HAN_RUN.fullmatch(ch)


@pytest.mark.parametrize("ch", ["あ", "カ", "ｶ", "ㇰ"])
def test_kana_is_cjk_and_unspaced_but_not_han(ch):
    assert is_cjk(ch) and unspaced(ch) and not has_han(ch)


@pytest.mark.parametrize("ch", ["한", "ᄀ", "ㄱ"])
def test_hangul_is_cjk_but_korean_keeps_its_spaces(ch):
    assert is_cjk(ch) and not has_han(ch) and not unspaced(ch)


@pytest.mark.parametrize("ch", ["。", "，", "！", "（", "\u3000", "「"])
def test_cjk_punctuation_is_unspaced_but_no_letter(ch):
    assert unspaced(ch) and not is_cjk(ch) and not has_cjk(ch)


@pytest.mark.parametrize("ch", ["a", "7", ".", " ", "é", "ж"])
def test_other_characters_are_neither(ch):
    assert not is_cjk(ch) and not unspaced(ch)


def test_cjk_share_is_per_letter_and_none_without_letters():
    assert cjk_share("梯度 descent") == pytest.approx(2 / 9)
    assert cjk_share("今天，我们。") == 1.0
    assert cjk_share("plain English") == 0.0
    assert cjk_share("3.14 — !") is None
    assert cjk_share("") is None


def test_words_are_cjk_letters_plus_other_words():
    assert count_words("梯度下降 uses the learning-rate, 3 times") == 4 + 5
    assert count_words("hello world, again — yes") == 4
    assert count_words("안녕 세계") == 4
    assert count_words("") == 0
