"""``notsound live --device pulse``: a real input device, the embedded whisper worker, SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from library.folder import read_finals
from tests import speech

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(path: Path, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def _until(condition: Callable[[], bool], proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait until ``condition`` holds (True) or ``timeout_s`` passes (False); the process lives."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, proc.communicate()[1]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _prime(pulse_sink, session: Path, proc: subprocess.Popen, wav: Path, timeout_s: float = 120) -> set[int]:
    """Play ``wav`` until a final shows that audio flows from the device (the ALSA pulse plugin
    may hold back and drop its first seconds), then until nothing is owed; the primer's utts."""
    transcript, pending = session / "transcript.jsonl", session / "pending"
    deadline = time.monotonic() + timeout_s
    while not read_finals(transcript):
        assert time.monotonic() < deadline, "no audio came from the device"
        assert pulse_sink.play(wav).wait(timeout=60) == 0
        _until(lambda: bool(read_finals(transcript)), proc, 10)
    assert _until(lambda: not any(pending.iterdir()), proc, 60), "the primer's final never came"
    return {c.utt for c in read_finals(transcript)}


def _speech_span_s(pcm: np.ndarray) -> float:
    """Seconds from the first to the last loud sample."""
    loud = np.flatnonzero(np.abs(pcm) > 500)
    return (loud[-1] - loud[0]) / speech.SAMPLE_RATE


def test_live_from_the_pulse_device_journals_the_paragraph_and_stops_cleanly_on_sigint(pulse_sink, tmp_path):
    paragraph = speech.lecture(speech.PARAGRAPH, gap_s=1.2)
    wav = speech.write_wav(tmp_path / "paragraph.wav", paragraph)
    primer = speech.write_wav(tmp_path / "primer.wav", speech.lecture(["Testing, one, two, three."]))
    session = tmp_path / "mic"
    proc = subprocess.Popen(
        [sys.executable, "-m", "notsound.cli", "live", "--device", pulse_sink.device, "--engine", "whisper",
         "--threads", "2", "--out", str(tmp_path), "--session", "mic", "--plain", "--no-notes"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "NOTSOUND_CONFIG": str(tmp_path / "none.toml")},  # PULSE_* come from the fixture
    )
    try:
        _wait_for(session / "session.json", proc, 60)  # worker up, microphone opening
        primed = _prime(pulse_sink, session, proc, primer)
        player = pulse_sink.play(wav)
        assert player.wait(timeout=120) == 0

        span_s = _speech_span_s(paragraph)

        def paragraph_heard() -> bool:  # a final reaches the paragraph's last words (audio time)
            heard = [c for c in read_finals(session / "transcript.jsonl") if c.utt not in primed]
            return bool(heard) and heard[-1].end >= heard[0].start + span_s - 0.3

        _until(paragraph_heard, proc, 120)  # if never, the assertions below say what is missing
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    captions = [c for c in read_finals(session / "transcript.jsonl") if c.utt not in primed]
    text = " ".join(c.text for c in captions)
    error = speech.wer(" ".join(speech.PARAGRAPH), text)
    assert error <= 0.30, (error, text)
    assert len(speech.PARAGRAPH) - 1 <= len(captions) <= len(speech.PARAGRAPH) + 2, [c.text for c in captions]
    assert [line for line in out.splitlines() if line.startswith("[")], "finals are printed as they arrive"
    assert not list((session / "pending").iterdir()), "every utterance got its final before exit"
