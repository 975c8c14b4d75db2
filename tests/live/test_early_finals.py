"""Early finals (feature ``pause``), per-stream context, and decode kinds, on a real worker."""

from __future__ import annotations

import asyncio

import numpy as np

from bench.fake_engine import fake_text
from capture.client import ClientOptions, StreamClient
from live.stream import CONTEXT_CHARS
from wire.protocol import (
    CLOSE_PROTOCOL_ERROR,
    End,
    Error,
    Partial,
    Pause,
    Ready,
    Start,
    encode,
)

from .conftest import RawClient, collect_until_close, noise
from .test_worker import open_client  # noqa: F401 - fixture


async def test_pause_then_end_with_the_same_audio_is_decoded_once_and_shown_at_the_pause(
        make_worker, open_client):  # noqa: F811
    worker = await make_worker(partial_every_s=1000)  # no ordinary partials
    client = await open_client(worker)
    pcm = noise(1.2, 3)
    await client.client.send_utterance(0, pcm, end=False)
    await client.ws.send(encode(Pause(utt=0, samples=len(pcm))))
    await client.until(lambda: any(p.utt == 0 for p in client.partials))
    assert client.partials == [Partial(utt=0, text=fake_text(pcm))]  # the final's text, early

    await client.ws.send(encode(End(utt=0)))
    (final,) = await client.wait_finals(1)
    assert final.text == fake_text(pcm)
    assert worker.engine.kinds == ["final"]  # no second decode at the end


async def test_audio_after_a_pause_drops_the_speculative_decode(make_worker, open_client):  # noqa: F811
    worker = await make_worker("per_call=1.5", partial_every_s=1000)
    client = await open_client(worker)
    first = noise(0.5, 1)
    await client.client.send_utterance(0, first)  # the engine is busy with this for 1.5 s
    head, tail = noise(0.8, 2), noise(0.7, 3)
    await client.client.send_utterance(1, head, end=False)
    await client.ws.send(encode(Pause(utt=1, samples=len(head))))
    await client.ws.send(tail.astype("<i2").tobytes())  # the speech went on
    await client.ws.send(encode(End(utt=1)))
    finals = await client.wait_finals(2)

    assert [f.text for f in finals] == [fake_text(first), fake_text(np.concatenate([head, tail]))]
    assert fake_text(head) not in [p.text for p in client.partials]
    assert worker.engine.kinds == ["final", "final"]  # the withdrawn decode never ran
    assert worker.engine.calls == [1, 1]


async def test_a_pause_that_names_other_audio_than_arrived_is_refused(make_worker):
    worker = await make_worker()
    client = await RawClient.open(worker.url)
    pcm = noise(0.5, 1)
    await client.ws.send(encode(Pause(utt=0, samples=0)))  # nothing open yet
    received, code = await _until_closed(client)
    assert code == CLOSE_PROTOCOL_ERROR and any(isinstance(m, Error) and m.code == "not_open" for m in received)

    client = await RawClient.open(worker.url)
    await client.ws.send(encode(Start(utt=0, t=0.0)))
    await client.ws.send(pcm.astype("<i2").tobytes())
    await client.ws.send(encode(Pause(utt=0, samples=len(pcm) + 2)))
    received, code = await _until_closed(client)
    assert code == CLOSE_PROTOCOL_ERROR and any(isinstance(m, Error) and m.code == "bad_pause" for m in received)


async def test_a_worker_without_early_finals_does_not_offer_them_and_refuses_pause(make_worker):
    worker = await make_worker(early_finals=False, polish=False)
    client = await RawClient.open(worker.url)
    ready = client.received[0]
    assert isinstance(ready, Ready) and ready.features == ("vocabulary",)
    await client.ws.send(encode(Start(utt=0, t=0.0)))
    await client.ws.send(encode(Pause(utt=0, samples=0)))
    received, code = await _until_closed(client)
    assert code == CLOSE_PROTOCOL_ERROR
    assert any(isinstance(m, Error) and m.code == "unexpected_type" for m in received)


async def test_each_stream_gives_its_recent_finals_to_the_engine_as_bounded_context(
        make_worker, open_client):  # noqa: F811
    worker = await make_worker(partial_every_s=1000)
    a, b = await open_client(worker, session="a"), await open_client(worker, session="b")
    clips = [noise(0.4, seed) for seed in range(12)]
    await a.client.send_utterance(0, clips[0])
    await a.wait_finals(1)
    await b.client.send_utterance(0, clips[1])
    await b.wait_finals(1)
    await a.client.send_utterance(1, clips[2])
    await a.wait_finals(2)
    hints = worker.engine.hints
    assert hints[0].context == ""  # nothing said before on stream a
    assert hints[1].context == ""  # stream b has its own context
    assert hints[2].context == fake_text(clips[0])  # stream a's first final, not b's
    for i, clip in enumerate(clips[3:], start=2):
        await a.client.send_utterance(i, clip)
        await a.wait_finals(i + 1)
    last = worker.engine.hints[-1].context
    assert 0 < len(last) <= CONTEXT_CHARS
    assert last.split()[-1] == fake_text(clips[-2]).split()[-1]  # the newest words are kept


