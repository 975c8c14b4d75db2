"""The engine scheduler, driven directly with the deterministic fake engine."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from bench.fake_engine import FakeEngine, fake_text
from live.calibrate import ANY_BATCH, BatchPolicy
from live.scheduler import Scheduler, SchedulerOptions
from models import NO_HINTS, EngineError, EngineOptions, Transcript, create_engine

from .conftest import noise


def fake(model: str = "") -> FakeEngine:
    engine = create_engine("fake", EngineOptions(model=model))
    assert isinstance(engine, FakeEngine)
    return engine


@pytest.fixture
async def make_scheduler() -> AsyncIterator[Callable[..., Scheduler]]:
    made: list[Scheduler] = []

    def _make(engine: FakeEngine, policy: BatchPolicy = ANY_BATCH, **options) -> Scheduler:
        scheduler = Scheduler(engine, SchedulerOptions(**options), policy)
        scheduler.start()
        made.append(scheduler)
        return scheduler

    yield _make
    for scheduler in made:
        await scheduler.stop()


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` holds (checked every few ms), failing after ``timeout``."""
    async def _poll() -> None:
        while not predicate():
            await asyncio.sleep(0.002)

    await asyncio.wait_for(_poll(), timeout)


class Sink:
    """Collects delivered partials; ``stale`` can be flipped to make the request stale."""

    def __init__(self) -> None:
        self.delivered: list[Transcript] = []
        self.event = asyncio.Event()
        self.stale = False

    def deliver(self, result: Transcript) -> None:
        self.delivered.append(result)
        self.event.set()

    def is_stale(self) -> bool:
        return self.stale

    async def wait(self, timeout: float = 5.0) -> Transcript:
        await asyncio.wait_for(self.event.wait(), timeout)
        return self.delivered[-1]


def request(scheduler: Scheduler, key, audio: np.ndarray, sink: Sink, language: str = "auto") -> None:
    scheduler.request_partial(key, audio, sink.deliver, sink.is_stale, language=language)


# -- partials ----------------------------------------------------------------


async def test_only_the_newest_partial_of_a_key_is_run_and_older_ones_count_as_dropped(make_scheduler):
    engine = fake()
    scheduler = make_scheduler(engine)
    sink = Sink()
    clips = [noise(0.5, seed) for seed in range(3)]
    for clip in clips:  # all before the scheduler gets to run
        request(scheduler, "k", clip, sink)

    result = await sink.wait()

    assert result.text == fake_text(clips[-1])
    assert [t.text for t in sink.delivered] == [fake_text(clips[-1])]
    assert engine.calls == [1]
    assert scheduler.stats.partials_dropped == 2
    assert scheduler.stats.partials == 1


async def test_partials_of_different_keys_are_all_run_in_one_batch(make_scheduler):
    engine = fake()
    scheduler = make_scheduler(engine)
    sinks = {key: Sink() for key in "abc"}
    clips = {key: noise(0.4, i) for i, key in enumerate("abc")}
    for key in "abc":
        request(scheduler, key, clips[key], sinks[key])

    for key in "abc":
        assert (await sinks[key].wait()).text == fake_text(clips[key])
    assert engine.calls == [3]
    assert scheduler.stats.partials_dropped == 0


async def test_a_stale_partial_is_dropped_without_running_it(make_scheduler):
    engine = fake()
    scheduler = make_scheduler(engine)
    stale, fresh = Sink(), Sink()
    stale.stale = True
    request(scheduler, "stale", noise(0.5, 1), stale)
    request(scheduler, "fresh", noise(0.5, 2), fresh)

    await fresh.wait()

    assert stale.delivered == []
    assert engine.calls == [1]  # only the fresh one went to the engine
    assert scheduler.stats.partials_dropped == 1


async def test_a_partial_that_goes_stale_while_the_engine_is_busy_is_dropped(make_scheduler):
    engine = fake("per_call=0.15")
    scheduler = make_scheduler(engine)
    final = scheduler.submit_final(noise(1.0, 0))
    victim, witness = Sink(), Sink()
    request(scheduler, "victim", noise(0.5, 1), victim)
    request(scheduler, "witness", noise(0.5, 2), witness)
    await until(lambda: len(engine.calls) == 1)  # the final's call is running
    victim.stale = True  # e.g. its utterance ended meanwhile

    await final
    await witness.wait()

    assert victim.delivered == []
    assert engine.calls == [1, 1]
    assert scheduler.stats.partials_dropped == 1


