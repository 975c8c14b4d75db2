"""The caption worker end to end: a real server on loopback port 0, the fake engine, raw clients."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench.fake_engine import FakeEngine, fake_text
from live.server import Worker
from wire.protocol import (
    CLOSE_ENGINE_FAILURE,
    CLOSE_FRAME_TOO_LARGE,
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNSUPPORTED_VERSION,
    CLOSE_UTTERANCE_TOO_LONG,
    MAX_TEXT_FRAME_BYTES,
    Bye,
    Caption,
    End,
    Error,
    Hello,
    Partial,
    Ready,
    Start,
    decode_worker,
    encode,
)

from .conftest import RawClient, collect_until_close, noise

FRAME = 1600  # samples in the 0.1 s frames RawClient.send_utterance sends by default


# -- helpers -----------------------------------------------------------------


class Recorder:
    """Reads everything a client receives in the background, with arrival times and close code."""

    def __init__(self, client: RawClient):
        self.client = client
        self.ws = client.ws
        self.times: list[float] = [time.monotonic()] * len(client.received)
        self.close_code: int | None = None
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.ws.recv()
                self.client.received.append(decode_worker(frame))
                self.times.append(time.monotonic())
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self._changed.set()

    @property
    def received(self) -> list:
        return self.client.received

    @property
    def finals(self) -> list[Caption]:
        return self.client.finals

    @property
    def partials(self) -> list[Partial]:
        return self.client.partials

    @property
    def errors(self) -> list[Error]:
        return [m for m in self.received if isinstance(m, Error)]

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async def _wait() -> None:
            while not predicate():
                if self.task.done():
                    raise AssertionError(f"closed ({self.close_code}) before the condition held; "
                                         f"received {self.received!r}")
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(_wait(), timeout)

    async def wait_finals(self, count: int, timeout: float = 10.0) -> list[Caption]:
        await self.until(lambda: len(self.finals) >= count, timeout)
        return self.finals

    async def closed(self, timeout: float = 10.0) -> int | None:
        await asyncio.wait_for(asyncio.shield(self.task), timeout)
        return self.close_code


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until a condition on worker state holds (checked every few ms)."""
    async def _poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(_poll(), timeout)


