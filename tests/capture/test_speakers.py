"""Speaker labels: the online labeller, the track beside the stream, and the pipeline that uses it."""

from __future__ import annotations

import asyncio
import threading
from urllib.parse import urlparse

import numpy as np
import pytest

from capture.pipeline import CaptureOptions, CapturePipeline, Resume
from capture.segmenter import UtteranceAudio, UtteranceEnded, UtterancePaused, UtteranceStarted
from capture.speakers import SpeakerLabeller, label_lecture
from capture.utterance import Utterance
from capture.voices import SpeakerTrack, end_span, window_spans
from live.server import Worker
from models import EngineOptions, create_engine
from tests.capture.test_pipeline import Heard, MemorySource
from tests.capture.test_segmenter import LevelVad
from tests.live.conftest import worker_settings
from tests.speech import silence
from wire.protocol import Caption

DIM = 64


def voices(n: int, seed: int = 1) -> list[np.ndarray]:
    """``n`` speakers' voices as unit vectors, about as far apart as real voices (cosine ~0.5)."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(DIM)
    out = []
    for _ in range(n):
        v = base + rng.standard_normal(DIM)
        out.append(v / np.linalg.norm(v))
    return out


def said(voice: np.ndarray, rng: np.random.Generator, noise: float = 0.6) -> np.ndarray:
    """One utterance's embedding of ``voice``: near it (cosine ~0.85), never the same twice."""
    v = voice + noise * rng.standard_normal(DIM) / np.sqrt(DIM)
    return v / np.linalg.norm(v)


def test_a_lecture_of_one_voice_is_all_lecturer():
    rng = np.random.default_rng(2)
    [lecturer] = voices(1)
    labeller = SpeakerLabeller()
    labels = [labeller.label(said(lecturer, rng), float(rng.uniform(0.4, 9.0))) for _ in range(300)]
    assert set(labels) == {"lecturer"}
    assert labeller.voices == 1


def test_two_questions_from_the_room_are_audience_and_nothing_else():
    rng = np.random.default_rng(3)
    lecturer, first, second = voices(3)
    plan = ["L"] * 12 + ["A"] + ["L"] * 10 + ["B", "B"] + ["L"] * 8
    who = {"L": lecturer, "A": first, "B": second}
    labeller = SpeakerLabeller()
    labels = [labeller.label(said(who[p], rng), 2.0 + (k % 5)) for k, p in enumerate(plan)]
    assert labels == ["lecturer" if p == "L" else {"A": "audience-1", "B": "audience-2"}[p] for p in plan]


def test_a_short_utterance_takes_its_neighbours_label_unless_it_is_clearly_another_known_voice():
    rng = np.random.default_rng(4)
    lecturer, student = voices(2)
    labeller = SpeakerLabeller()
    for _ in range(6):
        labeller.label(said(lecturer, rng), 4.0)
    odd = said(voices(1, seed=99)[0], rng)  # a short sound like nobody known
    assert labeller.label(odd, 0.5) == "lecturer" and labeller.voices == 1, "never a phantom voice"
    assert labeller.label(said(student, rng), 3.0) == "audience-1"
    assert labeller.label(said(student, rng), 0.6) == "audience-1", "the neighbour's label"
    assert labeller.label(said(lecturer, rng), 0.6) == "lecturer", "clearly the lecturer"
    assert labeller.label(None, 2.0) == "lecturer", "no embedding: the neighbour's label"
    assert SpeakerLabeller().label(None, 2.0) is None


