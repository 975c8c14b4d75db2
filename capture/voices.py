"""Voice embeddings on the capture side, beside the stream: the speaker label of each final.

A :class:`SpeakerTrack` embeds each utterance's audio in one background
thread while it is spoken, a window at a time: every 1.6 s of audio
(:data:`WINDOW_S`, one window of the encoder) is embedded once, as soon as
it has streamed, so the work is spread over the speech instead of landing
where the worker decodes the final. When the speech pauses (the audio then
is likely all of it, as for early finals) or the utterance ends, its end gets
one more window if it is long enough to matter (:func:`window_spans`). An
utterance's embedding is the mean of its windows'. When the final arrives
the windows are usually done, and :meth:`SpeakerTrack.label` hands their
mean to the run's :class:`~capture.speakers.SpeakerLabeller`. A final whose
windows are late waits for them, at most ``wait_s``.

The encoder is Resemblyzer's pretrained ``VoiceEncoder`` (GE2E, 256-d): its
weights ship inside its wheel (``resemblyzer/pretrained.pt``), so nothing
is downloaded. It loads in the background thread when the track is made
(about 2 s); finals that come before that are not labelled.

Privacy: an embedding exists only in this process's memory, from its
computation to its final's label (the labeller keeps a running sum per
voice); it is never written, sent or logged.

Cost (Resemblyzer on this project's 2 shared cores): see the speakers
benchmark, ``bench/speakers.py``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from capture.segmenter import (
    Event,
    UtteranceAudio,
    UtteranceEnded,
    UtterancePaused,
    UtteranceStarted,
)
from capture.speakers import SpeakerLabeller
from capture.utterance import Utterance
from common.audio import SAMPLE_RATE
from wire.protocol import Caption

__all__ = ["Encoder", "ResemblyzerEncoder", "SpeakerTrack", "TrackStats", "WINDOW_S", "embed_windowed",
           "encoder_installed", "end_span", "mean_embedding", "window_spans"]

log = logging.getLogger(__name__)

#: least voiced audio worth an embedding
MIN_VOICED_S = 0.3
#: most 1.6 s windows an utterance's embedding averages (long utterances: spread evenly)
MAX_WINDOWS = 8
#: the track's window: one partial utterance of the encoder (160 frames of 10 ms)
WINDOW_S = 1.6
#: an utterance's end beyond its last window gets a window of its own from this long
TAIL_S = 0.8


def end_span(samples: int) -> tuple[int, int] | None:
    """The window that ends an utterance of ``samples`` samples, if it needs one: the last
    :data:`WINDOW_S` when the part after its last whole window is at least :data:`TAIL_S`,
    the whole utterance when it is shorter than one window, else none."""
    width = round(WINDOW_S * SAMPLE_RATE)
    whole = samples // width
    if samples <= 0 or (whole and samples - whole * width < TAIL_S * SAMPLE_RATE):
        return None
    return (max(0, samples - width), samples)


def window_spans(samples: int, *, ended: bool, done: int = 0) -> list[tuple[int, int]]:
    """The windows ``(start, stop)`` of an utterance of ``samples`` samples, after its first ``done``:
    the back-to-back :data:`WINDOW_S` windows it holds and, once ``ended``, its :func:`end_span`."""
    width = round(WINDOW_S * SAMPLE_RATE)
    spans = [(k * width, (k + 1) * width) for k in range(done, samples // width)]
    last = end_span(samples) if ended else None
    return spans + ([last] if last is not None else [])


def mean_embedding(parts: list[np.ndarray]) -> np.ndarray | None:
    """The unit mean of window embeddings (``None`` when there is none)."""
    if not parts:
        return None
    mean = np.mean(parts, axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else None


def embed_windowed(encoder: Encoder, pcm: np.ndarray) -> np.ndarray | None:
    """An ended utterance's embedding as :class:`SpeakerTrack` makes it (the benchmark's measure)."""
    parts = [encoder.embed(pcm[a:b]) for a, b in window_spans(len(pcm), ended=True)]
    return mean_embedding([e for e in parts if e is not None])


def encoder_installed() -> bool:
    """Whether the speaker model (the ``resemblyzer`` package) is installed."""
    return importlib.util.find_spec("resemblyzer") is not None


class Encoder(Protocol):
    """Turns int16 16 kHz speech into a unit voice embedding (``None``: too little voice)."""

    def embed(self, pcm: np.ndarray) -> np.ndarray | None: ...


class ResemblyzerEncoder:
    """Resemblyzer's ``VoiceEncoder`` on the CPU, with its own preprocessing (volume, silences)."""

    def __init__(self) -> None:
        import torch
        from resemblyzer import VoiceEncoder, audio

        self._torch = torch
        self._audio = audio
        self._model = VoiceEncoder("cpu", verbose=False)
        self._model.eval()
        rng = np.random.default_rng(0)  # the first spectrogram compiles librosa's kernels
        self.embed((rng.standard_normal(2 * SAMPLE_RATE) * 3000).astype(np.int16))

    def embed(self, pcm: np.ndarray) -> np.ndarray | None:
        wav = np.asarray(pcm, dtype=np.float32) / 32768.0
        if not len(wav) or not np.any(wav):
            return None
        wav = self._audio.normalize_volume(wav, -30, increase_only=True)
        wav = self._audio.trim_long_silences(wav)
        if len(wav) < MIN_VOICED_S * SAMPLE_RATE:
            return None
        wav_slices, mel_slices = self._model.compute_partial_slices(len(wav), 1.3, 0.75)
        if len(mel_slices) > MAX_WINDOWS:
            keep = np.linspace(0, len(mel_slices) - 1, MAX_WINDOWS).round().astype(int)
            mel_slices = [mel_slices[i] for i in keep]
        need = max(wav_slices[-1].stop, mel_slices[-1].stop * (SAMPLE_RATE // 100))
        if need > len(wav):
            wav = np.pad(wav, (0, need - len(wav)))
        mel = self._audio.wav_to_mel_spectrogram(wav)
        mels = np.stack([mel[s] for s in mel_slices])
        with self._torch.inference_mode():
            partials = self._model(self._torch.from_numpy(mels)).numpy()
        mean = partials.mean(axis=0)
        norm = float(np.linalg.norm(mean))
        return mean / norm if norm > 0 else None


@dataclass
class TrackStats:
    """What a track did: finals labelled, and seconds finals waited for their embedding."""

    labelled: int = 0
    late: int = 0  # finals that waited ``wait_s`` and went out without all their windows
    failed: int = 0  # windows whose embedding failed (logged once)
    waits: list[float] = field(default_factory=list)


@dataclass(eq=False)
class _Windows:
    """One utterance's windows: the whole ones submitted, and the one at its (likely) end."""

    utterance: Utterance
    whole: list[Future] = field(default_factory=list)
    tail: Future | None = None
    tail_at: int = -1  # the samples the end window was made for (-1: none yet)

    def futures(self) -> list[Future]:
        return self.whole + ([self.tail] if self.tail is not None else [])


class SpeakerTrack:
    """Embeds utterances beside the stream and labels their finals, for one capture run.

    ``encoder`` builds the model (in the background thread); ``labeller``
    is the run's labeller. Call :meth:`close` at the end of the run.
    """

    def __init__(self, encoder: Callable[[], Encoder] = ResemblyzerEncoder,
                 labeller: SpeakerLabeller | None = None, *, wait_s: float = 1.0):
        self.labeller = labeller or SpeakerLabeller()
        self.wait_s = wait_s
        self.stats = TrackStats()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="notsound-voices")
        self._encoder: Future = self._executor.submit(encoder)
        self._encoder.add_done_callback(_report_load)
        self._utts: dict[int, _Windows] = {}

    def on_event(self, event: Event) -> None:
        """Follow the segmenter: embed each whole window as it streams, and the end at a pause or the end."""
        if isinstance(event, UtteranceStarted):
            self._utts[event.utt] = _Windows(event.utterance)
        elif isinstance(event, UtteranceAudio):
            windows = self._utts.get(event.utt)
            if windows is not None:
                self._grow(windows)
        elif isinstance(event, UtterancePaused):
            windows = self._utts.get(event.utt)
            if windows is not None:
                self._end(windows, event.samples)
        elif isinstance(event, UtteranceEnded):
            self.embed(event.utterance)

    def embed(self, utterance: Utterance) -> None:
        """Embed ``utterance``, which has ended (what is not already under way)."""
        windows = self._utts.setdefault(utterance.utt, _Windows(utterance))
        self._grow(windows)
        self._end(windows, utterance.samples)

    def ready(self, utt: int) -> bool:
        """Whether the label of ``utt`` can be given without waiting."""
        windows = self._utts.get(utt)
        return windows is None or all(f.done() for f in windows.futures())

    async def wait(self, utt: int) -> None:
        """Wait (at most ``wait_s``) until the windows of ``utt`` are done."""
        windows = self._utts.get(utt)
        pending = {asyncio.wrap_future(f) for f in windows.futures() if not f.done()} if windows else set()
        if pending:
            await asyncio.wait(pending, timeout=self.wait_s)

    def label(self, caption: Caption, waited_s: float = 0.0) -> str | None:
        """The speaker of ``caption`` (``None``: nothing said, or no voice known yet).

        Its embedding is dropped here, used or not.
        """
        windows = self._utts.pop(caption.utt, None)
        futures = windows.futures() if windows is not None else []
        if not all(f.done() for f in futures):
            self.stats.late += 1
        parts = []
        for future in futures:
            if not future.done():
                future.cancel()
            elif not future.cancelled() and future.exception() is not None:
                self._failed(future.exception())
            elif not future.cancelled() and future.result() is not None:
                parts.append(future.result())
        self.stats.waits.append(waited_s)
        if not caption.text.strip():  # music, noise, a cough: no speaker, nothing learnt
            return None
        speaker = self.labeller.label(mean_embedding(parts), caption.end - caption.start)
        if speaker is not None:
            self.stats.labelled += 1
        return speaker

    def _failed(self, exc: BaseException) -> None:
        if not self.stats.failed:
            log.warning("speaker labels: an embedding failed (%s); labels may stay as they were", exc)
        self.stats.failed += 1

    def close(self) -> None:
        for windows in self._utts.values():
            for future in windows.futures():
                future.cancel()
        self._utts.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _grow(self, windows: _Windows) -> None:
        """Queue the whole windows streamed since the last; speech after a pause voids its end window."""
        samples = windows.utterance.samples
        if windows.tail is not None and samples > windows.tail_at:
            windows.tail.cancel()
            windows.tail, windows.tail_at = None, -1
        for span in window_spans(samples, ended=False, done=len(windows.whole)):
            windows.whole.append(self._submit(windows.utterance, *span))

    def _end(self, windows: _Windows, samples: int) -> None:
        """Queue the window that ends the utterance if it ends after ``samples`` (unless queued).

        The whole windows before it are queued already (:meth:`_grow` came first)."""
        if windows.tail_at == samples:
            return
        if windows.tail is not None:
            windows.tail.cancel()
        span = end_span(samples)
        windows.tail = self._submit(windows.utterance, *span) if span is not None else None
        windows.tail_at = samples

    def _submit(self, utterance: Utterance, start: int, stop: int) -> Future:
        """Queue the embedding of samples ``[start, stop)`` of ``utterance`` (its chunks as they are now)."""
        chunks = list(utterance.chunks)  # the arrays themselves; a later append does not touch them
        return self._executor.submit(self._embed, chunks, start, stop)

    def _embed(self, chunks: list[np.ndarray], start: int, stop: int) -> np.ndarray | None:
        encoder = self._encoder.result()
        pcm = np.concatenate(chunks)[start:stop] if chunks else np.zeros(0, dtype=np.int16)
        return encoder.embed(pcm)


def _report_load(future: Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("speaker labels off: the speaker model did not load: %s", future.exception())
