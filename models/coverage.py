"""Which stretches of a clip hold speech that a decode gave no words for.

Whisper sometimes ends a decode early or skips a sentence, most often where
the voice changes: 18 s of four sentences came back as the first one. The
words' timestamps show it: no word between two points with seconds of speech
in between, or one word stretched over seconds (the alignment spreads the
words it has over the speech it lacks text for). :func:`uncovered` finds such
stretches; :func:`pieces` cuts a clip at its pauses into pieces short enough
to decode one by one. Both are pure arithmetic on the samples and word times.

Speech here is energy: 20 ms frames within ``QUIET_DB`` of the clip's loud
frames (its 95th percentile, so one click does not set the scale) and above
an absolute floor (digital silence and hiss are not speech). A word's time
span counts only up to ``max_word_s`` before its end: when text is missing,
the alignment tends to stretch a neighbouring word over the gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .base import SAMPLE_RATE

__all__ = ["CoverageOptions", "Stretch", "pieces", "uncovered", "voiced_frames"]

FRAME = SAMPLE_RATE // 50  # 20 ms
#: a frame this far under the clip's loud frames is not speech
QUIET_DB = 25.0
#: float samples; below this mean power (-60 dBFS) a frame is silence whatever the clip
FLOOR_POWER = 1e-6


@dataclass(frozen=True)
class CoverageOptions:
    """When a stretch without words is worth decoding again.

    Attributes:
        min_gap_s: shortest stretch without words considered.
        min_voiced_s: seconds of speech it must hold.
        max_word_s: longest span one word is taken to cover.
    """

    min_gap_s: float = 1.0
    min_voiced_s: float = 0.5
    max_word_s: float = 1.0


@dataclass(frozen=True)
class Stretch:
    """Samples ``[start, end)`` of the clip: speech that no word covers."""

    start: int
    end: int


def voiced_frames(audio: np.ndarray) -> np.ndarray:
    """One bool per whole 20 ms frame of float ``audio``: True where it is speech."""
    n = len(audio) // FRAME
    if n == 0:
        return np.zeros(0, dtype=bool)
    frames = audio[: n * FRAME].astype(np.float64).reshape(n, FRAME)
    power = np.mean(frames**2, axis=1)
    loud = float(np.percentile(power, 95))
    return (power >= loud * 10 ** (-QUIET_DB / 10)) & (power >= FLOOR_POWER)


def uncovered(audio: np.ndarray, words: Sequence[tuple[float, float]],
              options: CoverageOptions = CoverageOptions()) -> list[Stretch]:
    """The stretches of ``audio`` (float, 16 kHz) with speech but none of ``words``
    (``(start_s, end_s)`` in clip seconds), in order."""
    voiced = voiced_frames(audio)
    covered = np.zeros(len(voiced), dtype=bool)
    for start, end in words:
        start = max(start, end - options.max_word_s)
        covered[max(int(start * 50), 0) : max(int(np.ceil(end * 50)), 0)] = True
    stretches = []
    min_gap, min_voiced = options.min_gap_s * 50, options.min_voiced_s * 50
    free = np.flatnonzero(~covered)
    if not len(free):
        return []
    breaks = np.flatnonzero(np.diff(free) > 1)
    for lo, hi in zip(np.r_[0, breaks + 1], np.r_[breaks, len(free) - 1], strict=True):
        first, last = int(free[lo]), int(free[hi]) + 1
        if last - first >= min_gap and voiced[first:last].sum() >= min_voiced:
            stretches.append(Stretch(first * FRAME, len(audio) if last == len(voiced) else last * FRAME))
    return stretches


def pieces(audio: np.ndarray, max_piece_s: float = 8.0, min_piece_s: float = 1.0) -> list[Stretch]:
    """``audio`` cut into consecutive pieces of at most ``max_piece_s`` (where the clip
    allows), each cut in the middle of the longest pause at least ``min_piece_s`` from
    the piece's ends (the quietest frame when there is no pause)."""
    voiced = voiced_frames(audio)
    power = np.mean(audio[: len(voiced) * FRAME].astype(np.float64).reshape(-1, FRAME) ** 2, axis=1) \
        if len(voiced) else np.zeros(0)
    cuts = _cuts(voiced, power, 0, len(voiced), round(max_piece_s * 50), round(min_piece_s * 50))
    bounds = [0, *(c * FRAME for c in cuts), len(audio)]
    return [Stretch(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


def _cuts(voiced: np.ndarray, power: np.ndarray, lo: int, hi: int, longest: int, margin: int) -> list[int]:
    """Frame indices that cut frames ``[lo, hi)`` into runs of at most ``longest``."""
    if hi - lo <= longest or hi - lo < 2 * margin:
        return []
    inner = slice(lo + margin, hi - margin)
    quiet = ~voiced[inner]
    if quiet.any():  # the middle of the longest run of quiet frames
        padded = np.r_[False, quiet, False].astype(np.int8)
        edges = np.flatnonzero(np.diff(padded))
        starts, ends = edges[::2], edges[1::2]
        best = int(np.argmax(ends - starts))
        cut = lo + margin + (int(starts[best]) + int(ends[best])) // 2
    else:
        cut = lo + margin + int(np.argmin(power[inner]))
    return [*_cuts(voiced, power, lo, cut, longest, margin), cut,
            *_cuts(voiced, power, cut, hi, longest, margin)]
