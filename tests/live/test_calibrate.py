"""Batching and partial-cost decisions: the cost model, the start-up calibration, and the
scheduler obeying both (fake engines on a virtual clock: no wall-clock assumption)."""

from __future__ import annotations

import asyncio

import pytest

from bench.fake_engine import fake_text
from live.calibrate import ANY_BATCH, NO_BATCHING, BatchPolicy, CostModel, calibrate_batching
from models import DecodeHints, Engine, Transcript

from .conftest import noise
from .test_scheduler import Sink, fake, make_scheduler, request  # noqa: F401 - fixture


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class PaddingEngine(Engine):
    """Costs ``per_call + per_second * clips * longest`` seconds of a virtual clock per call."""

    name = "padding"
    pads_batches = True

    def __init__(self, clock: VirtualClock, per_call: float, per_second: float):
        super().__init__()
        self.clock, self.per_call, self.per_second = clock, per_call, per_second
        self.calls: list[int] = []

    def transcribe(self, batch, language="auto", *, hints=None, kind="final"):
        self.calls.append(len(batch))
        longest = max(len(c) for c in batch) / 16000
        self.clock.now += self.per_call + self.per_second * len(batch) * longest
        return [Transcript("x") for _ in batch]


def test_cost_model_learns_a_flat_cost_per_call():
    model = CostModel()
    assert not model.known and model.estimate(3.0) == 0.0
    for seconds in (0.5, 1.0, 2.0, 4.0, 1.5):
        model.add([seconds], 0.7)
    assert model.known
    assert model.estimate(1.0) == pytest.approx(0.7)
    assert model.estimate(10.0) == pytest.approx(0.7)


def test_cost_model_learns_a_cost_that_grows_with_length():
    model = CostModel()
    for seconds in (1.0, 2.0, 3.0, 4.0, 6.0, 8.0):
        model.add([seconds], 0.05 + 0.1 * seconds)
    assert model.estimate(5.0) == pytest.approx(0.55, rel=1e-6)
    assert model.estimate(20.0) == pytest.approx(2.05, rel=1e-6)


def test_cost_model_counts_a_batched_call_per_clip():
    model = CostModel()
    model.add([2.0, 2.0, 2.0, 2.0], 0.8)
    assert model.estimate(2.0) == pytest.approx(0.2)


#: a call costs 0.2 s plus 0.1 s per second of padded audio
MODEL = BatchPolicy(gain=1.8, overhead_s=0.2, per_second_s=0.1, max_batch=4)


def test_batch_policy_fits_clips_only_while_the_saved_overhead_pays_for_the_padding():
    assert MODEL.fits([16000])
    assert MODEL.fits([16000, 16000, 16000])  # 0.5 s batched against 0.9 s one at a time
    assert MODEL.fits([16000, 8000])  # 0.4 s against 0.55 s
    assert not MODEL.fits([160000, 16000])  # 2.2 s against 1.5 s: the padding costs more
    assert not MODEL.fits([16000] * 5)  # over max_batch
    assert NO_BATCHING.fits([16000]) and not NO_BATCHING.fits([16000, 16000])


def test_calibration_turns_batching_on_when_a_batched_call_is_faster():
    clock = VirtualClock()
    engine = PaddingEngine(clock, per_call=0.3, per_second=0.05)  # overhead per call dominates
    policy = calibrate_batching(engine, max_batch=16, clips=4, clip_s=2.0, clock=clock)
    single, batched = 4 * (0.3 + 0.1), 0.3 + 0.4
    assert policy.gain == pytest.approx(single / batched)
    assert policy.max_batch == 16
    assert policy.overhead_s == pytest.approx(0.3)  # the engine's own cost model, recovered
    assert policy.per_second_s == pytest.approx(0.05)
    assert policy.fits([32000] * 4) and not policy.fits([20 * 16000, 16000])


class BatchPenaltyEngine(PaddingEngine):
    """Like :class:`PaddingEngine`, but a batched call costs more per clip than single ones."""

    def transcribe(self, batch, language="auto", *, hints=None, kind="final"):
        per_second = self.per_second * (1.5 if len(batch) > 1 else 1.0)
        self.clock.now += per_second * len(batch) * max(len(c) for c in batch) / 16000
        return [Transcript("x") for _ in batch]


def test_calibration_turns_batching_off_when_a_batched_call_is_not_faster():
    clock = VirtualClock()
    engine = BatchPenaltyEngine(clock, per_call=0.0, per_second=0.2)
    policy = calibrate_batching(engine, max_batch=16, clip_s=2.0, clock=clock)
    assert policy.gain == pytest.approx(1 / 1.5)
    assert policy.max_batch == 1 and not policy.fits([32000, 32000])


