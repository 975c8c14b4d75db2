"""A deterministic engine with no weights, for the tests and benchmarks of everything above the engine.

It is not part of the product: :func:`offer_fake_engine` registers it as
``fake`` through ``NOTSOUND_ENGINES`` for this process and the workers it
starts (the test session does so in ``tests/conftest.py``, the benchmarks in
their ``main``).

The text of a clip is derived from its samples, so the same audio always gives
the same caption and different audio (almost) always a different one::

    "fake 1a2b3c4d 2.50s"   # crc32 of the int16 samples, then the duration

A long window (:meth:`FakeEngine.transcribe_long`) is one segment of that text
over the whole clip, its three words timed a third of the clip each.

Options go in the model string as ``key=value`` pairs separated by commas:

- ``rtf=0.1``: sleep 0.1 s per second of audio in a batch (a slow engine);
- ``per_call=0.05``: sleep 0.05 s per call whatever the batch (fixed overhead,
  which is what makes batching pay off on real engines);
- ``fail=1``: raise :class:`~models.base.EngineError` on every call.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import MutableMapping, Sequence

import numpy as np

from models import (
    ENGINES_ENV,
    NO_HINTS,
    SAMPLE_RATE,
    DecodeHints,
    Engine,
    EngineError,
    EngineOptions,
    Segment,
    Transcript,
)

__all__ = ["ENTRY", "FakeEngine", "fake_text", "offer_fake_engine"]

#: this engine's ``NOTSOUND_ENGINES`` entry (the repository root must be importable: it is
#: sys.path[0] of ``python -m notsound.cli`` run there)
ENTRY = "fake=bench.fake_engine:FakeEngine"


def offer_fake_engine(environ: MutableMapping[str, str] = os.environ) -> None:
    """Register ``fake`` in ``environ``'s ``NOTSOUND_ENGINES``, keeping the entries already there."""
    entries = [e.strip() for e in environ.get(ENGINES_ENV, "").split(",") if e.strip()]
    if ENTRY not in entries:
        environ[ENGINES_ENV] = ",".join([*entries, ENTRY])


def _int16(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.dtype == np.int16:
        return audio
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def fake_text(audio: np.ndarray) -> str:
    """The caption the fake engine gives ``audio``."""
    pcm = _int16(audio)
    return f"fake {zlib.crc32(pcm.tobytes()):08x} {len(pcm) / SAMPLE_RATE:.2f}s"


class FakeEngine(Engine):
    name = "fake"
    takes_hints = True  # records them, for the tests of what reaches an engine

    def __init__(self, options: EngineOptions | None = None):
        super().__init__(options)
        self.rtf = 0.0
        self.per_call = 0.0
        self.fail = False
        #: batch size of every call so far (tests read it to see batching)
        self.calls: list[int] = []
        #: kind ("final"/"partial"/"polish") and hints of every clip so far, in call order
        self.kinds: list[str] = []
        self.hints: list[DecodeHints] = []
        for item in filter(None, (self.options.model or "").split(",")):
            key, sep, value = item.partition("=")
            try:
                if key == "rtf" and sep:
                    self.rtf = float(value)
                elif key == "per_call" and sep:
                    self.per_call = float(value)
                elif key == "fail" and sep:
                    self.fail = value not in ("0", "false", "")
                else:
                    raise ValueError(item)
            except ValueError:
                raise EngineError(
                    f"fake engine option {item!r} not understood; use rtf=S, per_call=S or fail=1"
                ) from None

    @classmethod
    def default_model(cls) -> str:
        return "(no weights)"

    def warmup(self) -> None:
        """Nothing to warm up."""

    def transcribe(self, batch: Sequence[np.ndarray], language: str = "auto", *,
                   hints: Sequence[DecodeHints] | None = None, kind: str = "final") -> list[Transcript]:
        self.calls.append(len(batch))
        self.kinds.extend([kind] * len(batch))
        self.hints.extend(hints if hints is not None else [NO_HINTS] * len(batch))
        if self.fail:
            raise EngineError("fake engine told to fail")
        seconds = sum(len(a) for a in batch) / SAMPLE_RATE
        delay = self.per_call + self.rtf * seconds
        if delay > 0:
            time.sleep(delay)
        lang = "en" if language in ("", "auto") else language
        return [Transcript(text=fake_text(a), lang=lang, emotion="NEUTRAL") for a in batch]

    def transcribe_long(self, audio: np.ndarray, language: str = "auto",
                        hints: DecodeHints = NO_HINTS) -> list[Segment]:
        self.calls.append(1)
        self.kinds.append("polish")
        self.hints.append(hints)
        if self.fail:
            raise EngineError("fake engine told to fail")
        seconds = len(audio) / SAMPLE_RATE
        delay = self.per_call + self.rtf * seconds
        if delay > 0:
            time.sleep(delay)
        text = fake_text(audio)
        third = seconds / 3
        words = tuple((word, i * third, (i + 1) * third) for i, word in enumerate(text.split()))
        return [Segment(0.0, seconds, text, "en" if language in ("", "auto") else language, words)]
