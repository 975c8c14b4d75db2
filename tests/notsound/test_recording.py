"""The recording of a real ``notsound live`` process: killed with SIGKILL mid-lecture, then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from library.folder import read_finals, recording_parts
from library.opus import read_part
from tests import speech

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not speech.have_espeak(), reason="espeak-ng and sox are required")]

ROOT = Path(__file__).resolve().parents[2]
#: poll interval while waiting for the child's events
POLL_S = 0.02


def _live(wav: Path, out: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "notsound.cli", "live", "--input", str(wav), "--engine", "fake",
            "--out", str(out), "--session", "lecture", "--no-notes", "--plain", *flags]


def _env(out: Path) -> dict[str, str]:
    return {**os.environ, "NOTSOUND_CONFIG": str(out / "none.toml")}


def _last_event_t(events: Path) -> float | None:
    try:
        lines = events.read_text().splitlines()
    except FileNotFoundError:
        return None
    times = [json.loads(line)["t"] for line in lines if line.endswith("}")]
    return max(times) if times else None


def test_a_killed_live_run_keeps_a_playable_recording_and_a_restart_appends_after_it(tmp_path):
    pcm = speech.lecture(speech.PARAGRAPH, gap_s=1.2)
    wav = speech.write_wav(tmp_path / "lecture.wav", pcm)
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen(_live(wav, tmp_path, "--events", str(events)), cwd=ROOT, env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while (t := _last_event_t(events)) is None or t < 9.0:  # mid-lecture, real time
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(POLL_S)
        seen = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        heard_s = t + (time.monotonic() - seen)  # audio the process had read, at least
    finally:
        proc.kill()
        proc.wait()

    session = tmp_path / "lecture"
    [part] = recording_parts(session)
    audio = read_part(part.path)  # as it is: no repair step
    lost = heard_s - len(audio) / speech.SAMPLE_RATE
    print(f"audio lost at SIGKILL: {lost:.2f} s")
    assert lost <= 2.0, f"{lost:.2f} s lost"
    head = pcm[:len(audio)].astype(np.float64)
    error = audio.astype(np.float64) - head
    assert 10 * np.log10((head ** 2).sum() / (error ** 2).sum()) > 6, "the recording is the lecture"

    done = subprocess.run(_live(wav, tmp_path, "--fast"), cwd=ROOT, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    first, second = recording_parts(session)
    assert first == part
    # after the recorded audio (and after an utterance the kill left spooled, resent first)
    assert second.offset >= len(audio) / speech.SAMPLE_RATE - 0.001
    assert len(read_part(second.path)) == len(pcm)
    finals = read_finals(session)
    resumed = [f for f in finals if f.start >= second.offset]
    assert len(resumed) == len(speech.PARAGRAPH), "the restart captions the whole file after the first part"


def test_no_record_keeps_captions_and_no_audio(tmp_path):
    wav = speech.write_wav(tmp_path / "lecture.wav", speech.lecture(speech.PARAGRAPH[:2]))
    done = subprocess.run(_live(wav, tmp_path, "--fast", "--no-record"), cwd=ROOT, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(read_finals(tmp_path / "lecture")) == 2
    assert not (tmp_path / "lecture" / "recording").exists()