async def test_a_partial_that_goes_stale_during_its_own_engine_call_is_not_delivered(make_scheduler):
    engine = fake("per_call=0.15")
    scheduler = make_scheduler(engine)
    sink = Sink()
    request(scheduler, "k", noise(0.5, 1), sink)
    await until(lambda: len(engine.calls) == 1)
    sink.stale = True
    final = scheduler.submit_final(noise(0.2, 2))  # runs after the partial's call

    await asyncio.wait_for(final, 5)

    assert sink.delivered == []
    assert scheduler.stats.partials == 0


async def test_cancelled_partials_of_a_stream_are_not_run(make_scheduler):
    engine = fake()
    scheduler = make_scheduler(engine)
    gone, kept = Sink(), Sink()
    request(scheduler, ("gone", 1), noise(0.3, 1), gone)
    request(scheduler, ("kept", 1), noise(0.3, 2), kept)
    scheduler.cancel_partials(lambda key: key[0] == "gone")

    await kept.wait()

    assert gone.delivered == []
    assert engine.calls == [1]


async def test_partial_batches_respect_partial_budget(make_scheduler):
    engine = fake()
    scheduler = make_scheduler(engine, partial_budget_s=2.5)
    sinks = [Sink() for _ in range(5)]
    for i, sink in enumerate(sinks):
        request(scheduler, i, noise(1.0, i), sink)

    for sink in sinks:
        await sink.wait()
    assert engine.calls == [2, 2, 1]


# -- finals ------------------------------------------------------------------


async def test_final_resolves_to_the_engine_transcript_of_its_audio(make_scheduler):
    engine = fake()
    scheduler = make_scheduler(engine)
    clip = noise(1.3, 5)
    result = await asyncio.wait_for(scheduler.submit_final(clip, "de"), 5)
    assert result == Transcript(text=fake_text(clip), lang="de", emotion="NEUTRAL")
    assert scheduler.stats.finals == 1


async def test_finals_run_before_partials_that_were_queued_earlier(make_scheduler):
    engine = fake()
    scheduler = make_scheduler(engine)
    order: list[str] = []
    sink = Sink()
    scheduler.request_partial("p", noise(0.5, 1), lambda r: (order.append("partial"), sink.deliver(r)),
                              sink.is_stale)
    finals = [scheduler.submit_final(noise(0.5, 10 + i)) for i in range(2)]
    for future in finals:
        future.add_done_callback(lambda _: order.append("final"))

    await asyncio.wait_for(asyncio.gather(*finals), 5)
    await sink.wait()

    assert order == ["final", "final", "partial"]
    assert engine.calls == [2, 1]


async def test_a_final_submitted_during_a_partial_call_goes_before_the_next_partials(make_scheduler):
    engine = fake("per_call=0.15")
    scheduler = make_scheduler(engine, max_batch=1)
    first, second = Sink(), Sink()
    request(scheduler, "first", noise(0.5, 1), first)
    await until(lambda: len(engine.calls) == 1)  # first partial is in the engine
    request(scheduler, "second", noise(0.5, 2), second)
    final = scheduler.submit_final(noise(0.5, 3))

    await asyncio.wait_for(final, 5)

    assert first.delivered and not second.delivered  # the final overtook the queued partial
    await second.wait()
    assert engine.calls == [1, 1, 1]


async def test_final_batches_respect_max_batch(make_scheduler):
    engine = fake()
    scheduler = make_scheduler(engine, max_batch=3)
    clips = [noise(0.2, i) for i in range(7)]
    futures = [scheduler.submit_final(c) for c in clips]

    results = await asyncio.wait_for(asyncio.gather(*futures), 5)

    assert [r.text for r in results] == [fake_text(c) for c in clips]
    assert engine.calls == [3, 3, 1]
    assert scheduler.stats.max_batch_seen == 3


