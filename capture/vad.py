"""Silero VAD: options and a streaming speech-probability model.

The model is the one bundled with the ``silero-vad`` package, so nothing is
downloaded. It scores windows of exactly 512 samples at 16 kHz (32 ms) and
keeps a recurrent state (plus 64 samples of context) from one window to the
next, so one :class:`SileroVad` belongs to one audio stream.

vad_cost: scoring espeak-ng speech in 512-sample windows on this project's
2 shared CPU cores (one thread) costs 5-7 ms of CPU per second of audio with
the ONNX model (onnxruntime) and 9-11 ms with the TorchScript model, i.e.
well under 1 % of one core; the segmenter's own bookkeeping adds about
0.7 ms. Both models give the same utterances, so ONNX is preferred whenever
``onnxruntime`` is installed. Loading takes about 1.4 s (mostly importing
torch, which the ``silero-vad`` package needs either way).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from capture.sources import CaptureError
from common.audio import SAMPLE_RATE

__all__ = ["SAMPLE_RATE", "WINDOW", "VadError", "VadOptions", "SileroVad"]

WINDOW = 512  # samples per model call at 16 kHz; fixed by the Silero model


class VadError(CaptureError):
    """The VAD model cannot be loaded or the options are unusable."""


@dataclass(frozen=True)
class VadOptions:
    """How speech is cut into utterances.

    Attributes:
      threshold: Speech probability at or above which a 32 ms window is speech.
        A window must fall below ``threshold - 0.15`` to count as silence
        (hysteresis, as in Silero's own iterator).
      min_speech_s: Speech shorter than this is a click or a cough and is
        dropped; an utterance is only announced once this much speech is heard.
      min_silence_s: A pause at least this long ends an utterance that has just
        begun.
      min_silence_floor_s: The pause that ends an utterance ``silence_ramp_s``
        long or longer. In between, the pause needed falls linearly with the
        utterance's length (:meth:`silence_needed_s`): a short answer is not
        cut at a breath, while a lecturer who runs sentences together with
        0.2-0.35 s pauses still gets an utterance (and a final) about every
        sentence. A floor above ``min_silence_s`` is ``min_silence_s``.
      silence_ramp_s: Utterance length at which the pause needed reaches
        ``min_silence_floor_s``.
      pad_s: Audio kept before the speech onset and after the speech offset.
      max_utterance_s: No utterance is longer than this; longer speech is split
        (speech with no pause of ``min_silence_floor_s`` for this long).
      split_search_s: A forced split happens at the quietest point of the last
        ``split_search_s`` seconds before ``max_utterance_s``, not mid-word.
        Audio in that window is streamed only once the split is decided.
      onnx: Use the ONNX model (faster on CPU) when True, TorchScript when
        False, ONNX if ``onnxruntime`` is importable when None.
    """

    threshold: float = 0.5
    min_speech_s: float = 0.25
    min_silence_s: float = 0.5
    min_silence_floor_s: float = 0.15
    silence_ramp_s: float = 4.0
    pad_s: float = 0.2
    max_utterance_s: float = 10.0
    split_search_s: float = 2.0
    onnx: bool | None = None

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.threshold < 1.0:
            problems.append(f"threshold must be between 0 and 1, not {self.threshold}")
        for name in ("min_speech_s", "min_silence_s", "min_silence_floor_s", "pad_s"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative, not {getattr(self, name)}")
        if self.silence_ramp_s <= 0:
            problems.append(f"silence_ramp_s must be positive, not {self.silence_ramp_s}")
        if self.max_utterance_s < 1.0:
            problems.append(f"max_utterance_s must be at least 1 s, not {self.max_utterance_s}")
        if not 0.1 <= self.split_search_s <= self.max_utterance_s / 2:
            problems.append(
                f"split_search_s must be at least 0.1 s and at most half of max_utterance_s "
                f"({self.max_utterance_s / 2:g} s), not {self.split_search_s}"
            )
        if problems:
            raise VadError("invalid VAD options: " + "; ".join(problems))

    def silence_needed_s(self, utterance_s: float) -> float:
        """Seconds of pause that end an utterance ``utterance_s`` long (when its pause began)."""
        floor = min(self.min_silence_floor_s, self.min_silence_s)
        share = min(max(utterance_s, 0.0) / self.silence_ramp_s, 1.0)
        return self.min_silence_s - (self.min_silence_s - floor) * share

    @property
    def neg_threshold(self) -> float:
        """Probability below which a window counts as silence."""
        return max(self.threshold - 0.15, 0.01)


def _onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _load_model(onnx: bool | None):
    import torch

    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad
    except ImportError as exc:
        raise VadError("silero-vad is not installed: pip install silero-vad") from exc
    finally:
        torch.set_num_threads(threads)  # importing silero_vad sets 1 thread process-wide
    if onnx is None:
        onnx = _onnx_available()
    elif onnx and not _onnx_available():
        raise VadError("the ONNX VAD model needs onnxruntime: pip install onnxruntime")
    return load_silero_vad(onnx=onnx), onnx


class SileroVad:
    """Speech probability of consecutive 512-sample windows of one stream."""

    def __init__(self, onnx: bool | None = None) -> None:
        import torch

        self._torch = torch
        self._model, self.onnx = _load_model(onnx)
        self.cpu_s = 0.0
        self.windows = 0

    def reset(self) -> None:
        """Forget the stream so far (state and context)."""
        self._model.reset_states()

    def __call__(self, window: np.ndarray) -> float:
        """Speech probability of the next window (512 int16 or float samples)."""
        if len(window) != WINDOW:
            raise ValueError(f"Silero VAD takes {WINDOW} samples at a time, not {len(window)}")
        if window.dtype == np.int16:
            window = window.astype(np.float32) / 32768.0
        began = time.thread_time()
        with self._torch.inference_mode():
            prob = float(
                self._model(self._torch.from_numpy(np.ascontiguousarray(window)), SAMPLE_RATE)
            )
        self.cpu_s += time.thread_time() - began
        self.windows += 1
        return prob

    @property
    def cost(self) -> float:
        """CPU seconds spent per second of audio scored so far."""
        audio_s = self.windows * WINDOW / SAMPLE_RATE
        return self.cpu_s / audio_s if audio_s else 0.0
