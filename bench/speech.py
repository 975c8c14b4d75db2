"""Speech for the benchmarks: espeak-ng renders text, sox makes it 16 kHz mono int16.

Rendered sentences are cached by content under ``bench/out/speech/`` so a
second run does not call espeak-ng again. :func:`lecture` lays sentences out
with pauses between them, like a lecturer who stops between sentences;
:func:`fluent` runs them together like one who does not (0.2-0.35 s between
the speech of one sentence and the next, espeak-ng's own silence trimmed,
optionally a new voice per sentence), and says where each sentence's speech
is; :func:`utterance` packs whole sentences into a clip of an exact length
(the engine-only RTF bench).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.audio import SAMPLE_RATE

__all__ = [
    "SAMPLE_RATE", "SENTENCES", "LECTURE", "VOICES", "Spoken", "missing_tools", "synth", "utterance",
    "lecture", "fluent", "pick_sentences", "write_wav", "read_wav",
]

CACHE = Path(__file__).resolve().parent / "out" / "speech"

#: the short paragraph of the engine-only RTF bench
SENTENCES = [
    "Good morning everyone, today we talk about the water cycle.",
    "Water evaporates from the oceans and rises into the sky.",
    "In the cold air it condenses into small drops and forms clouds.",
    "When the drops become heavy they fall back to the ground as rain.",
]

#: the lecture of the pipeline bench: sentences of about 2 to 9.5 s at 150 words a minute
LECTURE = [
    "Today we talk about the water cycle, and why it matters for the weather we see every day.",
    "Water evaporates from the oceans.",
    "The sun heats the surface of the sea, and the warm water turns into vapour that rises "
    "into the sky, where the air is much colder than near the ground.",
    "In the cold air it condenses into small drops.",
    "Millions of these tiny drops together form the clouds that we can see.",
    "When the drops become heavy they fall back to the ground as rain, or as snow when it is "
    "cold enough.",
    "Some of the rain soaks into the soil.",
    "Plants take up that water through their roots and release it again from their leaves, "
    "which scientists call transpiration.",
    "The rest flows over the land into streams and rivers.",
    "Rivers carry the water back to the sea, and the cycle begins again.",
    "Let us look at a diagram.",
]
#: pauses between sentences, cycled (all longer than the VAD's 0.5 s end-of-utterance silence)
GAPS_S = (1.0, 1.3, 0.8, 1.2, 0.9, 1.4)
GAP_S = 0.3  # between the sentences packed by utterance()
#: pauses between the sentences of a fluent lecture: drawn uniformly per gap
FLUENT_GAPS_S = (0.2, 0.35)
#: espeak-ng voices of the fluent lectures with a new voice per sentence
VOICES = ("en-us", "en-gb+f3", "en-us+m3", "en-029")
#: a sample louder than this is speech (espeak-ng's silence is digital zero)
SPEECH_LEVEL = 200


@dataclass(frozen=True, eq=False)
class Spoken:
    """A lecture and where each sentence is spoken: ``spans[i]`` is the first and last
    second of ``texts[i]``'s speech."""

    pcm: np.ndarray
    texts: list[str]
    spans: list[tuple[float, float]]

    @property
    def text(self) -> str:
        return " ".join(self.texts)


def missing_tools() -> list[str]:
    """The programs speech synthesis needs that are not installed."""
    return [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]


def synth(text: str, *, voice: str = "en-us", speed: int = 150, cache: Path = CACHE) -> np.ndarray:
    """``text`` spoken by espeak-ng as int16 samples at 16 kHz mono (cached by content)."""
    key = hashlib.sha256(f"{voice}|{speed}|{text}".encode()).hexdigest()[:16]
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"{key}.wav"
    if not out.exists():
        raw = cache / f"{key}.{os.getpid()}.raw.wav"
        tmp = cache / f"{key}.{os.getpid()}.tmp.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(tmp)],
                       check=True)
        os.replace(tmp, out)
        raw.unlink(missing_ok=True)
    return read_wav(out)


def utterance(seconds: float, sentences: list[np.ndarray]) -> np.ndarray:
    """Whole sentences (at least one) that fit in ``seconds``, padded with silence to it."""
    target = int(round(seconds * SAMPLE_RATE))
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), dtype=np.int16)
    parts: list[np.ndarray] = []
    used = 0
    for sentence in sentences * 10:
        extra = len(sentence) + (len(gap) if parts else 0)
        if parts and used + extra > target:
            break
        parts += [gap, sentence] if parts else [sentence]
        used += extra
    audio = np.concatenate(parts)[:target]
    return np.pad(audio, (0, target - len(audio)))


def lecture(texts: list[str], *, lead_s: float = 0.5, gaps_s: tuple[float, ...] = GAPS_S,
            tail_s: float = 1.0) -> np.ndarray:
    """The sentences one after the other with cycled pauses, ``lead_s`` of silence first."""
    parts = [_silence(lead_s)]
    for i, text in enumerate(texts):
        parts.append(synth(text))
        parts.append(_silence(gaps_s[i % len(gaps_s)] if i + 1 < len(texts) else tail_s))
    return np.concatenate(parts)


def fluent(texts: list[str], *, seed: int = 17, voices: tuple[str, ...] = ("en-us",),
           gaps_s: tuple[float, float] = FLUENT_GAPS_S, lead_s: float = 0.5,
           tail_s: float = 1.0) -> Spoken:
    """The sentences run together: each one's speech (its silence trimmed) ``gaps_s``
    apart (uniform, fixed ``seed``), sentence ``i`` in ``voices[i % len(voices)]``."""
    rng = np.random.default_rng(seed)
    parts, spans, at = [_silence(lead_s)], [], len(_silence(lead_s))
    for i, text in enumerate(texts):
        speech = _trim(synth(text, voice=voices[i % len(voices)]))
        gap = _silence(rng.uniform(*gaps_s) if i + 1 < len(texts) else tail_s)
        spans.append((at / SAMPLE_RATE, (at + len(speech)) / SAMPLE_RATE))
        parts += [speech, gap]
        at += len(speech) + len(gap)
    return Spoken(np.concatenate(parts), list(texts), spans)


def _trim(pcm: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > SPEECH_LEVEL)
    return pcm[loud[0]:loud[-1] + 1] if len(loud) else pcm


def pick_sentences(texts: list[str], speech_s: float, rotate: int = 0) -> list[str]:
    """Sentences from ``texts`` (starting at ``rotate``) until ``speech_s`` seconds of speech."""
    picked: list[str] = []
    total = 0.0
    for i in range(len(texts)):
        text = texts[(i + rotate) % len(texts)]
        picked.append(text)
        total += len(synth(text)) / SAMPLE_RATE
        if total >= speech_s:
            break
    return picked


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * SAMPLE_RATE)), dtype=np.int16)


def write_wav(path: Path, pcm: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(SAMPLE_RATE)
        wf.writeframes(np.asarray(pcm, dtype=np.int16).tobytes())
    return path


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wf:
        if (wf.getframerate(), wf.getnchannels(), wf.getsampwidth()) != (SAMPLE_RATE, 1, 2):
            raise ValueError(f"{path}: expected 16 kHz mono int16")
        return np.frombuffer(wf.readframes(wf.getnframes()), dtype=np.int16).copy()
