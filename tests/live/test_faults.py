"""Faults: connections cut mid-frame, workers and capture processes SIGKILLed mid-lecture.

The campaign itself lives in ``bench/fault_campaign.py`` (run it by hand with
bigger numbers); here it runs with small ones: about 45 s of lectures.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from websockets.frames import Frame, Opcode

from bench.fake_engine import fake_text
from bench.fault_campaign import CampaignOptions, CuttingProxy, FrameCutter, run_campaign, summary
from capture.client import ClientOptions, StreamClient
from live.server import Worker
from models import EngineOptions, create_engine
from tests import speech
from wire.protocol import Caption

from .conftest import noise, worker_settings

UPGRADE = (b"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")


def _client_frame(opcode: Opcode, data: bytes) -> bytes:
    return Frame(opcode, data).serialize(mask=True, extensions=[])


@pytest.mark.parametrize("seed", range(8))
def test_frame_cutter_cuts_inside_the_payload_of_the_chosen_binary_frame(seed):
    rng = random.Random(seed)
    sizes = [rng.choice([2, 125, 126, 3200, 32000, 70000]) for _ in range(4)]
    stream, payloads = bytearray(UPGRADE), []
    for size in sizes:
        stream += _client_frame(Opcode.TEXT, b'{"type":"start","utt":0,"t":0}')
        head = len(_client_frame(Opcode.BINARY, bytes(size))) - size
        payloads.append((len(stream) + head, len(stream) + head + size))
        stream += _client_frame(Opcode.BINARY, bytes(size))
    target = rng.randint(1, len(sizes))
    cutter = FrameCutter(target, rng)
    fed, cut_at = 0, None
    while fed < len(stream) and cut_at is None:  # random chunking, as TCP delivers it
        chunk = bytes(stream[fed:fed + rng.randint(1, 9000)])
        offset = cutter.scan(chunk)
        cut_at = None if offset is None else fed + offset
        fed += len(chunk)
    start, end = payloads[target - 1]
    assert cut_at is not None and start < cut_at < end, (sizes, target, cut_at, payloads)
    assert cutter.cut_frame == (sizes[target - 1], cut_at - start)


async def test_connections_cut_mid_audio_frame_are_resumed_and_every_final_arrives_once():
    engine = create_engine("fake", EngineOptions(model="per_call=0.005"))
    async with Worker(worker_settings(drain_timeout_s=2.0), engine=engine) as worker:
        proxy = CuttingProxy(worker.port, cuts=3, rng=random.Random(7))
        port = await proxy.start()
        try:
            finals: list[Caption] = []
            client = StreamClient(
                ClientOptions(url=f"ws://127.0.0.1:{port}/v1/stream", session="cut", max_rate=0.0,
                              backoff_initial_s=0.05),
                on_final=lambda caption, pending: finals.append(caption))
            clips = [noise(1.5, seed=20 + i) for i in range(6)]
            for utt, pcm in enumerate(clips):
                client.resend(utt, float(utt), pcm)
            stop = asyncio.Event()
            stop.set()
            await asyncio.wait_for(client.run(stop), 30)
        finally:
            await proxy.stop()
        assert len(proxy.cuts) == 3, "each cut fell inside an audio frame"
        assert all(0 < kept < size for size, kept in proxy.cuts)
        assert client.stats.reconnects >= 3
        assert [(c.utt, c.text) for c in finals] == [(u, fake_text(p)) for u, p in enumerate(clips)]
        assert worker.health()["status"] == "ok"


@pytest.mark.skipif(not speech.have_espeak(), reason="espeak-ng and sox are required")
async def test_fault_campaign_journals_every_spoken_utterance_exactly_once(tmp_path):
    options = CampaignOptions(clients=3, sentences=8, continuation=3, worker_kills=20, client_kills=1,
                              proxy_cuts=3, workdir=tmp_path / "campaign", out=tmp_path, timeout_s=240)
    result = await run_campaign(options)
    print("\n" + summary(result))

    assert result["worker_kills"] >= 20, "the lectures ended before the worker was killed enough"
    assert result["client_kills"] == 1
    assert result["proxy_mid_frame_cuts"] >= 1
    assert all(s["streams"] >= 2 for s in result["sessions"]), "every lecture lived through reconnects"
    assert result["spoken"] >= 2 * 8 + 3  # the killed lecture: part of file one, then three sentences
    assert result["duplicates"] == 0
    assert result["lost"] == 0
    assert result["mismatched"] == 0, "a journaled caption belongs to other audio"
    assert result["gaps"] == 0, "utt numbers run 0..N-1"
    assert result["journaled"] == result["spoken"]
    assert result["worker_log_tracebacks"] == 0
    (killed,) = [s for s in result["sessions"] if s["runs"] == 2]
    assert killed["spooled_journaled"] == len(killed["spooled_at_kill"]), "spooled audio was resent"


def _live_senders() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks()
            if not t.done() and t.get_coro().__qualname__ == "StreamClient._send"]


async def test_a_dropped_connection_leaves_no_stray_sender_task():
    engine = create_engine("fake", EngineOptions(model="per_call=0.005"))
    async with Worker(worker_settings(drain_timeout_s=2.0), engine=engine) as worker:
        proxy = CuttingProxy(worker.port, cuts=1, rng=random.Random(3))
        port = await proxy.start()
        finals: list[Caption] = []
        client = StreamClient(
            ClientOptions(url=f"ws://127.0.0.1:{port}/v1/stream", session="stray", max_rate=0.0,
                          backoff_initial_s=0.05),
            on_final=lambda caption, pending: finals.append(caption))
        for utt in range(3):
            client.resend(utt, float(utt), noise(1.5, seed=40 + utt))
        stop = asyncio.Event()
        run = asyncio.create_task(client.run(stop))
        try:
            async def _all_finals() -> None:
                while len(finals) < 3 or not proxy.cuts:
                    assert not run.done(), run
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(_all_finals(), 20)
            assert client.stats.reconnects >= 1
            assert len(_live_senders()) == 1, "one sender per live connection"
        finally:
            stop.set()
            await asyncio.wait_for(run, 10)
            await proxy.stop()
