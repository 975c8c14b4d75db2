"""Stretches of speech that a decode gave no words for (pure arithmetic on samples)."""

from __future__ import annotations

import numpy as np
import pytest

from models.coverage import CoverageOptions, Stretch, pieces, uncovered, voiced_frames

SR = 16_000


def tone(seconds: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return (level * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SR), dtype=np.float32)


def test_voiced_frames_are_the_loud_ones_and_never_digital_silence():
    audio = np.concatenate([quiet(0.2), tone(0.4), tone(0.2, level=0.003), quiet(0.2)])
    voiced = voiced_frames(audio)
    assert len(voiced) == 50
    assert not voiced[:10].any() and voiced[10:30].all() and not voiced[30:].any()
    assert not voiced_frames(quiet(1.0)).any()
    assert not voiced_frames(np.full(SR, 1e-4, dtype=np.float32)).any()  # hiss under -60 dBFS


def test_words_over_all_the_speech_leave_nothing_uncovered():
    audio = np.concatenate([tone(2.0), quiet(0.3), tone(2.0)])
    words = [(t, t + 0.4) for t in np.arange(0.0, 4.3, 0.4)]
    assert uncovered(audio, words) == []


def test_speech_without_words_in_the_middle_at_the_start_and_at_the_end_is_found():
    audio = np.concatenate([tone(2.0), tone(2.0), tone(2.0), tone(2.0)])
    words = [(2.0, 2.5), (2.5, 3.9), (6.0, 6.2)]
    stretches = uncovered(audio, words)
    assert stretches == [Stretch(0, 2 * SR), Stretch(round(3.9 * SR), 6 * SR),
                         Stretch(round(6.2 * SR), len(audio))]


def test_a_long_pause_without_words_is_not_speech():
    audio = np.concatenate([tone(1.0), quiet(3.0), tone(1.0)])
    assert uncovered(audio, [(0.0, 1.0), (4.0, 5.0)]) == []


def test_short_gaps_and_little_speech_are_left_alone():
    audio = np.concatenate([tone(1.0), tone(0.8), quiet(1.0), tone(0.3), quiet(0.5), tone(1.0)])
    words = [(0.0, 1.0), (1.8, 1.9), (3.1, 4.6)]  # 0.8 s of speech in 0.8 s; 0.3 s in 1.2 s
    assert uncovered(audio, words) == []
    assert uncovered(audio, words, CoverageOptions(min_gap_s=0.5)) == [Stretch(SR, round(1.8 * SR))]


def test_a_word_stretched_over_a_gap_covers_only_its_last_second():
    audio = tone(6.0)
    (stretch,) = uncovered(audio, [(0.0, 0.5), (0.5, 5.0), (5.0, 6.0)])
    assert stretch == Stretch(SR // 2, 4 * SR)


@pytest.mark.parametrize("words", [[], [(0.0, 0.05)]])
def test_no_words_on_speech_is_all_uncovered(words):
    audio = tone(3.0)
    (stretch,) = uncovered(audio, words)
    assert stretch.end == len(audio) and stretch.start <= SR // 10


def test_pieces_cut_a_long_clip_in_its_longest_pauses_and_lose_nothing():
    audio = np.concatenate([tone(3.0), quiet(0.3), tone(3.5), quiet(0.2), tone(2.0), quiet(0.4),
                            tone(4.0)])
    cut = pieces(audio, max_piece_s=8.0)
    assert cut[0].start == 0 and cut[-1].end == len(audio)
    assert all(a.end == b.start for a, b in zip(cut, cut[1:], strict=False))  # contiguous
    assert all(p.end - p.start <= 8 * SR for p in cut)
    bounds = [p.end / SR for p in cut[:-1]]
    assert bounds == [pytest.approx(3.15, abs=0.03), pytest.approx(9.2, abs=0.03)]  # mid-pause


def test_pieces_of_speech_without_a_pause_cut_at_the_quietest_frame():
    audio = np.concatenate([tone(5.0), tone(0.1, level=0.05), tone(5.0)])
    (first, second) = pieces(audio, max_piece_s=8.0)
    assert 5.0 * SR <= first.end < 5.1 * SR  # in the dip
    assert second.end == len(audio)
    assert pieces(tone(3.0), max_piece_s=8.0) == [Stretch(0, 3 * SR)]
