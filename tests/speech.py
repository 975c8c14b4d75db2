"""Real speech for tests: espeak-ng renders text, sox resamples it to 16 kHz mono int16."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from bench.speech import read_wav, write_wav  # noqa: F401 - write_wav is used by the tests through this module

SAMPLE_RATE = 16_000
CACHE = Path(os.environ.get("NOTSOUND_TEST_CACHE", Path(tempfile.gettempdir()) / "notsound-test-speech"))

PARAGRAPH = [
    "Good morning everyone, today we talk about the water cycle.",
    "Water evaporates from the oceans and rises into the sky.",
    "In the cold air it condenses into small drops and forms clouds.",
    "When the drops become heavy they fall back to the ground as rain.",
]


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


def synth_wav(text: str, *, voice: str = "en-us", speed: int = 150) -> Path:
    """Path of a 16 kHz mono int16 WAV file speaking ``text`` (cached by content)."""
    key = hashlib.sha256(f"{voice}|{speed}|{text}".encode()).hexdigest()[:16]
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"{key}.wav"
    if out.exists():
        return out
    raw = CACHE / f"{key}.raw.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    tmp = CACHE / f"{key}.{os.getpid()}.tmp.wav"
    subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(tmp)], check=True)
    os.replace(tmp, out)
    raw.unlink(missing_ok=True)
    return out


def synth(text: str, **kw) -> np.ndarray:
    """``text`` spoken by espeak-ng as int16 samples at 16 kHz."""
    return read_wav(synth_wav(text, **kw))


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * SAMPLE_RATE)), dtype=np.int16)


def lecture(sentences: list[str] = PARAGRAPH, gap_s: float = 1.0, lead_s: float = 0.5) -> np.ndarray:
    """The sentences spoken one after the other, ``gap_s`` of silence between them."""
    parts = [silence(lead_s)]
    for sentence in sentences:
        parts += [synth(sentence), silence(gap_s)]
    return np.concatenate(parts)


def normalize(text: str) -> str:
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " ".join(text.split())


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after lower-casing and dropping punctuation."""
    import jiwer

    return jiwer.wer(normalize(reference), normalize(hypothesis) or "<empty>")
