"""Fixtures for worker tests: a real worker on loopback port 0 and a raw protocol client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from live.server import Worker, WorkerSettings
from models import EngineOptions, create_engine
from wire.protocol import Caption, End, Hello, Partial, Start, decode_worker, encode


def worker_settings(**kw) -> WorkerSettings:
    base = dict(host="127.0.0.1", port=0, engine="fake", warmup=False, auth=False)
    base.update(kw)
    return WorkerSettings(**base)


@pytest.fixture
async def fake_worker() -> AsyncIterator[Worker]:
    settings = worker_settings(partial_every_s=0.5)
    engine = create_engine("fake", EngineOptions(model="per_call=0.01"))
    async with Worker(settings, engine=engine) as worker:
        yield worker


@pytest.fixture
async def make_worker() -> AsyncIterator[Callable[..., Awaitable[Worker]]]:
    """Start workers with a fake engine: ``await make_worker("rtf=0.2", partial_every_s=...)``."""
    workers: list[Worker] = []

    async def _make(model: str = "per_call=0.01", **settings) -> Worker:
        settings.setdefault("drain_timeout_s", 5.0)
        settings.setdefault("auth", False)  # loopback only; keys are tested elsewhere
        engine = create_engine("fake", EngineOptions(model=model))
        worker = Worker(worker_settings(**settings), engine=engine)
        await worker.start()
        workers.append(worker)
        return worker

    yield _make
    for worker in workers:
        await worker.stop()


class RawClient:
    """Speaks protocol v1 by hand, recording everything the worker sends."""

    def __init__(self, ws: ClientConnection):
        self.ws = ws
        self.received: list = []

    @classmethod
    async def open(cls, url: str, session: str = "test", language: str = "auto") -> RawClient:
        ws = await connect(url, compression=None)
        client = cls(ws)
        await ws.send(encode(Hello(session=session, language=language)))
        client.received.append(decode_worker(await ws.recv()))
        return client

    async def send_utterance(self, utt: int, pcm: np.ndarray, t: float = 0.0, frame_s: float = 0.1,
                             end: bool = True, pace: float = 0.0) -> None:
        await self.ws.send(encode(Start(utt=utt, t=t)))
        step = int(16000 * frame_s)
        for i in range(0, len(pcm), step):
            await self.ws.send(pcm[i:i + step].astype("<i2").tobytes())
            if pace:
                await asyncio.sleep(pace)
        if end:
            await self.ws.send(encode(End(utt=utt)))

    async def collect_until_closed(self, timeout: float = 10.0) -> list:
        async def _read() -> None:
            async for frame in self.ws:
                self.received.append(decode_worker(frame))

        await asyncio.wait_for(_read(), timeout)
        return self.received

    async def wait_finals(self, count: int, timeout: float = 10.0) -> list[Caption]:
        async def _read() -> None:
            while len(self.finals) < count:
                self.received.append(decode_worker(await self.ws.recv()))

        await asyncio.wait_for(_read(), timeout)
        return self.finals

    @property
    def finals(self) -> list[Caption]:
        return [m for m in self.received if isinstance(m, Caption)]

    @property
    def partials(self) -> list[Partial]:
        return [m for m in self.received if isinstance(m, Partial)]


async def collect_until_close(ws: ClientConnection, timeout: float = 10.0) -> tuple[list, int | None]:
    """Everything the worker sends until it closes, and the close code."""
    received: list = []

    async def _read() -> None:
        try:
            while True:
                received.append(decode_worker(await ws.recv()))
        except ConnectionClosed:
            pass

    await asyncio.wait_for(_read(), timeout)
    return received, ws.close_code


def noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(16000 * seconds)) * 3000).astype(np.int16)


def as_json(frame: str) -> dict:
    return json.loads(frame)
