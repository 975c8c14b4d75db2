"""VAD segmentation: Silero on espeak-ng speech, plus exact state-machine checks.

True speech boundaries: espeak-ng clips carry their own silence (almost none
before the speech, about 0.4 s after it). The true onset and offset of each
clip are the first and last 10 ms frame whose RMS exceeds 300 (about -40 dBFS;
espeak speech peaks near 9000 RMS and its silence is digital zero), added to
the clip's known offset in the lecture.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from capture.segmenter import (
    Segmenter,
    UtteranceAudio,
    UtteranceEnded,
    UtterancePaused,
    UtteranceStarted,
)
from capture.utterance import Utterance
from capture.vad import SAMPLE_RATE, WINDOW, VadError, VadOptions
from tests.speech import PARAGRAPH, have_espeak, silence, synth

needs_espeak = pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng and sox")
SR = SAMPLE_RATE


def speech_span(clip: np.ndarray, level: float = 300.0) -> tuple[int, int]:
    """First and last sample (exclusive) of 10 ms frames louder than ``level`` RMS."""
    frames = clip[: len(clip) // 160 * 160].astype(np.float64).reshape(-1, 160)
    loud = np.flatnonzero(np.sqrt((frames**2).mean(axis=1)) > level)
    return int(loud[0] * 160), int((loud[-1] + 1) * 160)


def run(pcm: np.ndarray, block: int, segmenter: Segmenter | None = None) -> list:
    segmenter = segmenter or Segmenter()
    events = []
    for i in range(0, len(pcm), block):
        events += segmenter.feed(pcm[i : i + block])
    return events + segmenter.flush()


def utterances(events) -> list[Utterance]:
    return [e.utterance for e in events if isinstance(e, UtteranceEnded)]


def samples(seconds: float) -> int:
    return round(seconds * SR)


@pytest.fixture(scope="module")
def paragraph() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Four sentences after 0.5 s of silence, 1.0-1.5 s apart; truth in seconds."""
    parts, truth, at = [silence(0.5)], [], samples(0.5)
    for sentence, gap in zip(PARAGRAPH, [1.0, 1.2, 1.5, 1.0], strict=True):
        clip = synth(sentence)
        on, off = speech_span(clip)
        truth.append(((at + on) / SR, (at + off) / SR))
        parts += [clip, silence(gap)]
        at += len(clip) + samples(gap)
    return np.concatenate(parts), truth


@pytest.fixture(scope="module")
def monologue() -> tuple[np.ndarray, int, int]:
    """Over 60 s of speech with no pause longer than 0.25 s; speech span in samples."""
    clips = []
    for sentence in PARAGRAPH:
        clip = synth(sentence)
        on, off = speech_span(clip)
        clips.append(clip[on:off])
    speech = []
    while sum(map(len, speech)) < 61 * SR:
        speech.append(clips[len(speech) % len(clips)])
    pcm = np.concatenate([silence(0.5), *speech, silence(1.0)])
    return pcm, samples(0.5), samples(0.5) + sum(map(len, speech))


@needs_espeak
def test_four_sentences_give_four_utterances_at_the_speech_boundaries(paragraph):
    pcm, truth = paragraph
    pad = VadOptions().pad_s
    utts = utterances(run(pcm, 1600))
    assert [u.utt for u in utts] == [0, 1, 2, 3]
    for u, (on, off) in zip(utts, truth, strict=True):
        assert u.start <= on and u.end >= off, (u, on, off)  # the speech is inside
        assert abs(u.start + pad - on) <= 0.3, (u.start, on)
        assert abs(u.end - pad - off) <= 0.3, (u.end, off)
        np.testing.assert_array_equal(u.pcm(), pcm[samples(u.start) : samples(u.end)])


@needs_espeak
def test_sixty_second_monologue_is_split_at_max_length_without_losing_audio(monologue):
    pcm, on, off = monologue
    options = VadOptions(min_silence_floor_s=0.5)  # no pause in it is this long
    events = run(pcm, 1600, Segmenter(options))
    utts = utterances(events)
    assert len(utts) >= 3
    assert all(u.end - u.start <= options.max_utterance_s + 1e-9 for u in utts)
    assert [e.split for e in events if isinstance(e, UtteranceEnded)] == [True] * (
        len(utts) - 1
    ) + [False]
    for before, after in zip(utts[:-1], utts[1:], strict=True):
        assert after.start == before.end  # contiguous: nothing lost, nothing twice
    first, last = samples(utts[0].start), samples(utts[-1].end)
    assert first <= on and last >= off
    np.testing.assert_array_equal(np.concatenate([u.pcm() for u in utts]), pcm[first:last])
    speech_rms = np.sqrt(np.mean(pcm[on:off].astype(np.float64) ** 2))
    for u in utts[:-1]:  # cut between words, not through them
        cut = samples(u.end)
        around = pcm[cut - 160 : cut + 160].astype(np.float64)
        assert np.sqrt(np.mean(around**2)) < 0.1 * speech_rms


