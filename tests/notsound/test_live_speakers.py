"""``notsound live --input`` on lectures of real (espeak-ng) voices with the real speaker model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.speakers import build_lecture, solo_lecture
from bench.speech import SAMPLE_RATE, write_wav
from library.export import speaker_of_line
from library.folder import read_finals
from tests.speech import have_espeak

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng and sox"),
    pytest.mark.skipif(__import__("importlib").util.find_spec("resemblyzer") is None,
                       reason="needs the speaker model (resemblyzer)"),
]


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "notsound.cli", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=300, env={**os.environ, "NOTSOUND_CONFIG": str(tmp_path / "none.toml")})


def _live(wav: Path, tmp_path: Path, session: str) -> subprocess.CompletedProcess:
    proc = _cli("live", "--input", str(wav), "--fast", "--engine", "fake", "--out", str(tmp_path),
                "--session", session, "--no-notes", "--plain", "--speakers", "on", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_two_questions_in_a_lecture_are_marked_audience_and_exported_with_voice_tags(tmp_path):
    pcm, spoken = build_lecture(1.2, every=5)
    questions = [s for s in spoken if s.question >= 0]
    assert len(questions) == 2 and len({s.voice for s in questions}) == 2
    proc = _live(write_wav(tmp_path / "lecture.wav", pcm), tmp_path, "q")

    finals = read_finals(tmp_path / "q")
    assert all(_finals_of(finals, s) for s in spoken), "every sentence has a final"
    asked = [_finals_of(finals, q) for q in questions]  # a sentence may come as several finals
    assert [{f.speaker for f in part} for part in asked] == [{"audience-1"}, {"audience-2"}]
    assert {f.speaker for f in finals if not any(f in part for part in asked)} == {"lecturer"}, \
        "nothing else is audience"
    marked = [line for line in proc.stdout.splitlines() if "] Audience " in line]
    assert [re.sub(r"^\[[\d:]+\] ", "", m).split(":")[0] for m in marked] == ["Audience 1", "Audience 2"]

    vtt = _cli("export", str(tmp_path / "q"), "--format", "vtt", tmp_path=tmp_path)
    assert vtt.returncode == 0, vtt.stderr
    voices = [speaker_of_line(line)[0] for line in vtt.stdout.splitlines() if line.startswith("<v ")]
    assert voices.count("Audience 1") >= 1 and voices.count("Audience 2") >= 1
    assert set(voices) == {"Lecturer", "Audience 1", "Audience 2"}


def test_a_lecture_of_one_voice_has_no_audience(tmp_path):
    pcm, spoken = solo_lecture("en-gb", 1.0)
    assert len(pcm) / SAMPLE_RATE > 55
    _live(write_wav(tmp_path / "solo.wav", pcm), tmp_path, "solo")
    finals = read_finals(tmp_path / "solo")
    assert all(_finals_of(finals, s) for s in spoken), "every sentence has a final"
    assert {f.speaker for f in finals} == {"lecturer"}


def _finals_of(finals, sentence) -> list:
    """The finals whose middle lies within ``sentence`` (the segmenter may cut a long one)."""
    return [f for f in finals if sentence.start - 0.3 <= (f.start + f.end) / 2 <= sentence.end + 0.3]


def music(seconds: float, seed: int = 3) -> np.ndarray:
    """Chords on a beat: three notes with harmonics, a new chord every 0.4 s, loud as speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.4 * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = np.exp(-3.0 * t)
    chords = []
    for _ in range(int(seconds / 0.4)):
        root = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        chord = sum(np.sin(2 * np.pi * root * ratio * h * t) / h
                    for ratio in (1.0, 1.26, 1.5) for h in (1, 2, 3))
        chords.append(chord * envelope)
    wave = np.concatenate(chords)
    return (wave / np.abs(wave).max() * 9000).astype(np.int16)


def _lecture_with(interruptions: dict[int, np.ndarray], sentences: int = 10):
    """The lecturer's sentences, with ``interruptions[k]`` (music, overlapped speech) after sentence k;
    returns the audio and the spans of the lecturer's sentences alone."""
    from bench.speakers import LECTURER_VOICE, MORE
    from bench.speech import LECTURE
    from tests.speech import silence, synth

    gap = silence(0.9)
    parts, spans, at = [silence(0.5)], [], 0.5
    for k, text in enumerate((LECTURE + MORE)[:sentences]):
        speech = synth(text, voice=LECTURER_VOICE)
        spans.append((at, at + len(speech) / SAMPLE_RATE))
        parts += [speech, gap]
        at += (len(speech) + len(gap)) / SAMPLE_RATE
        if k in interruptions:
            parts += [interruptions[k], gap]
            at += (len(interruptions[k]) + len(gap)) / SAMPLE_RATE
    return np.concatenate(parts), spans


def _lecturer_labels(pcm: np.ndarray, spans) -> list[str | None]:
    from bench.speakers import label_utterances
    from capture.voices import ResemblyzerEncoder

    labels, _ = label_utterances(pcm, ResemblyzerEncoder())
    return [label for start, end, label in labels
            if any(min(end, b) - max(start, a) > 0.5 * (end - start) for a, b in spans)]


def test_music_and_speech_over_speech_do_not_unseat_the_lecturer():
    from bench.speakers import QUESTIONS
    from tests.speech import synth

    lecturer = synth("And now let us look at the next part of the cycle together.", voice="en-us")
    student = synth(QUESTIONS[0], voice="en+f2")
    both = np.zeros(max(len(lecturer), len(student)), np.int32)
    both[:len(lecturer)] += lecturer
    both[:len(student)] += student
    overlap = np.clip(both, -32768, 32767).astype(np.int16)
    pcm, spans = _lecture_with({3: music(6.0), 6: overlap})
    labels = _lecturer_labels(pcm, spans)
    assert len(labels) >= len(spans) and set(labels) == {"lecturer"}, labels


def test_a_session_of_one_sentence_is_the_lecturer():
    pcm, spans = _lecture_with({}, sentences=1)
    assert _lecturer_labels(pcm, spans) == ["lecturer"]