def test_the_lecturer_is_the_voice_with_most_speech_and_does_not_flip():
    rng = np.random.default_rng(5)
    host, lecturer = voices(2)
    labeller = SpeakerLabeller()
    opening = [labeller.label(said(host, rng), 5.0) for _ in range(4)]  # 20 s of introduction
    assert opening == ["lecturer"] * 4, "the first voice leads until another speaks more"
    talk = [labeller.label(said(lecturer, rng), 5.0) for _ in range(20)]
    # The lecturer takes over once it leads by the margin (30 s) and keeps the role for good.
    switch = talk.index("lecturer")
    assert talk[:switch] == ["audience-1"] * switch and set(talk[switch:]) == {"lecturer"}
    assert (switch + 1) * 5.0 > 20.0 + 30.0
    assert labeller.label(said(host, rng), 5.0) == "audience-2", "the host is now someone in the room"


def test_audience_numbers_go_on_after_the_ones_a_resumed_session_holds():
    rng = np.random.default_rng(6)
    lecturer, student = voices(2)
    labeller = SpeakerLabeller(first_audience=3)
    labeller.label(said(lecturer, rng), 5.0)
    assert labeller.label(said(student, rng), 3.0) == "audience-3"


def test_offline_the_lecturer_is_the_voice_with_most_speech_over_the_whole_lecture():
    rng = np.random.default_rng(5)
    host, lecturer, student = voices(3)
    plan = [(host, 5.0)] * 4 + [(lecturer, 5.0)] * 5 + [(student, 3.0)] + [(lecturer, 5.0)] * 4
    said_ = [(said(voice, rng), seconds) for voice, seconds in plan]
    online = SpeakerLabeller()
    assert [online.label(e, s) for e, s in said_][:5] == ["lecturer"] * 4 + ["audience-1"], \
        "online, 45 s of the lecturer do not lead the host's 20 s by the margin"
    labels = label_lecture(said_)
    assert labels == ["audience-1"] * 4 + ["lecturer"] * 5 + ["audience-2"] + ["lecturer"] * 4
    assert label_lecture([(said(host, rng), 4.0) for _ in range(30)]) == ["lecturer"] * 30
    assert label_lecture([(None, 2.0)]) == [None]


class ToneEncoder:
    """A stand-in for the voice model: the embedding is the tone's pitch, one voice per pitch."""

    def __init__(self, gate: threading.Event | None = None):
        self.gate = gate
        self.calls = 0

    def embed(self, pcm: np.ndarray) -> np.ndarray | None:
        if self.gate is not None:
            self.gate.wait(10)
        self.calls += 1
        spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
        if not spectrum.any():
            return None
        pitch = np.fft.rfftfreq(len(pcm), 1 / 16000)[int(spectrum.argmax())]
        v = np.zeros(8)
        v[int(round(pitch / 110)) % 8] = 1.0
        return v