async def test_final_batches_respect_batch_budget_seconds(make_scheduler):
    engine = fake()
    scheduler = make_scheduler(engine, batch_budget_s=2.5)
    clips = [noise(1.0, i) for i in range(5)]
    futures = [scheduler.submit_final(c) for c in clips]

    results = await asyncio.wait_for(asyncio.gather(*futures), 5)

    assert [r.text for r in results] == [fake_text(c) for c in clips]
    assert engine.calls == [2, 2, 1]
    assert scheduler.stats.audio_seconds == pytest.approx(5.0)


async def test_a_final_longer_than_the_batch_budget_still_runs_alone(make_scheduler):
    engine = fake()
    scheduler = make_scheduler(engine, batch_budget_s=1.0)
    long, short = noise(3.0, 1), noise(0.5, 2)
    results = await asyncio.wait_for(
        asyncio.gather(scheduler.submit_final(long), scheduler.submit_final(short)), 5)
    assert [r.text for r in results] == [fake_text(long), fake_text(short)]
    assert engine.calls == [1, 1]


async def test_finals_of_different_languages_are_not_batched_together(make_scheduler):
    engine = fake()
    scheduler = make_scheduler(engine)
    futures = [scheduler.submit_final(noise(0.2, i), lang) for i, lang in enumerate("en zh en zh".split())]
    results = await asyncio.wait_for(asyncio.gather(*futures), 5)
    assert [r.lang for r in results] == ["en", "zh", "en", "zh"]
    assert sorted(engine.calls) == [2, 2]


async def test_a_final_whose_owner_went_away_is_not_sent_to_the_engine(make_scheduler):
    engine = fake("per_call=0.1")
    scheduler = make_scheduler(engine)
    running = scheduler.submit_final(noise(0.5, 1))
    await until(lambda: len(engine.calls) == 1)
    abandoned = scheduler.submit_final(noise(0.5, 2))
    kept = scheduler.submit_final(noise(0.5, 3))
    abandoned.cancel()

    await asyncio.wait_for(asyncio.gather(running, kept), 5)

    assert engine.calls == [1, 1]
    assert scheduler.stats.finals == 2


async def test_engine_failure_fails_the_batch_of_finals_and_the_scheduler_keeps_working(make_scheduler):
    engine = fake("fail=1")
    scheduler = make_scheduler(engine)
    failed = [scheduler.submit_final(noise(0.3, i)) for i in range(3)]

    outcomes = await asyncio.wait_for(asyncio.gather(*failed, return_exceptions=True), 5)

    assert all(isinstance(o, EngineError) for o in outcomes)
    engine.fail = False
    clip = noise(0.3, 9)
    later = await asyncio.wait_for(scheduler.submit_final(clip), 5)
    assert later.text == fake_text(clip)
    sink = Sink()
    request(scheduler, "k", clip, sink)
    assert (await sink.wait()).text == fake_text(clip)


async def test_engine_failure_on_partials_only_misses_that_update(make_scheduler):
    engine = fake("fail=1")
    scheduler = make_scheduler(engine)
    sink = Sink()
    request(scheduler, "k", noise(0.3, 1), sink)
    await until(lambda: len(engine.calls) == 1)
    engine.fail = False
    clip = noise(0.3, 2)
    result = await asyncio.wait_for(scheduler.submit_final(clip), 5)
    assert result.text == fake_text(clip)
    assert sink.delivered == []


async def test_stop_cancels_the_finals_still_queued(make_scheduler):
    engine = fake("per_call=0.2")
    scheduler = make_scheduler(engine, max_batch=1)
    futures = [scheduler.submit_final(noise(0.2, i)) for i in range(3)]
    await until(lambda: len(engine.calls) == 1)

    await scheduler.stop()

    assert all(f.cancelled() for f in futures)


# -- partial cadence -----------------------------------------------------------


async def test_partial_interval_is_the_base_cadence_while_the_engine_is_idle(make_scheduler):
    scheduler = make_scheduler(fake(), partial_every_s=0.6)
    assert scheduler.partial_interval_s() == pytest.approx(0.6)


