"""One WebSocket stream on the worker: protocol state, partial cadence, owed finals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from common.limits import TokenBucket
from models import DecodeHints, Engine, Transcript
from wire.protocol import (
    CLOSE_ENGINE_FAILURE,
    CLOSE_GOING_AWAY,
    CLOSE_IDLE,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_RATE_LIMITED,
    CLOSE_UTTERANCE_TOO_LONG,
    FEATURE_PAUSE,
    FEATURE_VOCABULARY,
    MAX_TEXT_FRAME_BYTES,
    SAMPLE_RATE,
    Bye,
    Caption,
    End,
    Error,
    Hello,
    Message,
    Partial,
    Pause,
    ProtocolError,
    Ready,
    Start,
    decode_client,
    encode,
)

from .scheduler import Scheduler

__all__ = ["StreamLimits", "StreamSession"]

#: messages waiting to be sent beyond which new partials are dropped
PARTIAL_BACKLOG = 4
#: characters of a stream's recent finals given to the engine as context
CONTEXT_CHARS = 200
#: a frame this far (power ratio) under the utterance's loudest is silence: -20 dB
QUIET_RATIO = 0.01
#: early decodes of one utterance at most, and the new audio each needs after the last:
#: a pause costs a final-priority decode, so a client cannot buy them with 2-byte frames
MAX_EARLY_DECODES = 8
EARLY_DECODE_GAP_S = 0.5

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamLimits:
    """Per-connection limits.

    Attributes:
        max_utterance_s: longest utterance accepted; longer closes with 4003.
        max_frame_bytes: largest frame websockets reads at all (beyond it the
            connection closes with 1009); frames under it but over the
            protocol's limits (64 KiB text, 32,000 bytes audio) get an error
            and close 4002.
        max_queue_frames: frames buffered before the reader stops reading.
        audio_rate: audio accepted per second of wall time, as a multiple of
            real time (0: no limit); beyond it the stream closes with 4004.
        audio_burst_s: seconds of audio that may arrive at once (a resend
            after a reconnect), on top of ``audio_rate``.
        messages_per_s / message_burst: frames of any kind per second; 4004.
        idle_timeout_s: close with 4005 after this long without a frame (0: never).
        max_owed: finals a stream may owe before the worker stops reading
            from it until some are delivered (TCP backpressure, no error).
    """

    max_utterance_s: float = 30.0
    max_frame_bytes: int = 2 * MAX_TEXT_FRAME_BYTES
    max_queue_frames: int = 16
    audio_rate: float = 2.0
    audio_burst_s: float = 60.0
    messages_per_s: float = 50.0
    message_burst: float = 200.0
    idle_timeout_s: float = 300.0
    max_owed: int = 32


class _Utterance:
    """The open utterance: its audio so far and when a partial was last asked for."""

    def __init__(self, utt: int, start: float):
        self.utt = utt
        self.start = start
        self.chunks: list[np.ndarray] = []
        self.samples = 0
        self.partial_at = 0
        self.peak = 0.0  # mean power of the loudest frame so far
        self.quiet = False  # the newest frame is silence next to the loudest
        #: (samples, future) of the final decode started by a ``pause``
        self.speculative: tuple[int, asyncio.Future] | None = None
        self.early_decodes = 0
        self.early_at = 0  # samples when the last early decode started

    def add(self, pcm: np.ndarray) -> None:
        self.chunks.append(pcm)
        self.samples += len(pcm)
        if len(pcm):
            power = float(np.mean(np.square(pcm, dtype=np.float64)))
            self.peak = max(self.peak, power)
            self.quiet = power < QUIET_RATIO * self.peak

    def drop_speculative(self) -> None:
        if self.speculative is not None:
            self.speculative[1].cancel()
            self.speculative = None

    def audio(self) -> np.ndarray:
        if not self.chunks:
            return np.zeros(0, dtype=np.int16)
        if len(self.chunks) > 1:
            self.chunks = [np.concatenate(self.chunks)]
        return self.chunks[0]


class StreamSession:
    """Serves one connection until ``bye``, a fatal error, disconnect or shutdown."""

    def __init__(self, ws: ServerConnection, scheduler: Scheduler, engine: Engine, limits: StreamLimits,
                 key_id: str | None = None, features: tuple[str, ...] = ()):
        self.ws = ws
        self.key_id = key_id
        self.features = features
        self.context = ""  # tail of this stream's recent finals
        self.audio_s = 0.0
        self.scheduler = scheduler
        self.engine = engine
        self.limits = limits
        self.hello: Hello | None = None
        self.open: _Utterance | None = None
        self.owed: dict[int, asyncio.Task] = {}
        self._last_delivery: asyncio.Task | None = None  # finals go out in the order they ended
        self._outbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self._sender: asyncio.Task | None = None
        self._closing = False
        self._failed = False  # an error was sent and the close is under way: accept nothing more
        self._progress = asyncio.Event()  # set by the sender after each message it sent
        self._audio_bucket = TokenBucket(limits.audio_rate, limits.audio_burst_s)
        self._message_bucket = TokenBucket(limits.messages_per_s, limits.message_burst)

    @property
    def name(self) -> str:
        return self.hello.session if self.hello else "?"

    @property
    def language(self) -> str:
        return self.hello.language if self.hello else "auto"

    # -- main loop -------------------------------------------------------

    async def run(self) -> None:
        self._sender = asyncio.create_task(self._send_loop())
        try:
            await self._read_loop()
        except ConnectionClosed:
            pass
        finally:
            await self._teardown()

    async def _read_loop(self) -> None:
        idle = self.limits.idle_timeout_s or None
        while True:
            try:
                frame = await asyncio.wait_for(self.ws.recv(), idle)
            except asyncio.TimeoutError:
                await self._fail("idle", f"nothing received for {idle:g} s", CLOSE_IDLE, discard=True)
                return
            try:
                if not self._message_bucket.take():
                    raise ProtocolError(
                        f"more than {self.limits.messages_per_s:g} messages per second",
                        code="rate_limited", close_code=CLOSE_RATE_LIMITED)
                done = await self._dispatch(decode_client(frame))
            except ProtocolError as exc:
                await self._fail(exc.code, str(exc), exc.close_code, discard=True)
                return
            if done:
                return
            await self._wait_for_room()

    @property
    def backlog(self) -> int:
        """Finals owed: still being transcribed, or transcribed and not yet sent."""
        return len(self.owed) + self._outbox.qsize()

    async def _wait_for_room(self) -> None:
        """Stop reading while ``max_owed`` finals are owed (a client that does not read its
        finals is throttled by TCP instead of being buffered without bound)."""
        while self.backlog >= self.limits.max_owed and self._sender is not None and not self._sender.done():
            self._progress.clear()
            waiters = [self._sender, asyncio.ensure_future(self._progress.wait()), *self.owed.values()]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiters[1].cancel()

    async def _dispatch(self, msg: Message | bytes) -> bool:
        """Handle one message; True when the stream is over."""
        if self._failed:
            return False  # closing after an error: what still arrives is read and dropped
        if isinstance(msg, bytes):
            self._on_audio(msg)
        elif isinstance(msg, Hello):
            await self._on_hello(msg)
        elif self.hello is None:
            raise ProtocolError(f"{msg.type} before hello", code="no_hello")
        elif isinstance(msg, Start):
            self._on_start(msg)
        elif isinstance(msg, End):
            self._on_end(msg)
        elif isinstance(msg, Pause):
            self._on_pause(msg)
        elif isinstance(msg, Bye):
            await self.drain_and_close(None, CLOSE_NORMAL)
            return True
        return False

    async def _on_hello(self, msg: Hello) -> None:
        if self.hello is not None:
            raise ProtocolError("second hello on one connection", code="duplicate_hello")
        self.hello = msg
        log.info("stream %s opened (language %s)", msg.session, msg.language)
        self._outbox.put_nowait(Ready(
            engine=self.engine.name,
            model=self.engine.model_ref,
            max_utterance_s=self.limits.max_utterance_s,
            features=self.features,
        ))

    def _on_start(self, msg: Start) -> None:
        if self.open is not None:
            raise ProtocolError(f"start of {msg.utt} while {self.open.utt} is open", code="utterance_open")
        if self._closing:
            raise ProtocolError("worker is shutting down", code="shutting_down", close_code=CLOSE_GOING_AWAY)
        self.open = _Utterance(msg.utt, msg.t)

    def _on_audio(self, data: bytes) -> None:
        if self.hello is None or self.open is None:
            raise ProtocolError("audio outside an utterance", code="audio_outside_utterance")
        utt = self.open
        pcm = np.frombuffer(data, dtype="<i2")
        if utt.samples + len(pcm) > self.limits.max_utterance_s * SAMPLE_RATE:
            raise ProtocolError(
                f"utterance {utt.utt} is longer than {self.limits.max_utterance_s:g} s",
                code="utterance_too_long",
                close_code=CLOSE_UTTERANCE_TOO_LONG,
            )
        if not self._audio_bucket.take(len(pcm) / SAMPLE_RATE):
            raise ProtocolError(
                f"audio arrives faster than {self.limits.audio_rate:g}x real time",
                code="rate_limited", close_code=CLOSE_RATE_LIMITED)
        if len(pcm):
            utt.drop_speculative()  # speech went on after the pause
        utt.add(pcm)
        self.audio_s += len(pcm) / SAMPLE_RATE
        interval = self.scheduler.partial_interval_s(utt.samples / SAMPLE_RATE)
        # A partial waits while the newest audio is silence: it could show no new word,
        # and in the pause after the last one it would hold up the final's decode.
        if utt.samples - utt.partial_at >= interval * SAMPLE_RATE and not utt.quiet:
            utt.partial_at = utt.samples
            self._request_partial(utt)

    def _on_end(self, msg: End) -> None:
        utt = self.open
        if utt is None or utt.utt != msg.utt:
            raise ProtocolError(f"end of {msg.utt}, which is not the open utterance", code="not_open")
        self.open = None
        if utt.speculative is not None and utt.speculative[0] == utt.samples:
            future = utt.speculative[1]  # decoded (or decoding) exactly this audio already
        else:
            utt.drop_speculative()
            future = self.scheduler.submit_final(utt.audio(), self.language, self._hints())
        end = utt.start + utt.samples / SAMPLE_RATE
        previous = self.owed.pop(utt.utt, None)
        if previous is not None:  # the same number resent: only the newest counts
            previous.cancel()
        task = asyncio.create_task(self._deliver_final(utt.utt, utt.start, end, future, self._last_delivery))
        self.owed[utt.utt] = self._last_delivery = task

    def _on_pause(self, msg: Pause) -> None:
        utt = self.open
        if utt is None or utt.utt != msg.utt:
            raise ProtocolError(f"pause of {msg.utt}, which is not the open utterance", code="not_open")
        if FEATURE_PAUSE not in self.features:
            raise ProtocolError("pause was not offered in ready", code="unexpected_type")
        if msg.samples != utt.samples:
            raise ProtocolError(f"pause of {msg.utt} at {msg.samples} samples, but {utt.samples} arrived",
                                code="bad_pause")
        if utt.speculative is not None and utt.speculative[0] == utt.samples:
            return  # already decoding exactly this audio
        if utt.early_decodes and (utt.early_decodes >= MAX_EARLY_DECODES
                                  or utt.samples - utt.early_at < EARLY_DECODE_GAP_S * SAMPLE_RATE):
            return  # too many or too soon: the final is decoded at the end as without the feature
        utt.early_decodes += 1
        utt.early_at = utt.samples
        utt.drop_speculative()
        future = self.scheduler.submit_final(utt.audio(), self.language, self._hints())
        utt.speculative = (utt.samples, future)
        samples = utt.samples

        def show(done: asyncio.Future) -> None:
            # The final's text, shown at once while the pause is confirmed.
            if done.cancelled() or done.exception() is not None:
                return
            text = done.result().text
            if self.open is utt and utt.samples == samples and text and self._outbox.qsize() < PARTIAL_BACKLOG:
                self._outbox.put_nowait(Partial(utt=utt.utt, text=text))

        future.add_done_callback(show)

    def _hints(self) -> DecodeHints:
        vocabulary = self.hello.vocabulary if self.hello and FEATURE_VOCABULARY in self.features else ()
        return DecodeHints(context=self.context, vocabulary=vocabulary)

    def _remember(self, text: str) -> None:
        """Keep the tail of the stream's finals (whole words where there are spaces)."""
        joined = f"{self.context} {text}".strip() if text else self.context
        if len(joined) > CONTEXT_CHARS:
            cut = joined[-CONTEXT_CHARS:]
            space = cut.find(" ")
            joined = cut[space + 1:] if 0 <= space < CONTEXT_CHARS // 4 else cut
        self.context = joined

    # -- answers -----------------------------------------------------------

    def _request_partial(self, utt: _Utterance) -> None:
        def deliver(result: Transcript) -> None:
            # A partial is only worth sending to a client that keeps up with what it is sent.
            if self.open is utt and result.text and self._outbox.qsize() < PARTIAL_BACKLOG:
                self._outbox.put_nowait(Partial(utt=utt.utt, text=result.text))

        self.scheduler.request_partial(
            key=(id(self), utt.utt),
            audio=utt.audio(),
            deliver=deliver,
            is_stale=lambda: self.open is not utt or utt.speculative is not None,
            language=self.language,
            hints=self._hints(),
        )

    async def _deliver_final(self, utt: int, start: float, end: float, future: asyncio.Future,
                             ahead: asyncio.Task | None) -> None:
        """Send ``utt``'s final once decoded and once the final ended before it went out
        (the scheduler may decode a later one first when it batches by length)."""
        try:
            result: Transcript = await future
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:  # engine failure: the client resends after reconnecting
            log.error("stream %s: engine failed on utterance %d: %s", self.name, utt, exc)
            await self._fail("engine_failure", f"engine failed on utterance {utt}; reconnect and resend",
                             CLOSE_ENGINE_FAILURE)
            return
        if ahead is not None and not ahead.done():
            await asyncio.wait([ahead])  # sent, failed or cancelled: either way it is out of the way
        self._outbox.put_nowait(Caption(
            utt=utt, start=start, end=end, text=result.text, lang=result.lang,
            emotion=result.emotion, events=tuple(result.events),
        ))
        self.owed.pop(utt, None)
        self._remember(result.text)

    async def _send_loop(self) -> None:
        while True:
            msg = await self._outbox.get()
            if msg is None:
                return
            try:
                await self.ws.send(encode(msg))
            except ConnectionClosed:
                return
            self._progress.set()

    # -- endings -----------------------------------------------------------

    async def drain_and_close(self, timeout: float | None, code: int = CLOSE_GOING_AWAY) -> None:
        """Deliver every owed final (waiting at most ``timeout``), then close with ``code``."""
        self._closing = True
        owed = list(self.owed.values())
        if owed:
            _, pending = await asyncio.wait(owed, timeout=timeout)
            for task in pending:
                task.cancel()
        await self._flush_outbox()
        reason = "bye" if code == CLOSE_NORMAL else "worker shutting down"
        with contextlib.suppress(ConnectionClosed):
            await self.ws.close(code, reason)

    async def _flush_outbox(self) -> None:
        if self._sender is not None and not self._sender.done():
            self._outbox.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender

    async def refuse(self, code: str, message: str, close_code: int) -> None:
        """Send an error and close, from outside the read loop (limits, revoked key)."""
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop())
        await self._fail(code, message, close_code)

    async def _fail(self, code: str, message: str, close_code: int = CLOSE_PROTOCOL_ERROR,
                    discard: bool = False) -> None:
        """Send ``error`` and close. ``discard`` (only from the read loop, the one reader):
        keep reading and dropping frames meanwhile, so that websockets, which stops reading
        when its queue is full, still sees the client's close frame."""
        self._failed = True
        log.warning("stream %s: %s (%s); closing %d", self.name, message, code, close_code)
        self._outbox.put_nowait(Error(code=code, message=message))
        await self._flush_outbox()
        closing = asyncio.create_task(self.ws.close(close_code, code[:100]))
        drain = None
        if discard:
            # Our close frame goes out first, so nothing read afterwards can change the close code.
            while self.ws.protocol.close_sent is None and not closing.done():
                await asyncio.sleep(0.005)
            drain = asyncio.create_task(self._discard_incoming())
        try:
            with contextlib.suppress(ConnectionClosed):
                await closing
        finally:
            if drain is not None:
                drain.cancel()

    async def _discard_incoming(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in self.ws:
                pass

    async def _teardown(self) -> None:
        me = id(self)
        self.scheduler.cancel_partials(lambda key: key[0] == me)
        if self.open is not None:
            self.open.drop_speculative()
        for task in self.owed.values():
            task.cancel()
        self.owed.clear()
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        log.info("stream %s closed", self.name)
