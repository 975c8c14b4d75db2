"""The capture pipeline on a real worker (fake engine) with a level detector as the VAD."""

from __future__ import annotations

import asyncio
import json
import socket
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.fake_engine import fake_text
from capture.client import ClientOptions, Owed, StreamClient, _frames
from capture.pipeline import CaptureCallbacks, CaptureOptions, CapturePipeline, Resume
from capture.segmenter import Segmenter
from capture.utterance import Utterance
from capture.vad import SAMPLE_RATE, VadOptions
from live.server import Worker
from models import EngineOptions, create_engine
from tests.capture.test_segmenter import LevelVad, run, tone, utterances
from tests.live.conftest import worker_settings
from tests.speech import silence
from wire.protocol import MAX_AUDIO_FRAME_BYTES, Caption

LECTURE = np.concatenate([silence(0.5), tone(1.0), silence(1.0), tone(1.5), silence(1.0), tone(0.8),
                          silence(1.0)])


class MemorySource:
    """Blocks of ``pcm`` as fast as they are read, like ``FileSource`` with ``--fast``."""

    def __init__(self, pcm: np.ndarray, block: int = 1600):
        self.pcm, self.block = pcm, block
        self.dropped_seconds = 0.0

    async def __aenter__(self) -> MemorySource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __aiter__(self):
        return self._blocks()

    async def _blocks(self):
        for i in range(0, len(self.pcm), self.block):
            yield self.pcm[i:i + self.block]
            await asyncio.sleep(0)


@dataclass
class Heard:
    """Everything a pipeline told its owner, in order."""

    pending: Path
    calls: list[tuple] = field(default_factory=list)
    finals: list[tuple[Caption, Owed | None]] = field(default_factory=list)
    spooled_at_final: list[bool] = field(default_factory=list)

    def callbacks(self) -> CaptureCallbacks:
        return CaptureCallbacks(
            on_final=self.on_final,
            on_partial=lambda p: self.calls.append(("partial", p.utt)),
            on_state=lambda state, detail: self.calls.append(("state", state)),
            on_open=lambda: self.calls.append(("open",)),
            on_progress=lambda position, dropped: self.calls.append(("progress", position, dropped)))

    def on_final(self, caption: Caption, owed: Owed | None) -> None:
        self.spooled_at_final.append((self.pending / f"{caption.utt}.pcm").exists())
        self.finals.append((caption, owed))

    def of(self, kind: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == kind]


def expected(pcm: np.ndarray, first_utt: int = 0, offset: float = 0.0) -> list[Utterance]:
    return utterances(run(pcm, 1600, Segmenter(VadOptions(), vad=LevelVad(), first_utt=first_utt,
                                               time_offset=offset)))


def pipeline(folder: Path, url: str, heard: Heard, **options) -> CapturePipeline:
    client = ClientOptions(url=url, session=folder.name, max_rate=0.0, backoff_initial_s=0.05,
                           backoff_max_s=0.1)
    return CapturePipeline(folder, client, heard.callbacks(), CaptureOptions(fast=True, **options),
                           vad=LevelVad())