def tone(seconds: float, pitch: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (8000 * np.sin(2 * np.pi * pitch * t)).astype(np.int16)


def lecture(plan: str) -> np.ndarray:
    """``L`` a 2 s lecturer sentence (220 Hz), ``Q`` a 1.5 s question (550 Hz), 0.9 s apart."""
    parts = [silence(0.5)]
    for p in plan:
        parts += [tone(2.0, 220) if p == "L" else tone(1.5, 550), silence(0.9)]
    return np.concatenate(parts)


def caption(utt: int, text: str = "words", seconds: float = 2.0) -> Caption:
    return Caption(utt, utt * 3.0, utt * 3.0 + seconds, text)


async def test_a_final_waits_for_its_embedding_and_the_ones_after_it_keep_their_order():
    gate = threading.Event()
    track = SpeakerTrack(lambda: ToneEncoder(gate), wait_s=5.0)
    try:
        track.embed(Utterance.whole(0, 0.0, tone(2.0, 220)))
        assert not track.ready(0)
        waiter = asyncio.create_task(track.wait(0))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        gate.set()
        await asyncio.wait_for(waiter, 5)
        assert track.ready(0)
        assert track.label(caption(0)) == "lecturer"
        track.embed(Utterance.whole(1, 3.0, tone(2.0, 220)))
        await track.wait(1)
        assert track.label(caption(1, text="  ")) is None, "nothing said: no speaker"
    finally:
        track.close()


async def test_a_late_embedding_is_waited_for_only_so_long():
    gate = threading.Event()
    track = SpeakerTrack(lambda: ToneEncoder(gate), wait_s=0.05)
    try:
        track.embed(Utterance.whole(0, 0.0, tone(2.0, 220)))
        await track.wait(0)
        assert track.label(caption(0)) is None and track.stats.late == 1
    finally:
        gate.set()
        track.close()


def test_an_utterance_is_embedded_in_whole_windows_and_its_end_only_when_it_matters():
    w = 25600  # 1.6 s
    assert window_spans(16000, ended=False) == []
    assert window_spans(16000, ended=True) == [(0, 16000)], "shorter than a window: all of it"
    assert window_spans(56000, ended=True) == [(0, w), (w, 2 * w)], "a 0.3 s end adds little: none"
    assert window_spans(64000, ended=True) == [(0, w), (w, 2 * w), (64000 - w, 64000)]
    assert window_spans(64000, ended=True, done=2) == [(64000 - w, 64000)]
    assert end_span(0) is None and end_span(w) is None


def stream(track: SpeakerTrack, utterance: Utterance, pcm: np.ndarray, block: int = 1600) -> None:
    for i in range(0, len(pcm), block):
        track.on_event(UtteranceAudio(utterance.utt, utterance.append(pcm[i:i + block])))


async def test_windows_are_embedded_while_the_utterance_is_spoken_each_once():
    encoder = ToneEncoder()
    track = SpeakerTrack(lambda: encoder, wait_s=5.0)
    try:
        utterance = Utterance(0, 0.0)
        track.on_event(UtteranceStarted(utterance))
        stream(track, utterance, tone(3.3, 220))
        await track.wait(0)
        assert encoder.calls == 2, "two whole windows streamed: both embedded before the end"
        utterance.finish(3.3)
        track.on_event(UtteranceEnded(utterance))
        await track.wait(0)
        assert encoder.calls == 2, "0.1 s after the last window: nothing more to embed"
        assert track.label(Caption(0, 0.0, 3.3, "words")) == "lecturer"
    finally:
        track.close()


class HeardLabeller(SpeakerLabeller):
    """A labeller that keeps the embeddings it was given."""

    def __init__(self):
        super().__init__()
        self.embeddings: list[np.ndarray | None] = []

    def label(self, embedding, seconds):
        self.embeddings.append(embedding)
        return super().label(embedding, seconds)


async def test_speech_after_a_pause_voids_the_window_made_for_that_pause():
    encoder = ToneEncoder()
    labeller = HeardLabeller()
    track = SpeakerTrack(lambda: encoder, labeller, wait_s=5.0)
    try:
        utterance = Utterance(0, 0.0)
        track.on_event(UtteranceStarted(utterance))
        stream(track, utterance, tone(1.0, 220))
        track.on_event(UtterancePaused(0, utterance.samples, 1.0))
        await track.wait(0)
        assert encoder.calls == 1, "at the pause: the whole utterance so far, being shorter than a window"
        stream(track, utterance, tone(2.2, 550))  # it went on, in another voice
        utterance.finish(3.2)
        track.on_event(UtteranceEnded(utterance))
        await track.wait(0)
        assert encoder.calls == 3, "two whole windows; nothing after them"
        track.label(Caption(0, 0.0, 3.2, "words"))
        low, high = ToneEncoder().embed(tone(1.0, 220)), ToneEncoder().embed(tone(1.0, 550))
        expected = (low + high) / np.linalg.norm(low + high)
        np.testing.assert_allclose(labeller.embeddings, [expected], atol=1e-9,
                                   err_msg="the mean of the two windows, without the pause's")
    finally:
        track.close()


class BrokenEncoder(ToneEncoder):
    """Embeds until ``broken`` is set, then fails on every clip."""

    broken = False

    def embed(self, pcm):
        if self.broken:
            raise RuntimeError("the encoder ran out of memory")
        return super().embed(pcm)


async def test_an_embedding_that_fails_keeps_the_previous_label_and_says_so_once(caplog):
    encoder = BrokenEncoder()
    track = SpeakerTrack(lambda: encoder, wait_s=5.0)
    try:
        track.embed(Utterance.whole(0, 0.0, tone(2.0, 220)))
        await track.wait(0)
        assert track.label(caption(0)) == "lecturer"
        encoder.broken = True
        for utt in (1, 2):
            track.embed(Utterance.whole(utt, utt * 3.0, tone(2.0, 550)))
            await track.wait(utt)
            assert track.label(caption(utt)) == "lecturer", "no embedding: the previous speaker's label"
        assert track.stats.failed == 2
        assert [r.message for r in caplog.records].count(
            "speaker labels: an embedding failed (the encoder ran out of memory); labels may stay as they were") == 1
    finally:
        track.close()


def labelled_pipeline(folder, url: str, heard: Heard, encoder: ToneEncoder) -> CapturePipeline:
    from capture.client import ClientOptions

    client = ClientOptions(url=url, session=folder.name, max_rate=0.0, backoff_initial_s=0.05,
                           backoff_max_s=0.1)
    return CapturePipeline(folder, client, heard.callbacks(), CaptureOptions(fast=True),
                           vad=LevelVad(), speakers=SpeakerTrack(lambda: encoder))


@pytest.fixture
def engine():
    return create_engine("fake", EngineOptions(model="per_call=0.005"))


async def test_finals_reach_the_owner_labelled_in_order(tmp_path, engine):
    heard = Heard(tmp_path / "s" / "pending")
    async with Worker(worker_settings(), engine=engine) as worker:
        capture = labelled_pipeline(tmp_path / "s", worker.url, heard, ToneEncoder())
        await capture.run(MemorySource(lecture("LLLQLLQL")), Resume(), asyncio.Event())
    got = [(c.utt, c.speaker) for c, _ in heard.finals]
    assert got == [(k, "audience-1" if p == "Q" else "lecturer") for k, p in enumerate("LLLQLLQL")]
    assert heard.spooled_at_final == [True] * 8
    assert capture.owed == 0


class GatedSource(MemorySource):
    """``pcm`` up to ``cut`` samples, then the rest once ``gate`` is set."""

    def __init__(self, pcm: np.ndarray, cut: int, gate: asyncio.Event):
        super().__init__(pcm)
        self.cut, self.gate = cut, gate

    async def _blocks(self):
        for i in range(0, len(self.pcm), self.block):
            if i >= self.cut:
                await self.gate.wait()
            yield self.pcm[i:i + self.block]
            await asyncio.sleep(0)


async def test_labels_survive_a_worker_restart(tmp_path, engine):
    """The voices live on the capture side: after the worker comes back, the question that
    opens the new connection is still audience, the lecturer still the lecturer."""
    plan = "LLLL" + "QLLQ"
    pcm = lecture(plan)
    cut = len(lecture("LLLL"))
    heard = Heard(tmp_path / "s" / "pending")
    gate = asyncio.Event()
    first = Worker(worker_settings(), engine=engine)
    await first.__aenter__()
    port = urlparse(first.url).port
    capture = labelled_pipeline(tmp_path / "s", first.url, heard, ToneEncoder())
    running = asyncio.create_task(capture.run(GatedSource(pcm, cut, gate), Resume(), asyncio.Event()))
    while len(heard.finals) < 4:
        await asyncio.sleep(0.01)
    await first.__aexit__(None, None, None)
    async with Worker(worker_settings(port=port), engine=engine):
        gate.set()
        await asyncio.wait_for(running, 30)
    assert capture.reconnects >= 1
    assert [(c.utt, c.speaker) for c, _ in heard.finals] == [
        (k, "audience-1" if p == "Q" else "lecturer") for k, p in enumerate(plan)]