def test_engines_that_do_not_pad_batches_are_not_timed():
    engine = fake("per_call=5")  # would take 40 s of real time if it were timed
    assert calibrate_batching(engine, max_batch=16) is ANY_BATCH
    assert engine.calls == []
    assert calibrate_batching(engine, max_batch=1) is NO_BATCHING


async def test_finals_of_very_different_lengths_are_not_batched_where_padding_costs_more(make_scheduler):  # noqa: F811
    engine = fake()
    scheduler = make_scheduler(engine, policy=MODEL)
    clips = [noise(4.0, 1), noise(0.5, 2), noise(3.8, 3), noise(0.6, 4)]
    results = await asyncio.wait_for(asyncio.gather(*[scheduler.submit_final(c) for c in clips]), 5)
    assert [r.text for r in results] == [fake_text(c) for c in clips]
    # 4.0 s goes with 3.8 s, then 0.5 s with 0.6 s; never long with short.
    assert engine.calls == [2, 2]
    assert engine.kinds == ["final"] * 4


async def test_no_batching_policy_runs_every_final_alone(make_scheduler):  # noqa: F811
    engine = fake()
    scheduler = make_scheduler(engine, policy=NO_BATCHING)
    clips = [noise(1.0, i) for i in range(3)]
    results = await asyncio.wait_for(asyncio.gather(*[scheduler.submit_final(c) for c in clips]), 5)
    assert [r.text for r in results] == [fake_text(c) for c in clips]
    assert engine.calls == [1, 1, 1]


async def test_a_partial_call_is_bounded_by_its_estimated_engine_time(make_scheduler):  # noqa: F811
    engine = fake("per_call=0.3")  # every call costs at least 0.3 s, so the estimate stays there
    scheduler = make_scheduler(engine, partial_call_s=0.35)
    scheduler.costs["partial"].add([1.0], 0.3)  # as learnt from earlier calls
    sinks = {key: Sink() for key in range(4)}
    for key, sink in sinks.items():
        request(scheduler, key, noise(1.0, key), sink)
    for sink in sinks.values():
        await sink.wait()
    assert engine.calls == [1, 1, 1, 1]


async def test_cheap_partials_still_share_one_call(make_scheduler):  # noqa: F811
    engine = fake()
    scheduler = make_scheduler(engine, partial_call_s=0.35)
    scheduler.costs["partial"].add([1.0], 0.02)
    sinks = {key: Sink() for key in range(4)}
    for key, sink in sinks.items():
        request(scheduler, key, noise(1.0, key), sink)
    for sink in sinks.values():
        await sink.wait()
    assert engine.calls == [4]


async def test_partials_of_a_long_utterance_come_less_often_when_they_are_costly(make_scheduler):  # noqa: F811
    scheduler = make_scheduler(fake(), partial_every_s=0.6, partial_share=0.5)
    assert scheduler.partial_interval_s(10.0) == pytest.approx(0.6)  # nothing learnt yet
    for seconds in (1.0, 2.0, 4.0, 8.0):
        scheduler.costs["partial"].add([seconds], 0.1 * seconds)
    assert scheduler.partial_interval_s(2.0) == pytest.approx(0.6)
    assert scheduler.partial_interval_s(15.0) == pytest.approx(1.5 / 0.5)
    for stream in ("a", "b", "c"):  # three utterances open: each gets a third of the share
        scheduler.set_speaking(stream, True)
    assert scheduler.partial_interval_s(2.0) == pytest.approx(0.2 * 3 / 0.5)
    scheduler.set_speaking("a", False)
    assert scheduler.partial_interval_s(2.0) == pytest.approx(0.2 * 2 / 0.5)


async def test_finals_and_partials_reach_the_engine_with_their_kind_and_hints(make_scheduler):  # noqa: F811
    engine = fake()
    scheduler = make_scheduler(engine)
    sink = Sink()
    scheduler.request_partial("k", noise(0.5, 1), sink.deliver, sink.is_stale,
                              hints=DecodeHints(context="earlier words"))
    await sink.wait()
    await scheduler.submit_final(noise(0.5, 2), hints=DecodeHints(context="more words", vocabulary=("CTC",)))
    assert engine.kinds == ["partial", "final"]
    assert engine.hints == [DecodeHints(context="earlier words"),
                            DecodeHints(context="more words", vocabulary=("CTC",))]


async def test_a_withdrawn_final_is_never_decoded(make_scheduler):  # noqa: F811
    engine = fake("per_call=0.2")
    scheduler = make_scheduler(engine)
    first = scheduler.submit_final(noise(0.5, 1))
    await asyncio.sleep(0)  # the first call starts
    withdrawn = scheduler.submit_final(noise(0.5, 2))
    withdrawn.cancel()
    kept = scheduler.submit_final(noise(0.5, 3))
    await asyncio.wait_for(asyncio.gather(first, kept), 5)
    assert sum(engine.calls) == 2
    assert scheduler.queued_finals == 0
