"""Voice embeddings on the capture side, beside the stream: the speaker label of each final.

A :class:`SpeakerTrack` embeds each utterance's audio in one background
thread while the worker decodes it: from the moment the speech pauses (the
audio then is likely all of it, as for early finals) or, failing that, when
it ends. When the final arrives the embedding is usually done, and
:meth:`SpeakerTrack.label` hands it to the run's
:class:`~capture.speakers.SpeakerLabeller`. A final whose embedding is late
waits for it, at most ``wait_s``.

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

from capture.segmenter import Event, UtteranceEnded, UtterancePaused, UtteranceStarted
from capture.speakers import SpeakerLabeller
from capture.utterance import Utterance
from common.audio import SAMPLE_RATE
from wire.protocol import Caption

__all__ = ["Encoder", "ResemblyzerEncoder", "SpeakerTrack", "TrackStats", "encoder_installed"]

log = logging.getLogger(__name__)

#: least voiced audio worth an embedding
MIN_VOICED_S = 0.3
#: most 1.6 s windows an utterance's embedding averages (long utterances: spread evenly)
MAX_WINDOWS = 8


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
    late: int = 0  # finals that waited ``wait_s`` and went out without their own embedding
    waits: list[float] = field(default_factory=list)


@dataclass(eq=False)
class _Job:
    samples: int
    future: Future


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
        self._jobs: dict[int, _Job] = {}
        self._open: dict[int, Utterance] = {}  # utterances still spoken, for their pauses

    def on_event(self, event: Event) -> None:
        """Follow the segmenter: embed an utterance when its speech pauses or it ends."""
        if isinstance(event, UtteranceStarted):
            self._open[event.utt] = event.utterance
        elif isinstance(event, UtterancePaused):
            utterance = self._open.get(event.utt)
            if utterance is not None:
                self._submit(utterance, event.samples)
        elif isinstance(event, UtteranceEnded):
            self._open.pop(event.utt, None)
            self.embed(event.utterance)

    def embed(self, utterance: Utterance) -> None:
        """Embed ``utterance`` as it is now (unless that is already under way)."""
        job = self._jobs.get(utterance.utt)
        if job is None or job.samples != utterance.samples or job.future.cancelled():
            self._submit(utterance, utterance.samples)

    def ready(self, utt: int) -> bool:
        """Whether the label of ``utt`` can be given without waiting."""
        job = self._jobs.get(utt)
        return job is None or job.future.done()

    async def wait(self, utt: int) -> None:
        """Wait (at most ``wait_s``) until the embedding of ``utt`` is done."""
        job = self._jobs.get(utt)
        if job is not None and not job.future.done():
            await asyncio.wait({asyncio.wrap_future(job.future)}, timeout=self.wait_s)

    def label(self, caption: Caption, waited_s: float = 0.0) -> str | None:
        """The speaker of ``caption`` (``None``: nothing said, or no voice known yet).

        Its embedding is dropped here, used or not.
        """
        job = self._jobs.pop(caption.utt, None)
        embedding = None
        if job is not None:
            if job.future.done() and not job.future.cancelled() and job.future.exception() is None:
                embedding = job.future.result()
            else:
                job.future.cancel()
                self.stats.late += 1
        self.stats.waits.append(waited_s)
        if not caption.text.strip():  # music, noise, a cough: no speaker, nothing learnt
            return None
        speaker = self.labeller.label(embedding, caption.end - caption.start)
        if speaker is not None:
            self.stats.labelled += 1
        return speaker

    def close(self) -> None:
        for job in self._jobs.values():
            job.future.cancel()
        self._jobs.clear()
        self._open.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _submit(self, utterance: Utterance, samples: int) -> None:
        """Queue the embedding of the first ``samples`` of ``utterance`` (its chunks as they are now)."""
        job = self._jobs.get(utterance.utt)
        if job is not None:
            job.future.cancel()  # the speech went on: that audio was not all of it
        chunks = list(utterance.chunks)  # the arrays themselves; a later append does not touch them
        self._jobs[utterance.utt] = _Job(samples, self._executor.submit(self._embed, chunks, samples))

    def _embed(self, chunks: list[np.ndarray], samples: int) -> np.ndarray | None:
        encoder = self._encoder.result()
        pcm = np.concatenate(chunks)[:samples] if chunks else np.zeros(0, dtype=np.int16)
        return encoder.embed(pcm)


def _report_load(future: Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("speaker labels off: the speaker model did not load: %s", future.exception())