async def test_stream_client_tells_an_offering_worker_of_a_pause_and_gets_the_final_once(make_worker):
    worker = await make_worker(partial_every_s=1000)
    finals, partials = [], []
    client = StreamClient(ClientOptions(url=worker.url, session="s"),
                          on_final=lambda c, p: finals.append(c), on_partial=partials.append)
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    pcm = noise(1.0, 5)
    client.start_utterance(0, 0.0)
    client.add_audio(0, pcm)
    client.pause_utterance(0, len(pcm))
    await _wait(lambda: partials)
    assert partials[0].text == fake_text(pcm)
    client.end_utterance(0)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert [f.text for f in finals] == [fake_text(pcm)]
    assert worker.engine.kinds == ["final"]


async def test_stream_client_sends_no_pause_to_a_worker_that_does_not_offer_it(make_worker):
    worker = await make_worker(early_finals=False, partial_every_s=1000)
    finals = []
    client = StreamClient(ClientOptions(url=worker.url, session="s"), on_final=lambda c, p: finals.append(c))
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    pcm = noise(1.0, 6)
    client.start_utterance(0, 0.0)
    client.add_audio(0, pcm)
    client.pause_utterance(0, len(pcm))
    client.end_utterance(0)
    stop.set()
    await asyncio.wait_for(task, 10)  # a pause sent here would have closed the stream with 4000
    assert [f.text for f in finals] == [fake_text(pcm)]
    assert client.stats.reconnects == 0


async def _until_closed(client: RawClient) -> tuple[list, int | None]:
    return await collect_until_close(client.ws)


async def _wait(predicate, timeout: float = 10.0) -> None:
    async def _poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(_poll(), timeout)


async def test_hello_vocabulary_reaches_the_engine_with_every_clip_of_the_stream(make_worker):
    worker = await make_worker(partial_every_s=0.3)
    finals = []
    client = StreamClient(ClientOptions(url=worker.url, session="s", vocabulary=("backpropagation", "ReLU")),
                          on_final=lambda c, p: finals.append(c))
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    client.resend(0, 0.0, noise(1.0, 8))
    stop.set()
    await asyncio.wait_for(task, 10)
    assert client.ready is not None and "vocabulary" in client.ready.features
    assert len(finals) == 1
    assert worker.engine.hints and all(h.vocabulary == ("backpropagation", "ReLU") for h in worker.engine.hints)


async def test_finals_decoded_out_of_order_by_length_still_reach_the_client_in_order(open_client):  # noqa: F811
    from live.calibrate import BatchPolicy
    from live.server import Worker
    from models import EngineOptions, create_engine

    from .conftest import worker_settings

    engine = create_engine("fake", EngineOptions(model="per_call=0.3"))
    policy = BatchPolicy(gain=1.8, overhead_s=0.2, per_second_s=0.1, max_batch=16)  # similar lengths
    async with Worker(worker_settings(partial_every_s=1000), engine=engine, batch_policy=policy) as worker:
        client = await open_client(worker)
        lengths = (0.5, 3.0, 0.6, 2.9, 0.5)  # 0 runs alone; then 1 with 3 (and 2): 3 before 2
        clips = [noise(seconds, i) for i, seconds in enumerate(lengths)]
        for utt, pcm in enumerate(clips):
            await client.client.send_utterance(utt, pcm)
        finals = await client.wait_finals(len(clips))
        assert [f.utt for f in finals] == list(range(len(clips)))
        assert [f.text for f in finals] == [fake_text(p) for p in clips]
        assert max(engine.calls) >= 2  # similar lengths did share calls


async def test_no_partial_is_asked_for_while_the_newest_audio_is_silence(make_worker, open_client):  # noqa: F811
    worker = await make_worker("per_call=0.0", partial_every_s=0.1)
    client = await open_client(worker)
    speech = [noise(0.1, seed) for seed in range(3)]
    quiet = (noise(0.1, 99) // 200).astype(np.int16)  # -46 dB under the speech
    await client.ws.send(encode(Start(utt=0, t=0.0)))
    for frame in speech:  # a partial is due at every frame
        await client.ws.send(frame.tobytes())
    for _ in range(20):  # two seconds of pause after the speech: nothing new to show
        await client.ws.send(quiet.tobytes())
    whole = np.concatenate([*speech, *[quiet] * 20])
    await client.ws.send(encode(Pause(utt=0, samples=len(whole))))
    await client.until(lambda: any(p.text == fake_text(whole) for p in client.partials))  # the early final
    partials = worker.engine.kinds.count("partial")
    assert 1 <= partials <= len(speech)  # only while there was speech, none for the 20 quiet frames

    await client.ws.send(noise(0.1, 7).tobytes())  # the lecturer goes on: partials again
    await client.until(lambda: worker.engine.kinds.count("partial") > partials)


async def test_pauses_cannot_buy_more_early_decodes_than_new_audio_pays_for(make_worker, open_client):  # noqa: F811
    worker = await make_worker("per_call=0.0", partial_every_s=1000)
    client = await open_client(worker)
    pcm = noise(0.6, 4)
    await client.client.send_utterance(0, pcm, end=False)
    samples = len(pcm)
    await client.ws.send(encode(Pause(utt=0, samples=samples)))
    for _ in range(10):  # a sample more each time, and a pause: no new decode is due
        await client.ws.send(b"\x01\x00")
        samples += 1
        await client.ws.send(encode(Pause(utt=0, samples=samples)))
    await client.ws.send(encode(End(utt=0)))
    (final,) = await client.wait_finals(1)
    assert final.text == fake_text(np.concatenate([pcm, np.ones(10, dtype=np.int16)]))
    assert worker.engine.kinds.count("final") == 2  # the first early decode, then the final itself
