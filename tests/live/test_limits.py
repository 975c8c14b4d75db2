"""Per-stream limits under fire: each offender gets its error and the documented close code
while a well-behaved client on the same worker keeps getting every caption.

The limits of the worker in these tests are small so that each one trips
quickly: 1 s of audio burst at 2x real time, 20 messages per second (bursts of
80), 1.5 s idle timeout, 1 s longest utterance.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import psutil
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request

from bench.fake_engine import FakeEngine, fake_text
from live.server import Worker
from models import EngineOptions, Transcript, create_engine
from wire.protocol import (
    CLOSE_FRAME_TOO_LARGE,
    CLOSE_IDLE,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_RATE_LIMITED,
    CLOSE_UTTERANCE_TOO_LONG,
    MAX_AUDIO_FRAME_BYTES,
    MAX_TEXT_FRAME_BYTES,
    Bye,
    Caption,
    End,
    Error,
    Hello,
    Start,
    decode_worker,
    encode,
)

from .conftest import RawClient, collect_until_close, noise, worker_settings

LIMITS = dict(audio_rate=2.0, audio_burst_s=1.0, messages_per_s=20.0, idle_timeout_s=1.5,
              max_utterance_s=1.0, drain_timeout_s=5.0)


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    engine = create_engine("fake", EngineOptions(model="per_call=0.005"))
    async with Worker(worker_settings(**LIMITS), engine=engine) as running:
        yield running




async def _send_all(ws: ClientConnection, frames: Sequence[str | bytes]) -> None:
    """Send frames until the worker closes the connection (it may close before the last)."""
    for frame in frames:
        try:
            await ws.send(frame)
        except ConnectionClosed:
            return


class Bystander:
    """A well-behaved client: 0.3 s utterances at real time, back to back, until told to finish."""

    def __init__(self, client: RawClient):
        self.client = client
        self.sent: dict[int, str] = {}  # utt -> the text its final must carry
        self.finish = asyncio.Event()
        self.first_final = asyncio.Event()
        self.close_code: int | None = None
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        reader = asyncio.create_task(self._read())
        utt, tail = 0, 2  # after `finish`, two more utterances
        while tail:
            if self.finish.is_set():
                tail -= 1
            pcm = noise(0.3, 1000 + utt)
            self.sent[utt] = fake_text(pcm)
            await self.client.send_utterance(utt, pcm, t=utt * 0.3, frame_s=0.1, pace=0.1)
            utt += 1
        await self.client.ws.send(encode(Bye()))
        await asyncio.wait_for(reader, 10)

    async def _read(self) -> None:
        try:
            async for frame in self.client.ws:
                msg = decode_worker(frame)
                self.client.received.append(msg)
                if isinstance(msg, Caption):
                    self.first_final.set()
        except ConnectionClosed:
            pass
        self.close_code = self.client.ws.close_code

    async def done(self, timeout: float = 20.0) -> None:
        self.finish.set()
        await asyncio.wait_for(self.task, timeout)

    def check(self) -> None:
        """Every utterance got exactly one final with the right text, and no error."""
        got = {c.utt: c.text for c in self.client.finals}
        assert len(self.client.finals) == len(got), "a final came twice"
        assert got == self.sent
        assert not [m for m in self.client.received if isinstance(m, Error)]
        assert self.close_code == 1000


async def _open_bystander(worker: Worker) -> Bystander:
    bystander = Bystander(await RawClient.open(worker.url, session="bystander"))
    await asyncio.wait_for(bystander.first_final.wait(), 10)  # running before the offence starts
    return bystander


# -- the offences ----------------------------------------------------------------------

Offence = Callable[[ClientConnection], Awaitable[None]]


async def _audio_faster_than_allowed(ws: ClientConnection) -> None:
    # Five 0.5 s utterances at once: 2.5 s of audio against a 1 s burst (one frame each, so few
    # frames are left unread when the worker closes).
    for utt in range(5):
        await _send_all(ws, [encode(Start(utt=utt, t=float(utt))), noise(0.5, utt).tobytes(),
                             encode(End(utt=utt))])


async def _too_many_messages(ws: ClientConnection) -> None:
    # 120 tiny frames in about a quarter of a second against 20 messages per second with bursts
    # of 80. Paced just enough that the worker reads them as they come: a flood that piles up
    # unread frames is covered by test_offender_sees_the_close_promptly_even_with_many_frames_unread.
    await ws.send(encode(Start(utt=0, t=0.0)))
    for _ in range(120):
        try:
            await ws.send(b"\x00\x00")
        except ConnectionClosed:
            return
        await asyncio.sleep(0.002)


async def _idle(ws: ClientConnection) -> None:
    """Say hello, then nothing."""


async def _utterance_too_long(ws: ClientConnection) -> None:
    pcm = noise(1.5, 3)
    await _send_all(ws, [encode(Start(utt=0, t=0.0))] + [pcm[i:i + 4000].tobytes() for i in range(0, len(pcm), 4000)])


async def _odd_audio_frame(ws: ClientConnection) -> None:
    await _send_all(ws, [encode(Start(utt=0, t=0.0)), b"\x01\x02\x03"])


async def _audio_frame_over_one_second(ws: ClientConnection) -> None:
    await _send_all(ws, [encode(Start(utt=0, t=0.0)), bytes(MAX_AUDIO_FRAME_BYTES + 2)])


async def _text_frame_over_64k(ws: ClientConnection) -> None:
    await _send_all(ws, [json.dumps({"type": "end", "utt": 0, "pad": "x" * MAX_TEXT_FRAME_BYTES})])


def _beyond_max_size(binary: bool) -> Offence:
    async def offence(ws: ClientConnection) -> None:
        size = worker_settings().stream_limits().max_frame_bytes + 1
        await _send_all(ws, [bytes(size) if binary else "x" * size])

    return offence


# name: (offence, error code or None, close code)
OFFENCES: dict[str, tuple[Offence, str | None, int]] = {
    "audio-faster-than-the-rate": (_audio_faster_than_allowed, "rate_limited", CLOSE_RATE_LIMITED),
    "too-many-messages-per-second": (_too_many_messages, "rate_limited", CLOSE_RATE_LIMITED),
    "idle-after-hello": (_idle, "idle", CLOSE_IDLE),
    "utterance-over-max-utterance-s": (_utterance_too_long, "utterance_too_long", CLOSE_UTTERANCE_TOO_LONG),
    "odd-length-audio-frame": (_odd_audio_frame, "odd_audio_frame", CLOSE_PROTOCOL_ERROR),
    "audio-frame-over-one-second": (_audio_frame_over_one_second, "frame_too_large", CLOSE_FRAME_TOO_LARGE),
    "text-frame-over-64k": (_text_frame_over_64k, "frame_too_large", CLOSE_FRAME_TOO_LARGE),
    "text-frame-over-max-size": (_beyond_max_size(binary=False), None, 1009),
    "binary-frame-over-max-size": (_beyond_max_size(binary=True), None, 1009),
}


@pytest.mark.parametrize("name", list(OFFENCES))
async def test_offender_gets_error_and_close_code_while_a_good_client_gets_every_final(name, worker):
    offence, error_code, close_code = OFFENCES[name]
    bystander = await _open_bystander(worker)
    offender = await RawClient.open(worker.url, session="offender")

    await offence(offender.ws)
    received, closed_with = await collect_until_close(offender.ws)

    assert closed_with == close_code
    errors = [m for m in received if isinstance(m, Error)]
    if error_code is None:  # websockets refuses the frame itself: 1009 and no JSON at all
        assert errors == []
    else:
        assert [e.code for e in errors] == [error_code]
        assert received[-1] == errors[0], "the error is the last word before the close"
        assert errors[0].message
    await bystander.done()
    bystander.check()
    assert worker.health()["status"] == "ok"


async def test_offender_sees_the_close_promptly_even_with_many_frames_unread(worker):
    offender = await RawClient.open(worker.url, session="offender")
    await _send_all(offender.ws, [encode(Start(utt=0, t=0.0))] + [b"\x00\x00"] * 150)  # 70 over
    try:
        # websockets would wait out its 10 s close timeout if the worker did not drain the
        # unread frames: anything well under that is prompt, even on a slow machine.
        received, closed_with = await collect_until_close(offender.ws, timeout=8)
    finally:  # do not keep the worker's stop waiting out the handshake: drop both ends
        offender.ws.transport.abort()
        for session in list(worker.sessions):
            session.ws.transport.abort()
    assert closed_with == CLOSE_RATE_LIMITED
    assert [m.code for m in received if isinstance(m, Error)] == ["rate_limited"]


async def test_idle_timeout_also_closes_a_connection_that_never_says_hello(worker):
    bystander = await _open_bystander(worker)
    async with connect(worker.url, compression=None) as ws:
        received, closed_with = await collect_until_close(ws)
    assert closed_with == CLOSE_IDLE
    assert [(type(m), m.code) for m in received] == [(Error, "idle")]
    await bystander.done()
    bystander.check()


async def test_resend_burst_within_audio_burst_s_is_accepted(worker):
    """A reconnecting client re-sends its owed audio at once: up to ``audio_burst_s`` is fine."""
    client = await RawClient.open(worker.url, session="resend")
    clips = [noise(0.3, 50 + i) for i in range(3)]  # 0.9 s at once, under the 1 s burst
    for utt, pcm in enumerate(clips):
        await client.send_utterance(utt, pcm, frame_s=0.3)
    finals = await client.wait_finals(3)
    assert [c.text for c in finals] == [fake_text(p) for p in clips]
    await client.ws.close()


# -- memory per connection ------------------------------------------------------------

#: Each socket buffer of the flood test, in bytes, set on both ends (Linux doubles it and stops
#: autotuning it), so what the kernel holds is small and the same on every machine.
SMALL_SOCKET_BUFFER = 4096
#: Finals that may sit between the worker's send queue and a client that reads none, with those
#: buffers: the worker's transport (websockets' 32 KiB write limit, two of these finals), the two
#: kernel buffers and the client library (its one queued frame and the one it parses), with room
#: to spare. Autotuned buffers hold hundreds of them; a worker that keeps reading, without bound.
PIPE_FINALS = 10


class VerboseEngine(FakeEngine):
    """The fake engine with long captions (16 KB each), so unread finals fill socket buffers fast."""

    def transcribe(self, batch, language="auto", **options):
        return [Transcript(text=t.text + " " + "word " * 3200, lang=t.lang, emotion=t.emotion)
                for t in super().transcribe(batch, language, **options)]


def _small_send_buffer(connection: ServerConnection, request: Request) -> None:
    """The worker's request hook: a small send buffer on the worker's end of each stream."""
    connection.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_SOCKET_BUFFER)


async def _stuck_client(worker: Worker) -> ClientConnection:
    """A client that sends audio and never reads, with a small receive window."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_SOCKET_BUFFER)  # before the handshake
    await asyncio.to_thread(sock.connect, ("127.0.0.1", worker.port))
    sock.setblocking(False)
    # max_queue=1: the client library itself stops reading after one frame, like a stuck app.
    ws = await connect(worker.url, compression=None, sock=sock, max_queue=1)
    await ws.send(encode(Hello(session="flood")))
    return ws


