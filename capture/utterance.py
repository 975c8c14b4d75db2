"""An utterance's audio on the capture side: one object, one copy of the samples.

The segmenter makes an :class:`Utterance` when speech starts and appends each
chunk it streams; the spool writes those same chunks to ``pending/``, and the
client keeps the object itself (never a copy) until the utterance's final is
journaled, so that it can send it again after a dropped connection. An
utterance recovered from the spool is the same type, whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from capture.vad import SAMPLE_RATE

__all__ = ["Utterance"]


@dataclass(eq=False)
class Utterance:
    """One utterance: its number, its times and its int16 mono 16 kHz audio.

    Not frozen: it grows while it is spoken. Only its producer (the segmenter,
    or whoever builds it whole) calls :meth:`append` and :meth:`finish`; every
    other part holds a reference and reads.

    Attributes:
        utt: the utterance's number in the session.
        start: session seconds of its first sample.
        chunks: its audio in order, as streamed; each chunk is the array the
            producer handed on (the segmenter's ``UtteranceAudio.pcm``), not a copy.
        end: session seconds just after its last sample; ``None`` while it is spoken.
    """

    utt: int
    start: float
    chunks: list[np.ndarray] = field(default_factory=list, repr=False)
    end: float | None = None

    @classmethod
    def whole(cls, utt: int, start: float, pcm: np.ndarray) -> Utterance:
        """An ended utterance of ``pcm`` (recovered from the spool, or made by a test)."""
        utterance = cls(utt, start)
        utterance.append(pcm)
        utterance.finish(start + utterance.samples / SAMPLE_RATE)
        return utterance

    def append(self, pcm: np.ndarray) -> np.ndarray:
        """Add the next samples (kept by reference when already int16); returns the chunk kept."""
        if self.end is not None:
            raise RuntimeError(f"utterance {self.utt} has ended: no more audio")
        chunk = np.asarray(pcm, dtype=np.int16)
        if chunk.ndim != 1:
            chunk = chunk.reshape(-1)
        if len(chunk):
            self.chunks.append(chunk)
        return chunk

    def finish(self, end: float) -> None:
        self.end = end

    @property
    def ended(self) -> bool:
        return self.end is not None

    @property
    def samples(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)

    @property
    def duration(self) -> float:
        return self.samples / SAMPLE_RATE

    def pcm(self) -> np.ndarray:
        """All the audio as one array: a new array when there is more than one chunk.

        For readers that need one array (an engine, a test); the capture path
        itself never joins the chunks.
        """
        if len(self.chunks) == 1:
            return self.chunks[0]
        if not self.chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self.chunks)
