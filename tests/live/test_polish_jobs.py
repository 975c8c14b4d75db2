"""Polish jobs (feature ``polish``) on a real worker, spoken by hand: answers, refusals and limits."""

from __future__ import annotations

import asyncio

import numpy as np

from bench.fake_engine import fake_text
from wire.protocol import (
    CLOSE_OVERLOADED,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UTTERANCE_TOO_LONG,
    FEATURE_POLISH,
    MAX_POLISH_JOBS,
    MAX_POLISH_S,
    Error,
    Polish,
    Polished,
    PolishEnd,
    Ready,
    Start,
    decode_worker,
    encode,
)

from .conftest import RawClient, collect_until_close, noise


async def send_job(client: RawClient, job: int, pcm: np.ndarray, end: bool = True, offset: float = 12.5) -> None:
    await client.ws.send(encode(Polish(job=job, offset=offset, language="en", context="before",
                                       vocabulary=("Fourier",))))
    data = pcm.astype("<i2").tobytes()
    for i in range(0, len(data), 32_000):
        await client.ws.send(data[i:i + 32_000])
    if end:
        await client.ws.send(encode(PolishEnd(job=job)))


async def next_of(client: RawClient, kind: type, timeout: float = 10.0):
    async def _read():
        while True:
            msg = decode_worker(await client.ws.recv())
            client.received.append(msg)
            if isinstance(msg, kind):
                return msg

    return await asyncio.wait_for(_read(), timeout)


async def test_a_polish_job_is_answered_with_its_segments_and_the_hints_reach_the_engine(make_worker):
    worker = await make_worker()
    client = await RawClient.open(worker.url)
    assert FEATURE_POLISH in client.received[0].features
    pcm = noise(20.0, 1)
    await send_job(client, 3, pcm)
    answer = await next_of(client, Polished)
    assert (answer.job, answer.offset) == (3, 12.5)
    [segment] = answer.segments
    assert segment.text == fake_text(pcm) and segment.end == 20.0 and len(segment.words) == 3
    assert worker.engine.kinds == ["polish"]
    assert worker.engine.hints[-1].context == "before" and worker.engine.hints[-1].vocabulary == ("Fourier",)
    assert worker.health()["polish_jobs"] == 1
    await client.ws.close()


async def test_an_engine_failure_fails_that_job_alone(make_worker):
    worker = await make_worker("fail=1")
    client = await RawClient.open(worker.url)
    await send_job(client, 0, noise(2.0, 1))
    error = await next_of(client, Error)
    assert (error.job, error.code) == (0, "polish_failed")
    await send_job(client, 1, np.zeros(0, dtype=np.int16))  # no audio: answered without the engine
    assert (await next_of(client, Polished)).segments == ()
    await client.ws.close()


async def test_a_worker_without_the_feature_refuses_polish(make_worker):
    worker = await make_worker(polish=False)
    client = await RawClient.open(worker.url)
    assert FEATURE_POLISH not in client.received[0].features
    await send_job(client, 0, noise(1.0, 1))
    received, code = await collect_until_close(client.ws)
    assert code == CLOSE_PROTOCOL_ERROR
    assert [m.code for m in received if isinstance(m, Error)] == ["unexpected_type"]


async def test_a_window_over_the_limit_closes_4003(make_worker):
    worker = await make_worker()
    client = await RawClient.open(worker.url)
    await send_job(client, 0, noise(MAX_POLISH_S + 1.0, 1), end=False)
    received, code = await collect_until_close(client.ws)
    assert code == CLOSE_UTTERANCE_TOO_LONG
    assert [m.code for m in received if isinstance(m, Error)] == ["window_too_long"]


async def test_more_jobs_owed_than_the_limit_closes_4009(make_worker):
    worker = await make_worker(partial_every_s=0.2)
    lecture = await RawClient.open(worker.url, session="lecture")
    await lecture.send_utterance(0, noise(1.0, 9), end=False)
    while not lecture.partials:  # the utterance is open on the worker: no polish starts now
        lecture.received.append(decode_worker(await lecture.ws.recv()))
    client = await RawClient.open(worker.url)
    for job in range(MAX_POLISH_JOBS + 1):
        await send_job(client, job, noise(2.0, job))
    received, code = await collect_until_close(client.ws)
    assert code == CLOSE_OVERLOADED
    assert [m.code for m in received if isinstance(m, Error)] == ["too_many_jobs"]
    assert "polish" not in worker.engine.kinds
    await lecture.ws.close()


async def test_an_utterance_and_a_polish_job_are_never_open_together(make_worker):
    worker = await make_worker()
    client = await RawClient.open(worker.url)
    await send_job(client, 0, noise(1.0, 1), end=False)
    await client.ws.send(encode(Start(utt=0, t=0.0)))
    received, code = await collect_until_close(client.ws)
    assert code == CLOSE_PROTOCOL_ERROR and [m.code for m in received if isinstance(m, Error)] == ["polish_open"]
    assert isinstance(client.received[0], Ready)
