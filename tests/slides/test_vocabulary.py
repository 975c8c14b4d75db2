"""The deck's vocabulary: technical terms in, numbers, formulas and stop words out, bounded."""

from __future__ import annotations

from slides import (
    MAX_TERM_CHARS,
    MAX_TERMS,
    Deck,
    Slide,
    build_vocabulary,
    clean_terms,
    hotword_text,
)

from .decks import LECTURE_DECK


def deck_of(*slides: tuple[str, str, str]) -> Deck:
    return Deck(tuple(Slide(i, *s) for i, s in enumerate(slides, 1)), "t.md", "0" * 64)


def lecture_deck() -> Deck:
    return deck_of(*((t, "\n".join(b), n) for t, b, n in LECTURE_DECK))


def test_titles_and_technical_terms_come_first():
    terms = build_vocabulary(lecture_deck())
    folded = [t.casefold() for t in terms]
    for term in ("gradient descent", "backpropagation", "regularization", "perceptron", "softmax",
                 "relu", "lstm", "cross-entropy", "learning rate", "sigmoid", "dropout"):
        assert term in folded, term
    assert folded.index("backpropagation") < folded.index("dropout")


def test_numbers_formulas_single_letters_and_stop_words_are_not_terms():
    deck = deck_of(("Gradient Step", "$w_{t+1} = w_t - \\eta \\nabla L(w_t)$\nf(x) = x^2 + 3x\n"
                    "3.14 and 2026 and 50%\nthe of and with\nloss = 0.25 * n", ""))
    terms = build_vocabulary(deck)
    assert terms[0] == "Gradient Step" and set(terms) <= {"Gradient Step", "Gradient"}


def test_acronyms_and_versioned_names_are_terms_but_digits_alone_are_not():
    terms = build_vocabulary(deck_of(("Models", "We compare GPT-4 with ResNet-50 and a CNN on 1000 images", "")))
    assert {"GPT-4", "ResNet-50", "CNN"} <= set(terms)
    assert not any(t.isdigit() for t in terms)


def test_chinese_words_come_from_jieba():
    deck = deck_of(("卷积神经网络", "卷积层提取特征，池化层降低维度\n梯度下降与反向传播", ""))
    terms = build_vocabulary(deck)
    assert "卷积" in terms and "神经网络" in terms
    assert all(len(t) >= 2 for t in terms)


def test_the_vocabulary_is_bounded():
    long_word = "x" + "y" * 100
    body = " ".join(f"Term{chr(65 + i % 26)}{chr(65 + i // 26)}x perceptronic{i}" for i in range(300))
    terms = build_vocabulary(deck_of(("Many", body + " " + long_word, "")))
    assert len(terms) <= MAX_TERMS and all(len(t) <= MAX_TERM_CHARS for t in terms)
    assert long_word not in terms


def test_clean_terms_drops_junk_repeats_and_control_characters():
    raw = ["ReLU", "relu", "", "  a\x00b  ", 42, "x" * 65, "soft\nmax", *[f"t{i}" for i in range(200)]]
    terms = clean_terms(raw)
    assert terms[:3] == ("ReLU", "a b", "soft max")
    assert len(terms) == MAX_TERMS and len(set(t.casefold() for t in terms)) == len(terms)


def test_hotword_text_keeps_the_ranking():
    assert hotword_text(["Backpropagation", "ReLU", "relu"]) == "Backpropagation, ReLU"
