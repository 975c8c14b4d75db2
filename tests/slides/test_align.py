"""Which slide a caption is about: batch (Viterbi) and live (one caption at a time)."""

from __future__ import annotations

import pytest

from slides import Annotated, Deck, DeckFollower, Slide, SlideTracker, align_texts

from .decks import LECTURE_DECK, synthetic_talk


def lecture_deck() -> Deck:
    return Deck(tuple(Slide(i, t, "\n".join(b), n) for i, (t, b, n) in enumerate(LECTURE_DECK, 1)),
                "nn.pptx", "0" * 64)


def accuracy(guess: list[int], truth: list[int]) -> float:
    return sum(g == t for g, t in zip(guess, truth, strict=True)) / len(truth)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_alignment_follows_a_talk_with_back_and_forth(seed):
    talk = synthetic_talk(seed=seed)
    guess = align_texts(lecture_deck(), [text for _, text in talk])
    assert accuracy(guess, [n for n, _ in talk]) >= 0.85


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_live_alignment_follows_a_talk_one_caption_at_a_time(seed):
    talk = synthetic_talk(seed=seed)
    tracker = SlideTracker(lecture_deck())
    guess = [tracker.push(text) for _, text in talk]
    assert accuracy(guess, [n for n, _ in talk]) >= 0.85


def test_a_return_to_an_earlier_slide_is_followed():
    talk = synthetic_talk([1, 2, 3, 4, 5, 6, 7, 2, 8], per_slide=6, seed=3)
    guess = align_texts(lecture_deck(), [text for _, text in talk])
    back = [g for (n, _), g in zip(talk, guess, strict=True) if n == 2]
    assert back.count(2) >= 10  # both visits to slide 2, 12 captions in all


def test_captions_that_say_nothing_about_slides_keep_the_current_slide():
    tracker = SlideTracker(lecture_deck())
    assert tracker.push("backpropagation uses the chain rule for every partial derivative") == 5
    assert [tracker.push(text) for text in ("okay", "hmm", "so yes")] == [5, 5, 5]


def test_before_any_evidence_the_first_slide_is_assumed():
    assert SlideTracker(lecture_deck()).push("hello everyone") == 1
    assert align_texts(lecture_deck(), []) == []


def test_chinese_captions_align_by_character_bigrams():
    deck = Deck((Slide(1, "梯度下降", "学习率决定步长"), Slide(2, "反向传播", "链式法则计算偏导数"),
                 Slide(3, "卷积网络", "卷积核在图像上滑动")), "zh.md", "0" * 64)
    texts = ["我们先看梯度下降", "学习率太大会发散", "接下来是反向传播", "用链式法则求偏导数", "然后卷积核滑动"]
    assert align_texts(deck, texts) == [1, 1, 2, 2, 3]


def test_the_follower_corrects_finals_keeps_the_raw_text_and_tracks_the_slide():
    follower = DeckFollower(lecture_deck())
    first = follower.annotate("so back propagation uses the chain rule for every partial derivative")
    assert first == Annotated("so backpropagation uses the chain rule for every partial derivative",
                              "so back propagation uses the chain rule for every partial derivative", 5,
                              first.changes)
    assert [c.kind for c in first.changes] == ["join"]
    second = follower.annotate("the kernels slide over the image")
    assert (second.text, second.raw, second.slide) == ("the kernels slide over the image", "", 9)
