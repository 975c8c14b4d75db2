"""``notsound live --device pulse``: a real input device, the embedded whisper worker, SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from capture.journal import read_transcript
from tests import speech

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(path: Path, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_live_from_the_pulse_device_journals_the_paragraph_and_stops_cleanly_on_sigint(pulse_sink, tmp_path):
    wav = speech.write_wav(tmp_path / "paragraph.wav", speech.lecture(speech.PARAGRAPH, gap_s=1.2))
    proc = subprocess.Popen(
        [sys.executable, "-m", "live.cli", "live", "--device", pulse_sink.device, "--engine", "whisper",
         "--threads", "2", "--out", str(tmp_path), "--session", "mic", "--plain", "--no-notes"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "NOTSOUND_CONFIG": str(tmp_path / "none.toml")},  # PULSE_* come from the fixture
    )
    try:
        _wait_for(tmp_path / "mic" / "session.json", proc, 60)  # worker up, microphone opening
        time.sleep(3.0)  # the ALSA pulse plugin may hold back its first ~2 s of audio
        player = pulse_sink.play(wav)
        assert player.wait(timeout=120) == 0
        time.sleep(1.5)  # the last utterance's trailing silence reaches the VAD
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    captions = read_transcript(tmp_path / "mic" / "transcript.jsonl")
    text = " ".join(c.text for c in captions)
    error = speech.wer(" ".join(speech.PARAGRAPH), text)
    assert error <= 0.30, (error, text)
    assert len(speech.PARAGRAPH) - 1 <= len(captions) <= len(speech.PARAGRAPH) + 2, [c.text for c in captions]
    assert [line for line in out.splitlines() if line.startswith("[")], "finals are printed as they arrive"
    assert not list((tmp_path / "mic" / "pending").iterdir()), "every utterance got its final before exit"