@needs_espeak
def test_streamed_audio_arrives_during_speech_and_concatenates_to_the_utterance(paragraph):
    pcm, truth = paragraph
    segmenter, fed, log = Segmenter(first_utt=7), 0, []
    for i in range(0, len(pcm), 1600):
        block = pcm[i : i + 1600]
        fed += len(block)
        log += [(fed / SR, e) for e in segmenter.feed(block)]
    log += [(fed / SR, e) for e in segmenter.flush()]
    for n, (_, off) in zip(range(7, 11), truth, strict=True):
        mine = [(t, e) for t, e in log if e.utt == n]
        assert isinstance(mine[0][1], UtteranceStarted) and isinstance(mine[-1][1], UtteranceEnded)
        audio = [(t, e) for t, e in mine[1:-1] if not isinstance(e, UtterancePaused)]
        assert all(isinstance(e, UtteranceAudio) for _, e in audio)
        assert sum(t < off for t, _ in audio) >= 10  # partials possible while still spoken
        utterance = mine[-1][1].utterance
        assert [id(e.pcm) for _, e in audio] == [id(c) for c in utterance.chunks]  # the same arrays
        np.testing.assert_array_equal(utterance.pcm(), pcm[samples(utterance.start) : samples(utterance.end)])


@needs_espeak
def test_pause_event_names_exactly_the_utterance_audio_before_the_end_is_decided(paragraph):
    pcm, truth = paragraph
    options = VadOptions(min_silence_floor_s=0.5)  # every pause must last 0.5 s: pad_s comes first
    segmenter, fed, log = Segmenter(options), 0, []
    for i in range(0, len(pcm), 1600):
        fed += len(pcm[i : i + 1600])
        log += [(fed / SR, e) for e in segmenter.feed(pcm[i : i + 1600])]
    ended = [(t, e) for t, e in log if isinstance(e, UtteranceEnded)]
    assert len(ended) == len(truth)
    for t_end, end in ended:
        mine = [(t, e) for t, e in log if e.utt == end.utt]
        pauses = [(t, e) for t, e in mine if isinstance(e, UtterancePaused)]
        assert pauses, f"no pause event before utterance {end.utt} ended"
        t_pause, last = pauses[-1]
        # The last pause holds the whole utterance, nothing was streamed after it ...
        assert last.samples == end.utterance.samples
        assert last.end == pytest.approx(end.end)
        assert all(not isinstance(e, UtteranceAudio) for t, e in mine if t > t_pause)
        # ... and it came a good part of the pause before the end was decided.
        assert t_end - t_pause >= options.min_silence_s - options.pad_s - 0.1 - WINDOW / SR
        # Earlier pauses were followed by more audio (the speech went on).
        for _, e in pauses[:-1]:
            assert e.samples < last.samples


@needs_espeak
def test_end_event_comes_within_pad_plus_min_silence_after_the_speech(paragraph):
    pcm, truth = paragraph
    options = VadOptions()
    segmenter, fed, ended_at = Segmenter(options), 0, []
    for i in range(0, len(pcm), 1600):
        fed += len(pcm[i : i + 1600])
        ended_at += [
            fed / SR for e in segmenter.feed(pcm[i : i + 1600]) if isinstance(e, UtteranceEnded)
        ]
    slack = 0.1 + WINDOW / SR + 0.1  # block size, one VAD window, Silero's own lag
    for at, (_, off) in zip(ended_at, truth, strict=True):
        assert at - off <= options.pad_s + options.min_silence_s + slack, (at, off)


@needs_espeak
@pytest.mark.parametrize("other_block", [16000, 333])
def test_block_size_does_not_change_the_utterances(paragraph, other_block):
    pcm, _ = paragraph
    reference = utterances(run(pcm, 1600))
    other = utterances(run(pcm, other_block))
    assert [(u.utt, u.start, u.end) for u in other] == [(u.utt, u.start, u.end) for u in reference]
    for a, b in zip(reference, other, strict=True):
        np.testing.assert_array_equal(a.pcm(), b.pcm())


@needs_espeak
def test_silero_onnx_and_torchscript_agree(paragraph):
    pcm, _ = paragraph
    onnx = utterances(run(pcm, 1600, Segmenter(VadOptions(onnx=True))))
    jit = utterances(run(pcm, 1600, Segmenter(VadOptions(onnx=False))))
    assert [(u.start, u.end) for u in onnx] == [(u.start, u.end) for u in jit]