async def test_partial_interval_stretches_to_the_cap_while_finals_are_backlogged(make_scheduler):
    # calls long against the loop's own gaps between them, so the engine reads as busy anywhere
    engine = fake("per_call=0.1")
    base, cap = 0.5, 3.0
    scheduler = make_scheduler(engine, max_batch=1, partial_every_s=base, max_partial_slowdown=cap)
    futures = [scheduler.submit_final(noise(0.2, i)) for i in range(8)]
    seen: list[float] = []
    for future in futures:
        seen.append(scheduler.partial_interval_s())
        await asyncio.wait_for(future, 5)
    after = scheduler.partial_interval_s()

    assert seen[0] == pytest.approx(base * cap)  # backlog: the full stretch at once
    assert all(base <= s <= base * cap + 1e-9 for s in seen)
    assert base < after <= base * cap  # the engine was busy all along: still stretched
    assert engine.calls == [1] * 8


async def test_partial_interval_stretches_under_a_continuous_partial_backlog_but_never_past_the_cap(
        make_scheduler):
    engine = fake("per_call=0.1")  # long against the loop's gaps between calls on any machine
    base, cap = 0.4, 2.0
    scheduler = make_scheduler(engine, partial_every_s=base, max_partial_slowdown=cap)
    seen: list[float] = []
    done = asyncio.Event()
    count = 0

    def deliver(_: Transcript) -> None:  # keep the engine busy: ask again at once
        nonlocal count
        count += 1
        seen.append(scheduler.partial_interval_s())
        if count < 12:
            scheduler.request_partial("k", noise(0.2, count), deliver, lambda: False)
        else:
            done.set()

    scheduler.request_partial("k", noise(0.2, 0), deliver, lambda: False)
    await asyncio.wait_for(done.wait(), 5)

    assert seen[-1] > seen[0]
    assert seen[-1] > base * 1.2
    assert max(seen) <= base * cap + 1e-9
    assert scheduler.stats.engine_calls == 12


# -- polish: the lowest priority --------------------------------------------------


class GatedEngine(FakeEngine):
    """The fake engine; its first polish call waits for ``gate`` (so jobs queue up behind it)."""

    def __init__(self) -> None:
        super().__init__(EngineOptions())
        self.entered = threading.Event()
        self.gate = threading.Event()

    def transcribe_long(self, audio, language="auto", hints=NO_HINTS):
        if not self.entered.is_set():
            self.entered.set()
            assert self.gate.wait(5.0)
        return super().transcribe_long(audio, language, hints)


async def test_a_final_waits_behind_at_most_one_polish_call_and_partials_go_before_polish(make_scheduler):
    engine = GatedEngine()
    scheduler = make_scheduler(engine)
    polish = [scheduler.submit_polish(noise(5.0, seed)) for seed in range(3)]
    await until(engine.entered.is_set)
    final = scheduler.submit_final(noise(1.0, 7))
    sink = Sink()
    request(scheduler, "k", noise(0.5, 8), sink)
    engine.gate.set()
    await asyncio.gather(final, *polish, sink.wait())
    assert engine.kinds == ["polish", "final", "partial", "polish", "polish"]
    [segment] = polish[1].result()
    assert segment.text == fake_text(noise(5.0, 1)) and segment.end == 5.0 and len(segment.words) == 3
    assert scheduler.stats.polish == 3 and scheduler.stats.engine_calls == 5


async def test_no_polish_starts_while_a_stream_has_an_utterance_open(make_scheduler):
    engine = fake()
    scheduler = make_scheduler(engine)
    scheduler.set_speaking("stream", True)
    polish = scheduler.submit_polish(noise(5.0, 1))
    await scheduler.submit_final(noise(1.0, 2))
    # Had the polish started once the first final was done, this one would wait behind it.
    await scheduler.submit_final(noise(1.0, 3))
    assert engine.kinds == ["final", "final"] and not polish.done()
    scheduler.set_speaking("stream", False)
    [segment] = await polish
    assert segment.text == fake_text(noise(5.0, 1)) and engine.kinds == ["final", "final", "polish"]


async def test_a_failed_or_withdrawn_polish_job_leaves_the_scheduler_working(make_scheduler):
    engine = fake("fail=1")
    scheduler = make_scheduler(engine)
    with pytest.raises(EngineError):
        await scheduler.submit_polish(noise(2.0, 1))
    engine.fail = False
    scheduler.set_speaking("stream", True)
    withdrawn = scheduler.submit_polish(noise(2.0, 2))
    withdrawn.cancel()
    scheduler.set_speaking("stream", False)
    assert await scheduler.submit_polish(noise(2.0, 3))
    assert engine.kinds == ["polish", "polish"], "the withdrawn job never reached the engine"
