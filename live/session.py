"""One WebSocket stream on the worker: drives a :class:`~live.stream.StreamCore` over asyncio.

The core decides; :class:`StreamSession` reads frames into it, carries out
the actions it returns (scheduler jobs, the send queue, the close) and feeds
back what the engine and the socket report. Reading stops while the stream
owes ``max_owed`` finals (TCP backpressure) and after ``bye``; once the close
is under way, frames still arriving are read and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from models import Engine
from wire.protocol import CLOSE_GOING_AWAY, SAMPLE_RATE, Message, Ready, encode

from .actions import (
    Action,
    CancelFinal,
    CancelPolish,
    Close,
    RequestPartial,
    Send,
    SubmitFinal,
    SubmitPolish,
)
from .scheduler import Scheduler
from .stream import StreamCore, StreamLimits

__all__ = ["StreamSession"]

log = logging.getLogger(__name__)


class StreamSession:
    """Serves one connection until ``bye``, a fatal error, disconnect or shutdown."""

    def __init__(self, ws: ServerConnection, scheduler: Scheduler, engine: Engine, limits: StreamLimits,
                 key_id: str | None = None, features: tuple[str, ...] = ()):
        self.ws = ws
        self.key_id = key_id
        self.features = features
        self.scheduler = scheduler
        self.engine = engine
        self.limits = limits
        offer = Ready(engine=engine.name, model=engine.model_ref, max_utterance_s=limits.max_utterance_s,
                      features=features)
        self.core = StreamCore(limits, offer, scheduler.partial_interval_s)
        self._jobs: dict[int, asyncio.Future] = {}  # final decodes whose outcome the core awaits
        self._outbox: asyncio.Queue[Message | None] = asyncio.Queue()  # None: stop sending
        self._sender: asyncio.Task | None = None
        self._progress = asyncio.Event()  # set by the sender after each message it sent
        self._closer: asyncio.Task | None = None  # sends what is queued, then closes
        self._closer_started = asyncio.Event()

    @property
    def name(self) -> str:
        return self.core.name

    @property
    def language(self) -> str:
        return self.core.language

    @property
    def audio_s(self) -> float:
        return self.core.audio_s

    @property
    def owed(self) -> tuple[int, ...]:
        """Utterances whose final is owed."""
        return self.core.owed

    @property
    def backlog(self) -> int:
        """Finals owed: still being transcribed, or transcribed and not yet sent."""
        return self.core.backlog

    # -- main loop -------------------------------------------------------

    async def run(self) -> None:
        self._start_sender()
        try:
            await self._read_loop()
        except ConnectionClosed:
            pass
        finally:
            await self._teardown()

    async def _read_loop(self) -> None:
        core = self.core
        while core.accepting:
            try:
                frame = await asyncio.wait_for(self.ws.recv(), core.idle_timeout_s)
            except asyncio.TimeoutError:
                self._execute(core.idle())
            else:
                self._execute(core.receive(frame))
                self.scheduler.set_speaking(id(self), core.utterance_open)
            if core.accepting:
                await self._wait_for_room()
        await self._close_handshake()

    async def _wait_for_room(self) -> None:
        """Stop reading while ``max_owed`` finals are owed (a client that does not read its
        finals is throttled by TCP instead of being buffered without bound)."""
        while self.core.backlog >= self.limits.max_owed and self._sender is not None and not self._sender.done():
            self._progress.clear()
            progress = asyncio.ensure_future(self._progress.wait())
            try:
                await asyncio.wait([self._sender, progress], return_when=asyncio.FIRST_COMPLETED)
            finally:
                progress.cancel()

    async def _close_handshake(self) -> None:
        """Wait for the close to be queued (after ``bye``: once the owed finals are), then
        read and drop frames until the close is done, so that websockets, which stops
        reading when its queue is full, still sees the client's close frame. Our close frame
        goes out first, so nothing read afterwards can change the close code."""
        await self._closer_started.wait()
        closer = self._closer
        assert closer is not None
        while self.ws.protocol.close_sent is None and not closer.done():
            await asyncio.wait([closer], timeout=0.005)
        if closer.done():
            return
        drain = asyncio.create_task(self._discard_incoming())
        try:
            await asyncio.wait([closer])
        finally:
            drain.cancel()

    async def _discard_incoming(self) -> None:
        try:
            async for _ in self.ws:
                pass
        except ConnectionClosed:
            pass

    # -- actions -----------------------------------------------------------

    def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("stream %s: %s", self.name, _describe(action))
            if isinstance(action, Send):
                self._outbox.put_nowait(action.message)
                if isinstance(action.message, Ready):
                    log.info("stream %s opened (language %s)", self.name, self.language)
            elif isinstance(action, SubmitFinal):
                future = self.scheduler.submit_final(action.audio, action.language, action.hints)
                self._jobs[action.job] = future
                future.add_done_callback(functools.partial(self._final_done, action.job, action.utt))
            elif isinstance(action, CancelFinal):
                withdrawn = self._jobs.pop(action.job, None)
                if withdrawn is not None:
                    withdrawn.cancel()
            elif isinstance(action, RequestPartial):
                self._request_partial(action)
            elif isinstance(action, SubmitPolish):
                future = self.scheduler.submit_polish(action.audio, action.language, action.hints)
                self._jobs[action.job] = future
                future.add_done_callback(functools.partial(self._polish_done, action.job))
            elif isinstance(action, CancelPolish):
                withdrawn = self._jobs.pop(action.job, None)
                if withdrawn is not None:
                    withdrawn.cancel()
            elif isinstance(action, Close):
                failure = self.core.failure
                if failure is not None:
                    log.warning("stream %s: %s (%s); closing %d", self.name, failure.message, failure.code,
                                action.code)
                self._outbox.put_nowait(None)  # the sender stops after what was queued before
                self._closer = asyncio.create_task(self._close(action))
                self._closer_started.set()

    def _final_done(self, job: int, utt: int, future: asyncio.Future) -> None:
        if self._jobs.pop(job, None) is None:
            return  # withdrawn: its outcome does not matter
        error = asyncio.CancelledError() if future.cancelled() else future.exception()
        if error is None:
            self._execute(self.core.final_decoded(job, future.result()))
            return
        actions = self.core.final_failed(job)
        if actions:  # the stream fails with it
            log.error("stream %s: engine failed on utterance %d: %s", self.name, utt, error)
        self._execute(actions)

    def _polish_done(self, job: int, future: asyncio.Future) -> None:
        if self._jobs.pop(job, None) is None:
            return  # withdrawn
        error = asyncio.CancelledError() if future.cancelled() else future.exception()
        if error is None:
            self._execute(self.core.polish_decoded(job, future.result()))
        else:
            self._execute(self.core.polish_failed(job, str(error) or type(error).__name__))

    def _request_partial(self, action: RequestPartial) -> None:
        ticket = action.ticket
        self.scheduler.request_partial(
            key=(id(self), action.utt),
            audio=action.audio,
            deliver=lambda result: self._execute(self.core.partial_decoded(ticket, result.text, action.samples)),
            is_stale=lambda: self.core.partial_stale(ticket),
            language=action.language,
            hints=action.hints,
        )

    def _start_sender(self) -> None:
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop())

    async def _send_loop(self) -> None:
        while True:
            msg = await self._outbox.get()
            if msg is None:
                return
            self.core.taken()
            try:
                await self.ws.send(encode(msg))
            except ConnectionClosed:
                return
            self._progress.set()

    async def _close(self, close: Close) -> None:
        assert self._sender is not None
        await asyncio.wait([self._sender])
        with contextlib.suppress(ConnectionClosed):
            await self.ws.close(close.code, close.reason)

    # -- endings -----------------------------------------------------------

    async def drain_and_close(self, timeout: float | None, code: int = CLOSE_GOING_AWAY) -> None:
        """Deliver every owed final (waiting at most ``timeout``), then close with ``code``."""
        self._start_sender()
        self._execute(self.core.drain(code))
        try:
            await asyncio.wait_for(self._closer_started.wait(), timeout)
        except asyncio.TimeoutError:
            self._execute(self.core.give_up())
        await self._closed()

    async def refuse(self, code: str, message: str, close_code: int) -> None:
        """Send an error and close, from outside the read loop (limits, revoked key)."""
        self._start_sender()
        self._execute(self.core.refuse(code, message, close_code))
        await self._closed()

    async def _closed(self) -> None:
        """Wait until what was queued before the close is sent and the close is done."""
        await self._closer_started.wait()
        assert self._closer is not None
        if not self._closer.done():
            await asyncio.wait([self._closer])

    async def _teardown(self) -> None:
        me = id(self)
        self.scheduler.cancel_partials(lambda key: key[0] == me)
        self.scheduler.set_speaking(me, False)
        jobs, self._jobs = self._jobs, {}
        for future in jobs.values():
            future.cancel()
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
            await asyncio.wait([self._sender])
        log.info("stream %s closed", self.name)


def _describe(action: Action) -> str:
    """One line for the debug log: the action's kind and sizes, never the text or audio."""
    if isinstance(action, Send):
        msg = action.message
        return f"send {msg.type}" + (f" utt {msg.utt}" if hasattr(msg, "utt") else "")
    if isinstance(action, (SubmitFinal, RequestPartial)):
        kind = "final" if isinstance(action, SubmitFinal) else "partial"
        return f"{kind} of utt {action.utt}: {len(action.audio) / SAMPLE_RATE:.2f} s"
    return type(action).__name__
