"""The streaming client of protocol v1, with reconnect and resend.

Every utterance is kept until its final arrives: in memory as the
:class:`~capture.utterance.Utterance` its producer made (a reference, not a
copy), and on disk through :class:`~capture.spool.Spool`. After a dropped connection the client reconnects with
exponential backoff and jitter, says ``hello`` again and re-sends every
utterance still owed a final, with the same numbers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from capture.utterance import Utterance
from common.audio import BYTES_PER_SAMPLE, SAMPLE_RATE
from common.errors import NotSoundError
from common.limits import TokenBucket
from wire.protocol import (
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNSUPPORTED_VERSION,
    FEATURE_COMMIT,
    FEATURE_PAUSE,
    MAX_AUDIO_FRAME_BYTES,
    Bye,
    Caption,
    Commit,
    End,
    Error,
    Hello,
    Partial,
    Pause,
    ProtocolError,
    Ready,
    Start,
    clean_vocabulary,
    decode_worker,
    encode,
)

__all__ = ["ClientOptions", "ClientError", "AuthError", "Owed", "StreamClient"]

log = logging.getLogger(__name__)

FRAME_SAMPLES = MAX_AUDIO_FRAME_BYTES // 2
#: close codes after which reconnecting cannot help
FATAL_CLOSES = frozenset({CLOSE_PROTOCOL_ERROR, CLOSE_UNSUPPORTED_VERSION})


class ClientError(NotSoundError):
    """The worker cannot be used (bad URL, refused key, incompatible protocol)."""


class AuthError(ClientError):
    """The worker refused the key (HTTP 401/403)."""


@dataclass(frozen=True)
class ClientOptions:
    """Where and how to stream.

    Attributes:
        url: ``ws://`` or ``wss://`` URL of the worker's ``/v1/stream``.
        session: session name sent in ``hello``.
        key: API key, sent as ``Authorization: Bearer`` (never in the URL).
        language: ``auto`` or a language code.
        ca_file: CA bundle to verify a ``wss://`` worker; system store when None.
        backoff_initial_s / backoff_max_s: reconnect delays (doubling, with jitter).
        open_timeout_s: how long one connection attempt may take.
        vocabulary: terms likely to be said (e.g. from the slides), sent in ``hello``
            for engines that take hints (protocol feature ``vocabulary``).
        max_rate: audio sent per second of wall time, as a multiple of real
            time, after a burst of ``burst_s`` seconds (0: as fast as possible).
            It stays under the worker's default limit of 2x with 60 s bursts,
            so a resend after a long outage is paced instead of refused.
    """

    url: str
    session: str
    key: str | None = None
    language: str = "auto"
    ca_file: Path | None = None
    backoff_initial_s: float = 0.3
    backoff_max_s: float = 8.0
    open_timeout_s: float = 10.0
    max_rate: float = 1.8
    burst_s: float = 30.0
    vocabulary: tuple[str, ...] = ()


@dataclass(eq=False)
class Owed:
    """The client's record of an utterance it holds until the final: what it resends.

    Attributes:
        utterance: the utterance itself, shared with its producer (its chunks
            grow while it is spoken).
        ended_at: monotonic time its end was known; ``None`` while it is spoken.
        paused: ``(chunks, samples)`` of the utterance when its speech paused.
        commit: the worker's newest :class:`~wire.protocol.Commit` of it (feature
            ``commit``), told again when the utterance is sent again.
    """

    utterance: Utterance
    ended_at: float | None = None
    paused: tuple[int, int] | None = None
    commit: Commit | None = None

    @property
    def utt(self) -> int:
        return self.utterance.utt

    @property
    def ended(self) -> bool:
        return self.ended_at is not None


@dataclass
class _Sent:
    """What one connection has sent of an utterance."""

    chunks: int = 0  # chunks of its audio
    end: bool = False
    pause_at: int = -1  # ``chunks`` when its pause was sent


@dataclass
class ClientStats:
    connects: int = 0
    reconnects: int = 0
    resent_utterances: int = 0
    finals: int = 0
    duplicate_finals: int = 0


class StreamClient:
    """Feeds utterances to the worker and hands back partials and finals.

    A producer that grows the utterance itself (the segmenter) hands it over
    with :meth:`send` and tells of new chunks with :meth:`audio_added`; one
    that hands over samples uses :meth:`start_utterance` and :meth:`add_audio`.
    Either way :meth:`pause_utterance` and :meth:`end_utterance` follow (none
    of these blocks); :meth:`run` keeps a connection up and streams whatever
    is pending. ``on_final`` must journal the caption before returning: the
    audio is dropped right after it. ``on_commit`` hears the settled text of an
    utterance still open (feature ``commit``); its final begins with that text.
    """

    def __init__(
        self,
        options: ClientOptions,
        on_final: Callable[[Caption, Owed | None], None],
        on_partial: Callable[[Partial], None] = lambda p: None,
        on_state: Callable[[str, str], None] = lambda state, detail: None,
        on_commit: Callable[[Commit], None] = lambda c: None,
    ):
        self.options = options
        self.on_final = on_final
        self.on_partial = on_partial
        self.on_state = on_state
        self.on_commit = on_commit
        self.pending: dict[int, Owed] = {}
        self.stats = ClientStats()
        self.ready: Ready | None = None
        self._changed = asyncio.Event()  # new audio, an end, or a final: the sender looks again
        self._progress = asyncio.Event()  # a final arrived: backpressure waiters look again
        self._settled = asyncio.Event()  # set whenever nothing is pending
        self._settled.set()
        self._tasks: list[asyncio.Task] = []  # receiver and sender of the live connection

    # -- producer side -------------------------------------------------------

    def send(self, utterance: Utterance) -> None:
        """Stream ``utterance`` and hold it until its final (one that has ended, such
        as one recovered from the spool, is sent whole)."""
        self.pending[utterance.utt] = Owed(utterance)
        self._settled.clear()
        self._changed.set()
        if utterance.ended:
            self.end_utterance(utterance.utt)

    def audio_added(self, utt: int) -> None:
        """The producer of ``utt`` appended audio to it."""
        if utt in self.pending:
            self._changed.set()

    def start_utterance(self, utt: int, start: float) -> None:
        self.send(Utterance(utt, start))

    def add_audio(self, utt: int, pcm: np.ndarray) -> None:
        item = self.pending.get(utt)
        if item is not None and len(pcm):
            item.utterance.append(pcm)
            self._changed.set()

    def pause_utterance(self, utt: int, samples: int) -> None:
        """The speech of open ``utt`` stopped: its audio so far may be all of it.

        Told to a worker that offers early finals, which then decodes it at once.
        """
        item = self.pending.get(utt)
        if item is not None and not item.ended:
            if item.utterance.samples == samples:
                item.paused = (len(item.utterance.chunks), samples)
                self._changed.set()

    def end_utterance(self, utt: int) -> None:
        item = self.pending.get(utt)
        if item is not None:
            if not item.utterance.ended:  # built here (start_utterance): it ends with its audio
                item.utterance.finish(item.utterance.start + item.utterance.duration)
            item.ended_at = time.monotonic()
            self._changed.set()

    def resend(self, utt: int, start: float, pcm: np.ndarray) -> None:
        """Queue a whole utterance (as an earlier run left it)."""
        self.send(Utterance.whole(utt, start, pcm))

    @property
    def owed(self) -> int:
        return sum(1 for p in self.pending.values() if p.ended)

    async def wait_settled(self, timeout: float | None) -> bool:
        """Wait until every ended utterance has its final; False on timeout."""
        try:
            await asyncio.wait_for(self._settled.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def wait_below(self, owed: int) -> None:
        """Backpressure for fast sources: wait while ``owed`` or more finals are missing."""
        while self.owed >= owed:
            self._progress.clear()
            await self._progress.wait()

    # -- connection ----------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.options.url.startswith("wss://"):
            return None
        return ssl.create_default_context(cafile=str(self.options.ca_file) if self.options.ca_file else None)

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected, stream, reconnect, until ``stop`` is set and nothing is owed."""
        headers = {"Authorization": f"Bearer {self.options.key}"} if self.options.key else None
        attempt = 0
        while not (stop.is_set() and self._settled.is_set()):
            self.on_state("connecting" if attempt == 0 else "reconnecting", f"attempt {attempt + 1}")
            try:
                async with connect(
                    self.options.url,
                    additional_headers=headers,
                    compression=None,
                    open_timeout=self.options.open_timeout_s,
                    ssl=self._ssl_context(),
                    max_size=2**20,
                    user_agent_header="notsound-capture",
                ) as ws:
                    attempt = 0
                    await self._session(ws, stop)
                    return
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    raise AuthError(f"worker refused the key (HTTP {status}): check --key-file / NOTSOUND_KEY") from None
                log.warning("worker answered HTTP %d; retrying", status)
            except InvalidURI as exc:
                raise ClientError(f"bad worker URL {self.options.url!r}: {exc}") from None
            except ssl.SSLCertVerificationError as exc:
                raise ClientError(f"TLS certificate of {self.options.url} not trusted: {exc.verify_message}; "
                                  "pass --ca FILE for a private CA") from None
            except (OSError, InvalidHandshake, ConnectionClosed, asyncio.TimeoutError, _Dropped) as exc:
                log.info("connection to %s lost or refused: %s", self.options.url, exc)
            except _FatalClose as exc:
                raise ClientError(str(exc)) from None
            attempt += 1
            self.stats.reconnects += 1
            delay = min(self.options.backoff_max_s, self.options.backoff_initial_s * 2 ** min(attempt - 1, 10))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _session(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        await ws.send(encode(Hello(session=self.options.session, language=self.options.language,
                                   vocabulary=clean_vocabulary(self.options.vocabulary),
                                   features=(FEATURE_COMMIT,))))
        first = decode_worker(await asyncio.wait_for(ws.recv(), self.options.open_timeout_s))
        if isinstance(first, Error):
            raise _FatalClose(f"worker refused the stream: {first.message}")
        if not isinstance(first, Ready):
            raise _FatalClose(f"worker answered {first.type} to hello")
        self.ready = first
        self.stats.connects += 1
        if self.stats.connects > 1:
            self.stats.resent_utterances += len(self.pending)
        self.on_state("live", f"{first.engine} {first.model}")
        await self._reap()  # whatever an earlier connection left running stops first
        receiver = asyncio.create_task(self._receive(ws))
        sender = asyncio.create_task(self._send(ws, stop))
        self._tasks = [receiver, sender]
        try:
            done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise ConnectionClosed and friends
            if sender in done:  # everything sent and settled: say bye, read the close
                self.on_state("draining", "saying bye")
                await ws.send(encode(Bye()))
                await asyncio.wait_for(receiver, 10)
        finally:
            await self._reap()

    async def _reap(self) -> None:
        """Cancel this client's connection tasks and wait until they are gone."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _send(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        """Stream pending utterances in order; return once stopped and settled."""
        sent: dict[int, _Sent] = {}
        early = self.ready is not None and FEATURE_PAUSE in self.ready.features
        commits = self.ready is not None and FEATURE_COMMIT in self.ready.features
        bucket = TokenBucket(self.options.max_rate, self.options.burst_s)
        while True:
            self._changed.clear()
            for utt in [u for u in sent if u not in self.pending]:  # finalized: forget
                del sent[utt]
            for item in sorted(self.pending.values(), key=lambda p: p.utt):
                utterance = item.utterance
                if item.utt not in sent:
                    sent[item.utt] = _Sent()
                    commit = item.commit if commits else None  # what an earlier connection committed
                    await ws.send(encode(Start(utt=item.utt, t=utterance.start,
                                               commit_samples=commit.samples if commit else 0,
                                               commit_text=commit.text if commit else "")))
                state = sent[item.utt]
                while state.chunks < len(utterance.chunks):
                    # Whatever accumulated goes out in frames of up to 1 s.
                    upto = len(utterance.chunks)
                    for frame in _frames(utterance.chunks[state.chunks:upto]):
                        seconds = len(frame) / BYTES_PER_SAMPLE / SAMPLE_RATE
                        while not bucket.take(seconds):
                            await asyncio.sleep(max(bucket.wait_time(seconds), 0.001))
                        await ws.send(frame)
                    state.chunks = upto
                if not item.ended:
                    paused = item.paused
                    if early and paused is not None and paused[0] == state.chunks and state.pause_at != state.chunks:
                        state.pause_at = state.chunks
                        await ws.send(encode(Pause(utt=item.utt, samples=paused[1])))
                    break  # one open utterance at a time
                if not state.end:
                    state.end = True
                    await ws.send(encode(End(utt=item.utt)))
            if stop.is_set() and self._settled.is_set():
                return
            if stop.is_set():
                await self._changed.wait()
            else:
                await _wait_any(self._changed, stop)

    async def _receive(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                try:
                    msg = decode_worker(frame)
                except ProtocolError as exc:
                    log.warning("ignoring bad message from worker: %s", exc)
                    continue
                self._dispatch(msg)
        except ConnectionClosed:
            pass
        code = ws.close_code
        if code in FATAL_CLOSES:
            raise _FatalClose(f"worker closed the stream ({code}: {ws.close_reason})")
        if code != CLOSE_NORMAL or self.pending:
            raise _Dropped(f"worker closed the stream ({code}: {ws.close_reason})")

    def _dispatch(self, msg: object) -> None:
        if isinstance(msg, Caption):
            item = self.pending.get(msg.utt)
            if item is None or not item.ended:  # already journaled, or not ours to take
                self.stats.duplicate_finals += 1
                return
            self.on_final(msg, item)
            self.stats.finals += 1
            del self.pending[msg.utt]
            if not any(p.ended for p in self.pending.values()):
                self._settled.set()
            self._changed.set()
            self._progress.set()
        elif isinstance(msg, Partial):
            if msg.utt in self.pending:
                self.on_partial(msg)
        elif isinstance(msg, Commit):
            item = self.pending.get(msg.utt)
            if item is not None and (item.commit is None or msg.samples > item.commit.samples):
                item.commit = msg
                self.on_commit(msg)
        elif isinstance(msg, Error):
            log.warning("worker error %s: %s", msg.code, msg.message)


class _FatalClose(Exception):
    """The worker closed in a way that reconnecting cannot mend."""


class _Dropped(Exception):
    """The connection ended with finals still owed: reconnect and resend."""


def _frames(chunks: list[np.ndarray]):
    """The chunks' samples in order, as frames of ``FRAME_SAMPLES`` (the last one
    shorter); each frame's bytes are made as it goes out, the chunks are never joined."""
    size = FRAME_SAMPLES * 2
    frame = bytearray()
    for chunk in chunks:
        data = memoryview(np.ascontiguousarray(chunk, dtype="<i2")).cast("B")
        while data:
            take = size - len(frame)
            frame += data[:take]
            data = data[take:]
            if len(frame) == size:
                yield bytes(frame)
                frame.clear()
    if frame:
        yield bytes(frame)


async def _wait_any(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()

