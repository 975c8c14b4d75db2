"""Term correction: fixes misheard terms, never changes a correct word."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slides import Corrector, Deck, Slide, corrector_for

from .decks import LECTURE_DECK


def lecture_deck() -> Deck:
    return Deck(tuple(Slide(i, t, "\n".join(b), n) for i, (t, b, n) in enumerate(LECTURE_DECK, 1)),
                "nn.pptx", "0" * 64)


@pytest.fixture(scope="module")
def corrector() -> Corrector:
    return corrector_for(lecture_deck())


def common_words(n: int = 3000) -> list[str]:
    from wordfreq import top_n_list

    return [w for w in top_n_list("en", n) if re.fullmatch(r"[a-z]+", w)]


COMMON = common_words()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(COMMON), min_size=1, max_size=25))
def test_sentences_of_everyday_words_are_never_changed_except_respelt_joins(corrector, words):
    text = " ".join(words)
    result = corrector.correct(text)
    for change in result.changes:  # only "soft max" -> "softmax": same letters, no word misheard
        assert change.kind == "join", change
        assert re.sub(r"[^a-z]", "", change.original.lower()) == re.sub(r"[^a-z]", "", change.replacement.lower())
    if not result.changes:
        assert result.text == text


@pytest.mark.parametrize("text", [
    "the atom is small", "our perception of the world", "convolutional layers are stacked",
    "a decent result", "students drop out of class", "the sigma of the distribution",
    "ReLU and sigmoid and backpropagation are spelled right",
])
def test_correct_words_stay_as_they_are(corrector, text):
    assert corrector.correct(text).text == text


@pytest.mark.parametrize("heard, meant", [
    ("we use soft max at the end", "we use softmax at the end"),
    ("then back propagation computes it", "then backpropagation computes it"),
    ("the perceptrom learns", "the perceptron learns"),
    ("a relu unit", "a ReLU unit"),
    ("regularisation helps", "regularization helps"),
    ("the lstn keeps memory", "the lstn keeps memory"),  # four letters: too short to guess
])
def test_misheard_terms_are_fixed(corrector, heard, meant):
    assert corrector.correct(heard).text == meant


def test_changes_say_what_was_replaced_where():
    result = Corrector(["softmax"]).correct("then soft max.")
    assert result.text == "then softmax."
    (change,) = result.changes
    assert (change.start, change.original, change.replacement, change.kind) == (5, "soft max", "softmax", "join")


def test_chinese_sound_alikes_are_fixed_by_pinyin_but_dictionary_words_stay():
    corrector = Corrector(["梯度下降", "反向传播", "卷积"])
    assert corrector.correct("我们用题读下降和反向川波").text == "我们用梯度下降和反向传播"
    assert corrector.correct("卷几神经网络").text == "卷积神经网络"
    assert corrector.correct("提督来了，梯度下降没问题").text == "提督来了，梯度下降没问题"


def test_no_terms_means_no_changes():
    assert Corrector([]).correct("soft max") .text == "soft max"


def test_terms_with_digits_never_rewrite_another_version_into_the_caption():
    corrector = Corrector(["GPT-4", "ResNet-50", "transformer"])
    assert corrector.correct("compare gpt 3.5 with resnet 18").text == "compare gpt 3.5 with resnet 18"
    assert corrector.correct("the transformr").text == "the transformer"  # other terms still work


def test_words_of_other_latin_alphabets_are_never_cut_into_pieces_and_rewritten():
    corrector = Corrector(["Dinger", "Bertrag", "Schrodinger"])
    for text in ("Schrödinger wrote it down", "die Übertragung der Daten", "el niño"):
        assert corrector.correct(text).text == text