async def http_get(port: int, path: str) -> tuple[int, dict]:
    """A plain HTTP/1.1 GET over an asyncio TCP connection: (status, JSON body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = dict(
        line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if ": " in line
    )
    length = int(headers.get("Content-Length", len(body)))
    return status, json.loads(body[:length])


async def stream_count(worker: Worker) -> int:
    status, body = await http_get(worker.port, "/health")
    assert status == 200
    return body["streams"]


async def wait_stream_count(worker: Worker, expected: int, timeout: float = 10.0) -> None:
    async def _poll() -> None:
        while await stream_count(worker) != expected:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(_poll(), timeout)


def prefix_texts(pcm: np.ndarray) -> set[str]:
    """Every text a partial of ``pcm`` may carry (the audio so far, in whole frames)."""
    ends = list(range(FRAME, len(pcm), FRAME)) + [len(pcm)]
    return {fake_text(pcm[:k]) for k in ends}


OpenClient = Callable[..., Awaitable[Recorder]]




@pytest.fixture
async def open_client() -> AsyncIterator[OpenClient]:
    """Open clients (hello answered) whose frames are recorded in the background."""
    recorders: list[Recorder] = []

    async def _open(worker: Worker, session: str = "test", language: str = "auto") -> Recorder:
        client = await RawClient.open(worker.url, session=session, language=language)
        recorder = Recorder(client)
        recorders.append(recorder)
        return recorder

    yield _open
    for recorder in recorders:
        await recorder.ws.close()
        recorder.task.cancel()
        await asyncio.gather(recorder.task, return_exceptions=True)


def engine_of(worker: Worker) -> FakeEngine:
    assert isinstance(worker.engine, FakeEngine)
    return worker.engine


# -- captions ------------------------------------------------------------------


async def test_ready_answers_hello_with_engine_model_and_limit(make_worker):
    worker = await make_worker(max_utterance_s=12.5)
    client = await RawClient.open(worker.url, session="s1")
    try:
        ready = client.received[0]
        assert ready == Ready(engine="fake", model="per_call=0.01", max_utterance_s=12.5,
                              features=("pause", "vocabulary", "polish"))
    finally:
        await client.ws.close()


async def test_partials_then_exactly_one_final_per_utterance(make_worker, open_client):
    worker = await make_worker(partial_every_s=0.3)
    client = await open_client(worker)
    clips = [noise(1.5, seed) for seed in (1, 2, 3)]
    for utt, pcm in enumerate(clips):
        await client.client.send_utterance(utt, pcm, t=2.0 * utt, pace=0.01)
    await client.wait_finals(3)
    await client.ws.send(encode(Bye()))
    assert await client.closed() == CLOSE_NORMAL

    finals = client.finals
    assert [f.utt for f in finals] == [0, 1, 2]
    assert [f.text for f in finals] == [fake_text(pcm) for pcm in clips]
    assert client.partials, "partials were expected while the utterances were open"
    finished: set[int] = set()
    for msg in client.received[1:]:
        if isinstance(msg, Partial):
            assert msg.utt not in finished, f"partial of {msg.utt} after its final"
            assert msg.text in prefix_texts(clips[msg.utt])
        elif isinstance(msg, Caption):
            finished.add(msg.utt)
        else:
            pytest.fail(f"unexpected message {msg!r}")


async def test_a_partial_still_queued_when_its_utterance_ends_never_follows_the_final(
        make_worker, open_client):
    # slow engine: partial requests pile up (in flight and queued) while the audio arrives
    worker = await make_worker("per_call=0.2", partial_every_s=0.1)
    client = await open_client(worker)
    clips = [noise(1.0, seed) for seed in (4, 5, 6)]
    for utt, pcm in enumerate(clips[:2]):
        await client.client.send_utterance(utt, pcm)
    await client.wait_finals(2)
    # a partial of a later utterance is requested after both finals, so any leftover
    # partial of utterance 0 or 1 would be run (and sent) no later than it
    await client.client.send_utterance(2, clips[2], end=False)
    await client.until(lambda: any(p.utt == 2 for p in client.partials))
    await client.ws.send(encode(End(utt=2)))
    await client.wait_finals(3)
    await client.ws.send(encode(Bye()))
    assert await client.closed() == CLOSE_NORMAL

    assert [f.text for f in client.finals] == [fake_text(p) for p in clips]
    finished: set[int] = set()
    for msg in client.received[1:]:
        if isinstance(msg, Partial):
            assert msg.utt not in finished, f"partial of {msg.utt} after its final"
        elif isinstance(msg, Caption):
            finished.add(msg.utt)


async def test_final_start_and_end_are_start_t_and_t_plus_duration(make_worker, open_client):
    worker = await make_worker()
    client = await open_client(worker)
    pcm = noise(1.3, 7)
    await client.client.send_utterance(4, pcm, t=12.25)
    (final,) = await client.wait_finals(1)
    assert final.utt == 4
    assert final.start == pytest.approx(12.25)
    assert final.end == pytest.approx(12.25 + 1.3)
    assert final.text == fake_text(pcm)
    assert final.lang == "en" and final.emotion == "NEUTRAL" and final.events == ()


async def test_final_carries_the_requested_language(make_worker, open_client):
    worker = await make_worker()
    client = await open_client(worker, language="zh")
    await client.client.send_utterance(0, noise(0.5, 1))
    (final,) = await client.wait_finals(1)
    assert final.lang == "zh"


async def test_an_empty_utterance_still_gets_its_final(make_worker, open_client):
    worker = await make_worker()
    client = await open_client(worker)
    await client.client.send_utterance(0, np.zeros(0, dtype=np.int16), t=3.0)
    (final,) = await client.wait_finals(1)
    assert (final.utt, final.start, final.end) == (0, 3.0, 3.0)
    assert final.text == fake_text(np.zeros(0, dtype=np.int16))


async def test_three_concurrent_clients_each_get_only_their_own_captions(make_worker, open_client):
    worker = await make_worker(partial_every_s=0.3)
    clients = [await open_client(worker, session=f"room-{i}") for i in range(3)]
    audio = {i: [noise(1.0, 100 * i + u) for u in range(2)] for i in range(3)}

    async def speak(i: int) -> None:
        for utt, pcm in enumerate(audio[i]):
            await clients[i].client.send_utterance(utt, pcm, t=float(utt), pace=0.01)

    await asyncio.gather(*(speak(i) for i in range(3)))
    await asyncio.gather(*(c.wait_finals(2) for c in clients))

    for i, client in enumerate(clients):
        assert [f.text for f in client.finals] == [fake_text(p) for p in audio[i]]
        mine = set().union(*(prefix_texts(p) for p in audio[i]))
        assert all(p.text in mine for p in client.partials)
    assert sum(len(c.partials) for c in clients) > 0


async def test_a_resent_utterance_gets_its_final_again(make_worker, open_client):
    worker = await make_worker()
    pcm = noise(0.8, 3)
    first = await open_client(worker, session="lecture")
    await first.client.send_utterance(5, pcm, t=1.0)
    await first.wait_finals(1)
    await first.ws.close()
    again = await open_client(worker, session="lecture")
    await again.client.send_utterance(5, pcm, t=1.0)
    (final,) = await again.wait_finals(1)
    assert final == first.finals[0]


async def test_client_disconnecting_mid_utterance_does_not_disturb_others(make_worker, open_client):
    worker = await make_worker("per_call=0.05", partial_every_s=0.2)
    steady = [await open_client(worker, session=f"steady-{i}") for i in range(2)]
    leaver = await open_client(worker, session="leaver")
    owing = await open_client(worker, session="owing")
    await wait_stream_count(worker, 4)

    await leaver.client.send_utterance(0, noise(1.0, 50), end=False)  # open, partials pending
    await owing.client.send_utterance(0, noise(1.0, 51))  # a final is owed to it
    leaver.ws.transport.abort()  # no close frame: the connection just drops
    owing.ws.transport.abort()

    audio = {i: [noise(0.7, 10 * i + u) for u in range(3)] for i in range(2)}

    async def speak(i: int) -> None:
        for utt, pcm in enumerate(audio[i]):
            await steady[i].client.send_utterance(utt, pcm, pace=0.005)

    await asyncio.gather(*(speak(i) for i in range(2)))
    await asyncio.gather(*(c.wait_finals(3) for c in steady))
    for i, client in enumerate(steady):
        assert [f.text for f in client.finals] == [fake_text(p) for p in audio[i]]
    await wait_stream_count(worker, 2)

    for client in steady:
        await client.ws.send(encode(Bye()))
        assert await client.closed() == CLOSE_NORMAL
    await wait_stream_count(worker, 0)


async def test_bye_flushes_owed_finals_before_closing_1000(make_worker, open_client):
    worker = await make_worker("rtf=0.25,per_call=0.05", partial_every_s=30.0)
    client = await open_client(worker)
    clips = [noise(1.0, seed) for seed in range(4)]
    for utt, pcm in enumerate(clips):
        await client.client.send_utterance(utt, pcm, t=float(utt))
    await client.ws.send(encode(Bye()))
    bye_sent = time.monotonic()

    assert await client.closed() == CLOSE_NORMAL
    assert [f.utt for f in client.finals] == [0, 1, 2, 3]
    assert [f.text for f in client.finals] == [fake_text(p) for p in clips]
    final_times = [t for t, m in zip(client.times, client.received, strict=True) if isinstance(m, Caption)]
    assert max(final_times) > bye_sent, "the finals were not owed when bye was sent"
    assert not any(isinstance(m, Error) for m in client.received)


async def test_graceful_stop_delivers_owed_finals_then_closes_1001(make_worker, open_client):
    worker = await make_worker("rtf=0.25,per_call=0.05", partial_every_s=30.0, max_batch=1)
    clients = [await open_client(worker, session=f"s{i}") for i in range(2)]
    clips = {i: [noise(1.0, 10 * i + u) for u in range(2)] for i in range(2)}
    for i, client in enumerate(clients):
        for utt, pcm in enumerate(clips[i]):
            await client.client.send_utterance(utt, pcm)
    await until(lambda: sum(len(s.owed) for s in worker.sessions) == 4)  # ends received, none answered

    await worker.stop()

    for i, client in enumerate(clients):
        assert await client.closed() == CLOSE_GOING_AWAY
        assert [f.text for f in client.finals] == [fake_text(p) for p in clips[i]]


async def test_stopped_worker_refuses_new_streams(make_worker):
    worker = await make_worker()
    url = worker.url
    await worker.stop()
    with pytest.raises(OSError):
        await connect(url, open_timeout=2)


# -- protocol violations -------------------------------------------------------


async def _audio_before_start(ws) -> None:
    await ws.send(noise(0.1, 1).tobytes())


async def _end_of_unopened(ws) -> None:
    await ws.send(encode(End(utt=3)))


async def _end_of_other(ws) -> None:
    await ws.send(encode(Start(utt=1, t=0.0)))
    await ws.send(encode(End(utt=2)))


async def _start_while_open(ws) -> None:
    await ws.send(encode(Start(utt=1, t=0.0)))
    await ws.send(encode(Start(utt=2, t=1.0)))


async def _second_hello(ws) -> None:
    await ws.send(encode(Hello(session="again")))


async def _not_json(ws) -> None:
    await ws.send("{this is not json")


async def _worker_message(ws) -> None:
    await ws.send(encode(Caption(utt=1, start=0.0, end=1.0, text="forged")))


async def _odd_audio(ws) -> None:
    await ws.send(encode(Start(utt=1, t=0.0)))
    await ws.send(b"\x00\x01\x02")


async def _audio_over_one_second(ws) -> None:
    await ws.send(encode(Start(utt=1, t=0.0)))
    await ws.send(bytes(40_000))


VIOLATIONS_AFTER_HELLO = {
    "audio-before-start": (_audio_before_start, "audio_outside_utterance", CLOSE_PROTOCOL_ERROR),
    "end-of-unopened-utt": (_end_of_unopened, "not_open", CLOSE_PROTOCOL_ERROR),
    "end-of-another-utt": (_end_of_other, "not_open", CLOSE_PROTOCOL_ERROR),
    "start-while-open": (_start_while_open, "utterance_open", CLOSE_PROTOCOL_ERROR),
    "second-hello": (_second_hello, "duplicate_hello", CLOSE_PROTOCOL_ERROR),
    "not-json": (_not_json, "bad_message", CLOSE_PROTOCOL_ERROR),
    "worker-only-type": (_worker_message, "unexpected_type", CLOSE_PROTOCOL_ERROR),
    "odd-audio-frame": (_odd_audio, "odd_audio_frame", CLOSE_PROTOCOL_ERROR),
    "audio-frame-over-1s": (_audio_over_one_second, "frame_too_large", CLOSE_FRAME_TOO_LARGE),
}




async def _bystander_still_served(bystander: Recorder, utt: int = 0) -> None:
    pcm = noise(0.5, 99)
    await bystander.client.send_utterance(utt, pcm)
    finals = await bystander.wait_finals(1)
    assert finals[-1].text == fake_text(pcm)


@pytest.mark.parametrize("name", list(VIOLATIONS_AFTER_HELLO))
async def test_protocol_violation_gets_error_then_close_and_others_are_still_served(
        name, make_worker, open_client):
    act, code, close_code = VIOLATIONS_AFTER_HELLO[name]
    worker = await make_worker()
    bystander = await open_client(worker, session="bystander")
    offender = await RawClient.open(worker.url, session="offender")

    await act(offender.ws)
    received, closed_with = await collect_until_close(offender.ws)

    assert [type(m) for m in received] == [Error]
    assert received[0].code == code
    assert received[0].message
    assert closed_with == close_code
    await _bystander_still_served(bystander)


async def test_start_with_a_huge_integer_time_gets_error_then_close_4000(make_worker, open_client):
    worker = await make_worker()
    bystander = await open_client(worker, session="bystander")
    offender = await RawClient.open(worker.url, session="offender")
    await offender.ws.send('{"type": "start", "utt": 0, "t": %s}' % ("9" * 400))
    received, closed_with = await collect_until_close(offender.ws)
    await _bystander_still_served(bystander)
    assert [(type(m), m.code) for m in received] == [(Error, "bad_field")]
    assert closed_with == CLOSE_PROTOCOL_ERROR


@pytest.mark.parametrize("first", ["start", "end", "bye", "audio"])
async def test_message_before_hello_gets_error_then_close_4000(first, make_worker, open_client):
    worker = await make_worker()
    bystander = await open_client(worker, session="bystander")
    frame = {
        "start": encode(Start(utt=0, t=0.0)),
        "end": encode(End(utt=0)),
        "bye": encode(Bye()),
        "audio": noise(0.1, 1).tobytes(),
    }[first]
    async with connect(worker.url, compression=None) as ws:
        await ws.send(frame)
        received, closed_with = await collect_until_close(ws)

    assert [type(m) for m in received] == [Error]
    assert received[0].code in {"no_hello", "audio_outside_utterance"}
    assert closed_with == CLOSE_PROTOCOL_ERROR
    await _bystander_still_served(bystander)


async def test_hello_with_another_protocol_version_closes_4001(make_worker):
    worker = await make_worker()
    async with connect(worker.url, compression=None) as ws:
        await ws.send(json.dumps({"type": "hello", "protocol": 2, "session": "s"}))
        received, closed_with = await collect_until_close(ws)
    assert [(type(m), m.code) for m in received] == [(Error, "unsupported_version")]
    assert closed_with == CLOSE_UNSUPPORTED_VERSION


async def test_text_frame_over_the_limit_gets_error_then_close_4002(make_worker, open_client):
    worker = await make_worker()
    bystander = await open_client(worker, session="bystander")
    client = await RawClient.open(worker.url)
    await client.ws.send(json.dumps({"type": "end", "utt": 1, "pad": "x" * MAX_TEXT_FRAME_BYTES}))
    received, closed_with = await collect_until_close(client.ws)
    assert [(type(m), m.code) for m in received] == [(Error, "frame_too_large")]
    assert closed_with == CLOSE_FRAME_TOO_LARGE
    await _bystander_still_served(bystander)


async def test_frame_beyond_what_websockets_reads_closes_1009(make_worker, open_client):
    worker = await make_worker()
    bystander = await open_client(worker, session="bystander")
    client = await RawClient.open(worker.url)
    await client.ws.send("x" * (worker.stream_limits.max_frame_bytes + 1))
    received, closed_with = await collect_until_close(client.ws)
    assert received == []
    assert closed_with == 1009  # message too big, refused before any JSON is parsed
    await _bystander_still_served(bystander)


async def test_utterance_over_max_utterance_s_closes_4003(make_worker, open_client):
    worker = await make_worker(max_utterance_s=1.0)
    bystander = await open_client(worker, session="bystander")
    client = await RawClient.open(worker.url)
    await client.send_utterance(0, noise(0.9, 1))  # under the limit: fine
    await client.send_utterance(1, noise(1.5, 2), end=False)
    received, closed_with = await collect_until_close(client.ws)

    assert closed_with == CLOSE_UTTERANCE_TOO_LONG
    errors = [m for m in received if isinstance(m, Error)]
    assert [e.code for e in errors] == ["utterance_too_long"]
    assert not any(isinstance(m, Caption) and m.utt == 1 for m in received)
    await _bystander_still_served(bystander)


async def test_engine_failure_sends_error_and_closes_4008(make_worker):
    worker = await make_worker("fail=1")
    client = await RawClient.open(worker.url)
    await client.send_utterance(0, noise(0.5, 1))
    received, closed_with = await collect_until_close(client.ws)
    assert [(type(m), m.code) for m in received] == [(Error, "engine_failure")]
    assert closed_with == CLOSE_ENGINE_FAILURE


# -- HTTP ----------------------------------------------------------------------


async def test_health_returns_json_with_status_ok_and_stream_count(make_worker, open_client):
    worker = await make_worker()
    status, body = await http_get(worker.port, "/health")
    assert status == 200
    assert body["status"] == "ok"
    assert body["engine"] == "fake"
    assert body["streams"] == 0
    client = await open_client(worker)
    await client.client.send_utterance(0, noise(0.3, 1))
    await client.wait_finals(1)
    status, body = await http_get(worker.port, "/health")
    assert body["streams"] == 1
    assert body["finals"] == 1


async def test_health_answers_a_plain_urllib_request(make_worker):
    worker = await make_worker()

    def fetch() -> tuple[int, str, dict]:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/health", timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], json.load(resp)

    status, content_type, body = await asyncio.to_thread(fetch)
    assert status == 200
    assert content_type == "application/json"
    assert body["status"] == "ok"


async def test_unknown_path_is_404(make_worker):
    worker = await make_worker()
    status, body = await http_get(worker.port, "/nope")
    assert status == 404
    assert "error" in body

    def fetch() -> int:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/v2/stream", timeout=5)
        except urllib.error.HTTPError as exc:
            return exc.code
        return 200

    assert await asyncio.to_thread(fetch) == 404
    with pytest.raises(InvalidStatus) as info:
        await connect(f"ws://127.0.0.1:{worker.port}/v1/other", open_timeout=5)
    assert info.value.response.status_code == 404


# -- scheduling seen from the wire -----------------------------------------------


async def test_finals_ended_together_by_several_clients_share_engine_calls(make_worker, open_client):
    worker = await make_worker("per_call=0.3", partial_every_s=30.0)
    clients = [await open_client(worker, session=f"c{i}") for i in range(4)]
    clips = [noise(1.0, i) for i in range(4)]
    for client, pcm in zip(clients, clips, strict=True):
        await client.client.send_utterance(0, pcm, end=False)

    await asyncio.gather(*(c.ws.send(encode(End(utt=0))) for c in clients))
    await asyncio.gather(*(c.wait_finals(1) for c in clients))

    for client, pcm in zip(clients, clips, strict=True):
        assert client.finals[0].text == fake_text(pcm)
    calls = engine_of(worker).calls
    assert sum(calls) == 4, calls  # no partials at this cadence: only the finals
    assert len(calls) < 4 and max(calls) > 1, calls


def _call_kinds(engine: FakeEngine) -> list[set[str]]:
    """The kinds of clip in each engine call so far (a call still starting is left out)."""
    kinds, sizes = list(engine.kinds), list(engine.calls)
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [set(kinds[a:a + n]) for a, n in zip(starts, sizes, strict=True) if a + n <= len(kinds)]


async def test_a_final_waits_for_at_most_one_partial_call_while_partials_flow(make_worker, open_client):
    per_call = 0.5
    worker = await make_worker(f"per_call={per_call}", partial_every_s=0.1)
    talker = await open_client(worker, session="talker")
    other = await open_client(worker, session="other")
    stop_talking = asyncio.Event()

    async def talk() -> None:  # one long utterance, sent faster than real time
        await talker.ws.send(encode(Start(utt=0, t=0.0)))
        seed = 0
        while not stop_talking.is_set():
            await talker.ws.send(noise(0.1, seed).tobytes())
            seed += 1
            await asyncio.sleep(0.02)
        await talker.ws.send(encode(End(utt=0)))

    talking = asyncio.create_task(talk())
    try:
        await talker.until(lambda: len(talker.partials) >= 1)  # partials are flowing
        pcm = noise(0.5, 1000)
        await other.client.send_utterance(0, pcm, end=False)
        await other.ws.send(encode(End(utt=0)))
        calls_before_end = len(engine_of(worker).calls)
        (final,) = await other.wait_finals(1, timeout=30)
        partials_before = len(talker.partials)
        await talker.until(lambda: len(talker.partials) > partials_before)  # still flowing
    finally:
        stop_talking.set()
        await talking

    assert final.text == fake_text(pcm)
    # Engine calls begun since the end was sent: at most one partial (begun before the worker
    # read the end), then the final's own call; counted in calls, not seconds.
    since_end = _call_kinds(engine_of(worker))[calls_before_end:]
    assert {"final"} in since_end[:2], since_end
    await talker.wait_finals(1)