def closed_port_url() -> str:
    """A loopback URL nothing listens on: the worker is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}/v1/stream"


@pytest.fixture
async def worker():
    engine = create_engine("fake", EngineOptions(model="per_call=0.005"))
    async with Worker(worker_settings(partial_every_s=0.3), engine=engine) as running:
        yield running


async def test_every_utterance_reaches_the_worker_in_order_and_is_unspooled_once_journaled(tmp_path, worker):
    folder = tmp_path / "s"
    heard = Heard(folder / "pending")
    capture = pipeline(folder, worker.url, heard)
    resume = capture.recover(set(), Resume())
    assert resume == Resume(0.0, 0)
    await capture.run(MemorySource(LECTURE), resume, asyncio.Event())

    want = expected(LECTURE)
    assert len(want) == 3
    assert [(c.utt, c.start, c.text) for c, _ in heard.finals] == [
        (u.utt, u.start, fake_text(u.pcm())) for u in want]
    assert heard.spooled_at_final == [True] * 3, "the audio is on disk until the final is journaled"
    assert not list((folder / "pending").iterdir())
    for (_, owed), u in zip(heard.finals, want, strict=True):
        assert owed is not None and owed.ended_at is not None
        np.testing.assert_array_equal(owed.utterance.pcm(), u.pcm())
    assert capture.owed == 0 and capture.ready is not None and capture.ready.engine == "fake"


async def test_callbacks_report_the_open_source_progress_and_connection_state(tmp_path, worker):
    heard = Heard(tmp_path / "s" / "pending")
    capture = pipeline(tmp_path / "s", worker.url, heard)
    await capture.run(MemorySource(LECTURE), Resume(), asyncio.Event())

    kinds = [c[0] for c in heard.calls]
    assert kinds.count("open") == 1 and kinds.index("open") < kinds.index("progress")
    positions = [c[1] for c in heard.of("progress")]
    assert positions == sorted(positions) and positions[-1] == len(LECTURE) / SAMPLE_RATE
    assert all(c[2] == 0.0 for c in heard.of("progress"))
    states = [c[1] for c in heard.of("state")]
    assert states[0] == "connecting" and "live" in states
    assert states.index("draining") > states.index("live")


async def test_audio_owed_when_the_worker_is_down_stays_spooled_and_the_next_run_resends_it(
        tmp_path, worker):
    folder = tmp_path / "s"
    first = Heard(folder / "pending")
    down = pipeline(folder, closed_port_url(), first, drain_timeout_s=0.2)
    await down.run(MemorySource(LECTURE), down.recover(set(), Resume()), asyncio.Event())
    want = expected(LECTURE)
    assert not first.finals and down.owed == 3 and down.reconnects >= 1
    for u in want:  # the spool as the next run finds it
        meta = json.loads((folder / "pending" / f"{u.utt}.json").read_text())
        assert meta == {"utt": u.utt, "start": u.start, "ended": True}
        assert (folder / "pending" / f"{u.utt}.pcm").read_bytes() == u.pcm().astype("<i2").tobytes()

    again = Heard(folder / "pending")
    capture = pipeline(folder, worker.url, again)
    resume = capture.recover({0}, Resume(offset=1.0, first_utt=1))  # utt 0 was journaled after all
    assert resume == Resume(offset=want[-1].end, first_utt=3)
    more = np.concatenate([silence(0.5), tone(1.0), silence(1.0)])
    await capture.run(MemorySource(more), resume, asyncio.Event())

    new = expected(more, first_utt=3, offset=resume.offset)
    assert [(c.utt, c.start, c.text) for c, _ in again.finals] == [
        (u.utt, u.start, fake_text(u.pcm())) for u in [*want[1:], *new]]
    assert not list((folder / "pending").iterdir())


async def test_stop_ends_reading_and_the_open_utterance_is_still_sent_whole(tmp_path, worker):
    stop = asyncio.Event()
    finals: list[tuple[Caption, Owed | None]] = []
    callbacks = CaptureCallbacks(on_final=lambda caption, owed: finals.append((caption, owed)),
                                 on_progress=lambda position, dropped: position >= 2.0 and stop.set())
    capture = CapturePipeline(tmp_path / "s", ClientOptions(url=worker.url, session="s", max_rate=0.0),
                              callbacks, CaptureOptions(fast=True), vad=LevelVad())
    speech = np.concatenate([silence(0.5), tone(10.0)])
    await capture.run(MemorySource(speech), Resume(), stop)

    ((caption, owed),) = finals
    assert owed is not None and owed.utterance.end is not None
    assert 2.0 <= owed.utterance.end < 2.5, "reading stopped at the block that saw stop"
    said = speech[round(owed.utterance.start * SAMPLE_RATE):round(owed.utterance.end * SAMPLE_RATE)]
    assert caption.text == fake_text(said)


async def test_the_audio_of_an_owed_utterance_is_held_once(tmp_path):
    """18 s of speech with the worker down: the client keeps it, the spool has it on disk,
    and nothing along the way made a second copy (the segmenter keeps no audio of its own)."""
    speech = np.concatenate([silence(0.5), tone(18.0), silence(1.0)])
    heard = Heard(tmp_path / "s" / "pending")
    capture = pipeline(tmp_path / "s", closed_port_url(), heard, drain_timeout_s=0.1,
                       vad=VadOptions(max_utterance_s=20.0, split_search_s=3.0))  # one utterance
    tracemalloc.start()
    try:
        await capture.run(MemorySource(speech), Resume(), asyncio.Event())
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (owed,) = capture.client.pending.values()
    audio_bytes = owed.utterance.samples * 2
    assert owed.utterance.duration > 18.0
    assert audio_bytes <= held < 1.2 * audio_bytes
    # A second copy anywhere (say, the utterance joined at its end) would peak at 2x; the
    # rest is the segmenter's look-back of the last seconds not yet streamed.
    assert peak < 1.5 * audio_bytes, f"peak {peak} for {audio_bytes} bytes of audio"
    spooled = (tmp_path / "s" / "pending" / "0.pcm").read_bytes()
    assert spooled == b"".join(chunk.astype("<i2").tobytes() for chunk in owed.utterance.chunks)


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 40_000), min_size=1, max_size=12))
def test_audio_frames_are_the_chunks_in_order_cut_at_the_frame_size(sizes):
    rng = np.random.default_rng(len(sizes))
    chunks = [rng.integers(-32768, 32767, size, dtype=np.int16) for size in sizes]
    frames = list(_frames(chunks))
    assert b"".join(frames) == np.concatenate(chunks).astype("<i2").tobytes()
    assert all(len(f) == MAX_AUDIO_FRAME_BYTES for f in frames[:-1])
    assert 0 < len(frames[-1]) <= MAX_AUDIO_FRAME_BYTES


def test_the_client_holds_the_utterance_it_is_given_not_a_copy():
    client = StreamClient(ClientOptions(url="ws://127.0.0.1:9/v1/stream", session="s"), on_final=print)
    utterance = Utterance(4, 12.5)
    client.send(utterance)
    chunk = utterance.append(tone(0.3))
    client.audio_added(4)
    assert client.pending[4].utterance is utterance and client.pending[4].utterance.chunks[0] is chunk
    assert client.owed == 0, "not owed a final before it ends"
    utterance.finish(12.8)
    client.end_utterance(4)
    assert client.owed == 1 and client.pending[4].ended_at is not None