async def _wait_for_stall(worker: Worker, max_backlog: int, max_accepted: int, utterance_s: float,
                          quiet_s: float = 1.0, deadline_s: float = 30.0) -> None:
    """Watch the flooding stream from the worker's side until it stops reading: ``max_owed``
    finals owed and no audio read for ``quiet_s``. Fails as soon as the finals it holds pass
    ``max_backlog`` or the utterances it has read (a count that only grows) pass
    ``max_accepted``, and after ``deadline_s`` when it never stops reading. A pause mistaken
    for the stall on a busy machine ends the wait early, with every bound already checked."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline_s
    backlogs: list[int] = []
    accepted, still_since = -1, loop.time()
    while True:
        session = next(iter(worker.sessions), None)
        if session is not None:
            backlogs.append(session.backlog)
            assert session.backlog <= max_backlog, f"answers piled up for a client that reads none: {backlogs}"
            if round(session.audio_s / utterance_s) != accepted:
                accepted, still_since = round(session.audio_s / utterance_s), loop.time()
                assert accepted <= max_accepted, f"the worker read {accepted} utterances for a client that reads none"
            elif session.backlog >= session.limits.max_owed and loop.time() - still_since >= quiet_s:
                return
        assert loop.time() < give_up, f"the worker never stopped reading: {accepted} utterances read"
        await asyncio.sleep(0.05)


async def test_client_that_never_reads_finals_is_throttled_not_buffered():
    max_owed = 4
    settings = worker_settings(max_utterance_s=1.0, audio_rate=0.0, messages_per_s=0.0, max_owed=max_owed,
                               idle_timeout_s=0.0, drain_timeout_s=1.0)
    engine = VerboseEngine(EngineOptions(model="per_call=0"))
    async with Worker(settings, engine=engine, request_hook=_small_send_buffer) as worker:
        ws = await _stuck_client(worker)
        client = RawClient(ws)
        pcm = noise(1.0, 9)  # max-length utterances

        async def flood() -> None:
            for utt in range(10**6):
                await client.send_utterance(utt, pcm, frame_s=1.0)

        process = psutil.Process()
        rss0 = process.memory_info().rss
        task = asyncio.create_task(flood())
        try:
            await _wait_for_stall(worker, max_backlog=max_owed + 2, max_accepted=max_owed + PIPE_FINALS,
                                  utterance_s=1.0)
            grown_mb = (process.memory_info().rss - rss0) / 2**20
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            ws.transport.abort()  # a stuck client does not answer a close handshake either
        assert grown_mb < 64, f"worker memory grew {grown_mb:.0f} MB before it stopped reading"
