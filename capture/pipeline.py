"""One capture run: source -> segmenter -> spool + client, and what it tells its owner.

A :class:`CapturePipeline` owns the parts of the capture side for one run of
one session. :meth:`~CapturePipeline.recover` queues the audio an earlier run
left in the session's ``pending/`` folder (with its numbers) and says where
this run's numbering and clock go on; :meth:`~CapturePipeline.run` reads the
source through the :class:`~capture.segmenter.Segmenter`, hands every event
to the :class:`~capture.spool.Spool` and the
:class:`~capture.client.StreamClient` in order, and at the end waits a
bounded time for the finals still owed. Audio still owed a final then stays
in ``pending/`` for the next run.

Each utterance's audio exists once in memory: the segmenter's
:class:`~capture.utterance.Utterance`, which the client holds by reference
until the final is journaled; the spool writes the same chunks to disk.

With ``record`` on, every block the source gives (silences included) also
goes to a :class:`~capture.recorder.Recorder`, which appends this run's part
of the session's recording at the run's offset: a caption's times are
positions in the recording.

With a :class:`~capture.voices.SpeakerTrack`, every utterance is also
embedded beside the stream and each final reaches ``on_final`` as a
``library.folder.Final`` with its ``speaker``; a final whose embedding is
still being computed waits for it (bounded), and the ones after it wait
their turn, so finals keep their order.

The owner hears of the run only through :class:`CaptureCallbacks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from capture.client import ClientOptions, Owed, StreamClient
from capture.recorder import Recorder
from capture.segmenter import (
    Event,
    Segmenter,
    SpeechModel,
    UtteranceAudio,
    UtteranceEnded,
    UtterancePaused,
    UtteranceStarted,
)
from capture.spool import Spool
from capture.vad import VadOptions
from capture.voices import SpeakerTrack
from library.folder import as_final, new_part_path
from wire.protocol import Caption, Commit, Partial, Ready

__all__ = ["AudioSource", "CaptureCallbacks", "CaptureOptions", "CapturePipeline", "Resume"]

log = logging.getLogger(__name__)


class AudioSource(Protocol):
    """What :mod:`capture.sources` gives: an async context that yields int16 blocks.

    A source may count ``dropped_seconds`` (audio it lost); 0 is assumed otherwise.
    """

    async def __aenter__(self) -> object: ...

    async def __aexit__(self, *exc: object) -> object: ...

    def __aiter__(self) -> AsyncIterator[np.ndarray]: ...


@dataclass(frozen=True)
class CaptureOptions:
    """How a run captures.

    Attributes:
        vad: how speech is cut into utterances.
        fast: the source is read faster than real time (a file with ``--fast``):
            before each next block, wait while ``max_owed`` finals are owed.
        max_owed: see ``fast``.
        drain_timeout_s: at the end, how long to wait for the finals still owed.
        record: append this run's audio to the session's recording.
    """

    vad: VadOptions = field(default_factory=VadOptions)
    fast: bool = False
    max_owed: int = 8
    drain_timeout_s: float = 30.0
    record: bool = True


#: with ``fast``, seconds of audio the recorder may have queued before reading waits
FAST_RECORD_BACKLOG_S = 10.0


@dataclass(frozen=True)
class Resume:
    """Where a run's numbering and clock start.

    Attributes:
        offset: session seconds of the run's first sample.
        first_utt: number of the run's first new utterance.
    """

    offset: float = 0.0
    first_utt: int = 0


def _ignore(*_: object) -> None:
    return None


@dataclass(frozen=True)
class CaptureCallbacks:
    """What a pipeline tells its owner; all run on the event loop and must not block.

    Attributes:
        on_final: ``(caption, owed)`` for a final the client was owed. It must
            journal the caption before returning: the spooled audio is deleted
            right after. ``owed`` is the client's record (``ended_at`` is when
            the end of the utterance was known, for latency).
        on_partial: ``(partial)`` for an utterance still owed its final.
        on_commit: ``(commit)``: settled text of an utterance still open (its final
            begins with it; feature ``commit``).
        on_state: ``(state, detail)``: ``connecting``, ``reconnecting``,
            ``live``, ``draining``, with a line for the status bar.
        on_open: ``()`` once the source is open: audio position 0 is now.
        on_progress: ``(position_s, dropped_s)`` after every block: seconds of
            audio read in this run, and seconds the source dropped so far.
        on_notice: ``(text)``: one line for the user (the recording stopped ...).
    """

    on_final: Callable[[Caption, Owed | None], None]
    on_partial: Callable[[Partial], None] = _ignore
    on_commit: Callable[[Commit], None] = _ignore
    on_state: Callable[[str, str], None] = _ignore
    on_open: Callable[[], None] = _ignore
    on_progress: Callable[[float, float], None] = _ignore
    on_notice: Callable[[str], None] = _ignore


class CapturePipeline:
    """Source -> segmenter -> spool + client for one run of the session in ``session_dir``.

    ``vad`` replaces the Silero model (a stand-in for tests); it must be fresh.
    ``speakers`` labels each final with its speaker (the pipeline closes it).
    """

    def __init__(self, session_dir: Path, client: ClientOptions, callbacks: CaptureCallbacks,
                 options: CaptureOptions | None = None, *, vad: SpeechModel | None = None,
                 speakers: SpeakerTrack | None = None):
        self.options = options or CaptureOptions()
        self.callbacks = callbacks
        self.session_dir = session_dir
        self.spool = Spool(session_dir)
        self.recorder: Recorder | None = None
        self.client = StreamClient(client, on_final=self._on_final, on_partial=callbacks.on_partial,
                                   on_state=callbacks.on_state, on_commit=callbacks.on_commit)
        self._vad = vad
        self.speakers = speakers
        self._held: deque[tuple[Caption, Owed | None, float]] = deque()  # finals awaiting a label
        self._release: asyncio.Task | None = None
        self._delivered = asyncio.Event()  # a held final went out: backpressure looks again

    @property
    def owed(self) -> int:
        """Ended utterances still waiting for their final (or for their speaker label)."""
        return self.client.owed + len(self._held)

    @property
    def reconnects(self) -> int:
        return self.client.stats.reconnects

    @property
    def ready(self) -> Ready | None:
        """The worker's ``ready`` (engine, model, features), once connected."""
        return self.client.ready

    def recover(self, known: set[int] | frozenset[int], resume: Resume) -> Resume:
        """Queue what an earlier run spooled and ``known`` (the journaled utts) lacks.

        Returns where this run goes on: after the recovered utterances, in
        numbering and in time, and never before ``resume``.
        """
        offset, first_utt = resume.offset, resume.first_utt
        for utterance in self.spool.recover(known):
            self.client.send(utterance)
            if self.speakers is not None:
                self.speakers.embed(utterance)
            assert utterance.end is not None
            offset = max(offset, utterance.end)
            first_utt = max(first_utt, utterance.utt + 1)
        return Resume(offset, first_utt)

    async def run(self, source: AudioSource, resume: Resume, stop: asyncio.Event) -> None:
        """Capture until the source ends or ``stop`` is set, then wait (bounded) for owed finals.

        Raises what stops the client for good (refused key, bad URL ...).
        """
        if self.options.record:
            self.recorder = Recorder(new_part_path(self.session_dir, resume.offset), self.callbacks.on_notice)
        client_stop = asyncio.Event()
        client_task = asyncio.create_task(self.client.run(client_stop))
        pump = asyncio.create_task(self._pump(source, resume, stop))
        try:
            done, _ = await asyncio.wait({pump, client_task}, return_when=asyncio.FIRST_COMPLETED)
            if client_task in done:  # nothing more can be sent
                pump.cancel()
                client_task.result()
            await pump
            client_stop.set()
            self.callbacks.on_state("draining", f"{self.owed} captions owed")
            try:
                await asyncio.wait_for(client_task, self.options.drain_timeout_s)
                if self._release is not None:
                    await self._release  # each waits at most the track's wait_s
            except asyncio.TimeoutError:
                log.warning("gave up waiting for %d finals; their audio stays in %s", self.owed,
                            self.spool.directory)
        finally:
            tasks = [t for t in (pump, client_task, self._release) if t is not None]
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
            self.spool.close()
            if self.recorder is not None:
                await self.recorder.close()
            if self.speakers is not None:
                self.speakers.close()

    async def _pump(self, source: AudioSource, resume: Resume, stop: asyncio.Event) -> None:
        segmenter = Segmenter(self.options.vad, first_utt=resume.first_utt, time_offset=resume.offset,
                              vad=self._vad)
        async with source:
            self.callbacks.on_open()
            async for block in source:
                if self.recorder is not None:
                    self.recorder.write(block)
                for event in segmenter.feed(block):
                    self._handle(event)
                self.callbacks.on_progress(segmenter.position_s, getattr(source, "dropped_seconds", 0.0))
                if stop.is_set():
                    break
                if self.options.fast:
                    await self.client.wait_below(self.options.max_owed)
                    if self.recorder is not None:
                        await self.recorder.wait_below(FAST_RECORD_BACKLOG_S)
                    while len(self._held) >= self.options.max_owed:  # labels behind: wait for them too
                        self._delivered.clear()
                        await self._delivered.wait()
        for event in segmenter.flush():
            self._handle(event)

    def _handle(self, event: Event) -> None:
        """The spool first: audio is on disk before it can be sent."""
        if self.speakers is not None:
            self.speakers.on_event(event)
        if isinstance(event, UtteranceStarted):
            self.spool.start(event.utterance)
            self.client.send(event.utterance)
        elif isinstance(event, UtteranceAudio):
            self.spool.audio(event.utt, event.pcm)
            self.client.audio_added(event.utt)
        elif isinstance(event, UtterancePaused):
            self.client.pause_utterance(event.utt, event.samples)
        elif isinstance(event, UtteranceEnded):
            self.spool.end(event.utterance)
            self.client.end_utterance(event.utt)

    def _on_final(self, caption: Caption, owed: Owed | None) -> None:
        speakers = self.speakers
        if speakers is None or (not self._held and speakers.ready(caption.utt)):
            self._deliver(caption, owed, 0.0)
            return
        self._held.append((caption, owed, time.monotonic()))
        if self._release is None or self._release.done():
            self._release = asyncio.create_task(self._release_held())

    async def _release_held(self) -> None:
        """Deliver held finals in order, each once its embedding is done (or waited for enough)."""
        assert self.speakers is not None
        while self._held:
            caption, owed, since = self._held[0]
            await self.speakers.wait(caption.utt)
            self._held.popleft()
            self._deliver(caption, owed, time.monotonic() - since)
            self._delivered.set()

    def _deliver(self, caption: Caption, owed: Owed | None, waited_s: float) -> None:
        if self.speakers is not None:
            speaker = self.speakers.label(caption, waited_s)
            caption = dataclasses.replace(as_final(caption), speaker=speaker or "")
        self.callbacks.on_final(caption, owed)  # journaled when this returns
        self.spool.done(caption.utt)