# -- exact checks with a level detector as the speech model ------------------------


class LevelVad:
    """Speech probability 1 for a window louder than 1000, else 0 (a test double)."""

    def __call__(self, window: np.ndarray) -> float:
        return 1.0 if np.abs(window.astype(np.int32)).max() > 1000 else 0.0


def tone(seconds: float) -> np.ndarray:
    t = np.arange(samples(seconds)) / SR
    return (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def level_segmenter(**options) -> Segmenter:
    return Segmenter(VadOptions(**options), vad=LevelVad())


def test_a_click_shorter_than_min_speech_is_dropped():
    pcm = np.concatenate([silence(1.0), tone(0.1), silence(1.0), tone(0.5), silence(1.0)])
    utts = utterances(run(pcm, 1600, level_segmenter()))
    assert len(utts) == 1
    assert utts[0].start == pytest.approx(2.1 - 0.2, abs=WINDOW / SR)


def test_numbering_starts_at_first_utt_and_times_include_the_offset():
    pcm = np.concatenate([silence(1.0), tone(1.0), silence(1.0), tone(1.0), silence(1.0)])
    segmenter = Segmenter(VadOptions(), vad=LevelVad(), first_utt=41, time_offset=600.0)
    utts = utterances(run(pcm, 1600, segmenter))
    assert [u.utt for u in utts] == [41, 42]
    assert utts[0].start == pytest.approx(600.8, abs=WINDOW / SR)
    assert utts[1].end == pytest.approx(604.2, abs=WINDOW / SR)


def test_padding_longer_than_the_pause_ends_on_time_and_never_overlaps():
    gap = 0.5
    pcm = np.concatenate([silence(1.0), tone(1.0), silence(gap), tone(1.0), silence(2.0)])
    segmenter, fed, ended_at = level_segmenter(pad_s=0.4, min_silence_s=0.3), 0, []
    events = []
    for i in range(0, len(pcm), 1600):
        fed += len(pcm[i : i + 1600])
        new = segmenter.feed(pcm[i : i + 1600])
        ended_at += [fed / SR for e in new if isinstance(e, UtteranceEnded)]
        events += new
    first, second = utterances(events)
    assert first.end == pytest.approx(2.0 + 0.4, abs=WINDOW / SR)
    assert second.start == first.end  # the pre-padding stops at the previous end
    assert ended_at[0] - 2.0 <= 0.4 + 0.3 + 0.1 + WINDOW / SR


def test_flush_closes_an_utterance_still_being_spoken():
    pcm = np.concatenate([silence(0.5), tone(2.0)])
    segmenter = level_segmenter()
    events = [e for i in range(0, len(pcm), 1600) for e in segmenter.feed(pcm[i : i + 1600])]
    assert not utterances(events)
    (utterance,) = utterances(segmenter.flush())
    assert utterance.end == len(pcm) / SR
    assert segmenter.flush() == []


@settings(max_examples=40, deadline=None)
@given(
    runs=st.lists(st.tuples(st.floats(0.0, 3.0), st.floats(0.02, 9.0)), min_size=1, max_size=5),
    block=st.integers(1, 20_000),
    max_s=st.sampled_from([2.0, 4.0, 20.0]),
    pad_s=st.sampled_from([0.0, 0.2, 0.7]),
    min_silence_s=st.sampled_from([0.1, 0.5]),
    floor_s=st.sampled_from([0.05, 0.15, 0.5]),
)
# Speech that starts inside the previous utterance's padding (pause >= min_silence_s
# but < pad_s): the previous utterance used to keep all its padding, so the new run
# became an utterance of the silence after it (CI), or an empty one at flush().
@example(
    runs=[(2.615390367073905, 6.730647448756657), (0.0, 1.0), (0.1875, 0.5)],
    block=1,
    max_s=2.0,
    pad_s=0.7,
    min_silence_s=0.1,
    floor_s=0.5,
)
@example(
    runs=[(0.5, 1.0), (0.2, 0.45), (2.0, 0.02)], block=1, max_s=20.0, pad_s=0.7, min_silence_s=0.1,
    floor_s=0.5,
)
def test_utterances_are_exact_disjoint_and_bounded(runs, block, max_s, pad_s, min_silence_s, floor_s):
    pcm = np.concatenate([np.concatenate([silence(quiet), tone(loud)]) for quiet, loud in runs])
    options = VadOptions(
        max_utterance_s=max_s, split_search_s=max_s / 4, pad_s=pad_s, min_silence_s=min_silence_s,
        min_silence_floor_s=floor_s, silence_ramp_s=max_s / 2,
    )
    events = run(pcm, block, Segmenter(options, vad=LevelVad()))
    utts = utterances(events)
    end = -1.0
    for u in utts:
        assert u.start >= end and 0 < u.end - u.start <= max_s + 1e-9
        np.testing.assert_array_equal(u.pcm(), pcm[samples(u.start) : samples(u.end)])
        streamed = [e.pcm for e in events if isinstance(e, UtteranceAudio) and e.utt == u.utt]
        np.testing.assert_array_equal(np.concatenate(streamed or [u.pcm()[:0]]), u.pcm())
        assert np.abs(u.pcm().astype(np.int32)).max() > 1000  # no utterance without speech
        end = u.end
    assert [u.utt for u in utts] == list(range(len(utts)))
    covered = np.zeros(len(pcm), dtype=bool)
    for u in utts:
        covered[samples(u.start) : samples(u.end)] = True
    at = 0
    for quiet, loud in runs:  # every loud sample of a tone longer than a click is kept
        at += samples(quiet)
        part = slice(at, at + samples(loud))
        if loud >= 0.35:
            assert covered[part][np.abs(pcm[part].astype(np.int32)) > 1000].all()
        at += samples(loud)


@pytest.mark.parametrize(("speech_s", "gap_s", "ends"), [
    (0.8, 0.3, False),  # a short utterance goes on over a breath ...
    (0.8, 0.6, True),
    (2.0, 0.2, False),
    (2.0, 0.45, True),
    (5.0, 0.25, True),  # ... a long one ends at a short pause
    (5.0, 0.05, False),
])
def test_the_pause_that_ends_an_utterance_shrinks_as_it_grows(speech_s, gap_s, ends):
    options = VadOptions()
    needed = options.silence_needed_s(speech_s + options.pad_s)
    assert abs(needed - gap_s) > 2 * WINDOW / SR  # the cases are clear of the boundary
    assert ends == (gap_s > needed)
    pcm = np.concatenate([silence(1.0), tone(speech_s), silence(gap_s), tone(1.0), silence(1.0)])
    utts = utterances(run(pcm, 1600, Segmenter(options, vad=LevelVad())))
    assert len(utts) == (2 if ends else 1)
    assert utts[0].start <= 1.0 and utts[-1].end >= 1.0 + speech_s + gap_s + 1.0  # all speech kept
    if ends:
        assert utts[0].end >= 1.0 + speech_s and utts[1].start <= 1.0 + speech_s + gap_s
        assert utts[1].start >= utts[0].end


def test_silence_needed_falls_from_min_silence_to_the_floor():
    options = VadOptions(min_silence_s=0.5, min_silence_floor_s=0.15, silence_ramp_s=4.0)
    needed = [options.silence_needed_s(t) for t in (0.0, 1.0, 2.0, 4.0, 10.0)]
    assert needed == pytest.approx([0.5, 0.4125, 0.325, 0.15, 0.15])
    assert VadOptions(min_silence_s=0.1, min_silence_floor_s=0.15).silence_needed_s(9.0) == 0.1


@pytest.mark.parametrize("speech_s", [1.0, 2.0, 6.0])
def test_pause_event_comes_only_when_the_padding_is_scored_before_the_pause_ends_it(speech_s):
    options = VadOptions()
    needed = options.silence_needed_s(speech_s + options.pad_s)
    pcm = np.concatenate([silence(1.0), tone(speech_s), silence(2.0)])
    segmenter, fed, log = Segmenter(options, vad=LevelVad()), 0, []
    for i in range(0, len(pcm), 160):
        fed += len(pcm[i : i + 160])
        log += [(fed / SR, e) for e in segmenter.feed(pcm[i : i + 160])]
    speech_end = 1.0 + speech_s
    (t_end,) = [t for t, e in log if isinstance(e, UtteranceEnded)]
    pauses = [t for t, e in log if isinstance(e, UtterancePaused)]
    slack = 2 * WINDOW / SR
    assert t_end - speech_end == pytest.approx(max(needed, options.pad_s), abs=slack)
    if needed > options.pad_s + slack:
        (t_pause,) = pauses
        assert t_pause - speech_end == pytest.approx(options.pad_s, abs=slack)
    else:
        assert pauses == []  # the end itself comes as early as a pause would


def test_invalid_options_say_what_is_wrong():
    with pytest.raises(VadError, match="threshold must be between 0 and 1"):
        VadOptions(threshold=1.5)
    with pytest.raises(VadError, match="split_search_s must be at least 0.1 s and at most half"):
        VadOptions(max_utterance_s=4.0, split_search_s=3.0)


def test_feed_takes_int16_only():
    with pytest.raises(TypeError, match="int16"):
        level_segmenter().feed(np.zeros(1600, dtype=np.float32))
