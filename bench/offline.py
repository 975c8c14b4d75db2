"""Parts 2 and 4: the engine alone, and the scheduler fed as fast as it goes.

Part 2 cuts the lecture into utterances with the same :class:`Segmenter`
(and the same VAD options) the live path uses, then transcribes each one alone
(a batch of one) after a warm-up call, in up to 3 passes, keeping the fastest
run of each (other processes share the CPUs): that is the engine time of each
final. Taking the fastest run makes the overhead below, if anything, look larger.

Pipeline overhead, per utterance at one stream::

    overhead_s = final_latency_s - hangover_s - engine_s
    overhead   = overhead_s / engine_s

``final_latency_s`` is the end-of-speech-to-client latency of part 1 and
``hangover_s`` the VAD hangover: the silence the segmenter waits for before it
declares an utterance over (``VadOptions.silence_needed_s`` of the utterance's
length, from 0.5 s for a short one down to 0.15 s, but at least the 0.2 s end
padding). What is left is everything that is
neither waiting for silence nor the model: block pacing (0.1 s source blocks,
32 ms VAD windows), the WebSocket hops, the scheduler's queue (a partial
already running when the final arrives delays it), thread hand-offs and JSON.
The table shows the median of the per-utterance ratios (a headline that one
utterance slowed by another process cannot swing) and the aggregate
``sum(overhead_s) / sum(engine_s)``. On shared CPUs a real engine is also
slowed inside the pipeline (capture, the worker's loop and other processes
compete for the cores), which lands in ``overhead_s`` too; the ``fake-rtf0.06``
row (sleeps like SenseVoice fp32 computes, using no CPU) shows the overhead
without that effect.

Part 4 feeds the real :class:`~live.scheduler.Scheduler` directly: ``streams``
producers each keep up to ``owed`` finals in flight (as ``notsound live
--fast`` does with ``max_owed``), and throughput is seconds of audio
transcribed per wall second, with ``max_batch`` 16 (batched) versus 1
(one at a time), each run twice in turn (the second round only if the
first took under 30 s) and the better run kept. Partials
are left out: in a fast replay they are stale.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

from bench.pipeline import hangover_s, summary
from capture.segmenter import Segmenter, UtteranceEnded
from capture.utterance import Utterance
from capture.vad import SAMPLE_RATE, VadOptions
from live.calibrate import ANY_BATCH, BatchPolicy, calibrate_batching
from live.scheduler import Scheduler, SchedulerOptions
from models import Engine

__all__ = ["cut_utterances", "engine_times", "overhead", "throughput_part"]


def cut_utterances(pcm: np.ndarray, block: int = 1600) -> list[Utterance]:
    """The utterances the live path's segmenter makes of ``pcm`` (0.1 s blocks, as FileSource)."""
    segmenter = Segmenter(VadOptions())
    events = []
    for i in range(0, len(pcm), block):
        events += segmenter.feed(pcm[i:i + block])
    events += segmenter.flush()
    return [e.utterance for e in events if isinstance(e, UtteranceEnded)]


def engine_times(engine: Engine, utterances: list[Utterance], language: str = "auto",
                 repeats: int = 3, budget_s: float = 45.0) -> dict:
    """Part 2: each utterance transcribed alone; the best of up to ``repeats`` passes.

    Other processes share the CPUs, so more passes mean fewer inflated times;
    a pass after the first starts only while the part has used less than ``budget_s``.
    """
    engine.warmup()
    best = [float("inf")] * len(utterances)
    texts = [""] * len(utterances)
    started = time.perf_counter()
    passes = 0
    while passes < repeats and (passes == 0 or time.perf_counter() - started < budget_s):
        for i, u in enumerate(utterances):
            t0 = time.perf_counter()
            texts[i] = engine.transcribe([u.pcm()], language)[0].text
            best[i] = min(best[i], time.perf_counter() - t0)
        passes += 1
    rows = [{"utt": u.utt, "start": round(u.start, 3), "duration_s": round(u.duration, 3),
             "engine_s": round(best[i], 4), "text": texts[i][:80]} for i, u in enumerate(utterances)]
    audio = sum(u.duration for u in utterances)
    rtfs = [r["engine_s"] / r["duration_s"] for r in rows if r["duration_s"] > 0]
    return {"utterances": len(rows), "audio_s": round(audio, 2), "passes": passes,
            "engine_s": summary([r["engine_s"] for r in rows]),
            "rtf": round(sum(best) / audio, 4) if audio else None,
            "rtf_p50": round(float(np.median(rtfs)), 4) if rtfs else None, "per_utterance": rows}


def overhead(pipeline_utts: list[dict], engine_rows: list[dict], tolerance_s: float = 0.1) -> dict:
    """Pipeline overhead at one stream (formula in the module doc), matched by start time."""
    matched = []
    for u in pipeline_utts:
        best = min(engine_rows, key=lambda e: abs(e["start"] - u["start"]), default=None)
        if best is None or abs(best["start"] - u["start"]) > tolerance_s:
            continue
        over = u["final_latency_s"] - hangover_s(u["duration_s"]) - best["engine_s"]
        matched.append((over, best["engine_s"]))
    if not matched:
        return {"matched": 0, "overhead_s": summary([]), "ratio": None, "ratio_median": None}
    overs = [o for o, _ in matched]
    engine_total = sum(e for _, e in matched)
    ratios = [o / e for o, e in matched if e > 0.005]  # a ratio to ~0 s of engine means nothing
    return {
        "matched": len(matched),
        "overhead_s": summary(overs),
        "ratio": round(sum(overs) / engine_total, 3) if engine_total > 0.005 * len(matched) else None,
        "ratio_median": round(float(np.median(ratios)), 3) if ratios else None,
    }


async def _feed(engine: Engine, clips: list[list[np.ndarray]], max_batch: int, owed: int,
                policy: BatchPolicy = ANY_BATCH) -> dict:
    scheduler = Scheduler(engine, SchedulerOptions(max_batch=max_batch), policy)
    scheduler.start()

    async def stream(own: list[np.ndarray]) -> None:
        inflight: set[asyncio.Future] = set()
        for clip in own:
            while len(inflight) >= owed:
                _, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            inflight.add(scheduler.submit_final(clip))
        await asyncio.gather(*inflight)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(stream(own) for own in clips))
    finally:
        wall = time.perf_counter() - started
        await scheduler.stop()
    audio = sum(len(c) for own in clips for c in own) / SAMPLE_RATE
    stats = scheduler.stats
    return {"max_batch": max_batch, "audio_s": round(audio, 2), "wall_s": round(wall, 3),
            "audio_s_per_s": round(audio / wall, 3), "engine_calls": stats.engine_calls,
            "largest_batch": stats.max_batch_seen}


def throughput_part(engine: Engine, utterances: list[Utterance], *, streams: int = 4,
                    per_stream: int = 3, owed: int = 8, rounds: int = 2,
                    budget_s: float = 30.0) -> dict:
    """Part 4: batched (max_batch 16, under the worker's measured batching policy) versus
    one at a time (max_batch 1) at ``streams`` streams."""
    clips = [[utterances[(k * per_stream + i) % len(utterances)].pcm() for i in range(per_stream)]
             for k in range(streams)]
    engine.warmup()
    policy = calibrate_batching(engine, max_batch=16)
    runs: dict[int, list[dict]] = {1: [], 16: []}
    started = time.perf_counter()
    for done in range(rounds):  # alternate, keep the best of each: other processes share the CPUs
        if done and time.perf_counter() - started > budget_s:
            break
        for max_batch in runs:
            runs[max_batch].append(asyncio.run(_feed(engine, clips, max_batch=max_batch, owed=owed,
                                                     policy=policy if max_batch > 1 else ANY_BATCH)))
    one, batched = (max(runs[m], key=lambda r: r["audio_s_per_s"]) for m in (1, 16))
    return {"streams": streams, "utterances": streams * per_stream, "rounds": len(runs[1]),
            "calibration": policy.describe(),
            "one_at_a_time": one,
            "batched": batched,
            "ratio": round(batched["audio_s_per_s"] / one["audio_s_per_s"], 3)}


def whole_file_wer(engine: Engine, pcm: np.ndarray, reference: str, beam_size: int = 5) -> dict:
    """The same whisper model on the whole lecture at once, beam 5, faster-whisper's defaults
    otherwise (previous text as prompt, timestamps): the offline accuracy a stream aims at."""
    from faster_whisper import WhisperModel

    from bench.pipeline import wer
    from models.whisper import resolve_model_dir

    model = WhisperModel(resolve_model_dir(engine.model_ref), device="cpu",
                         cpu_threads=engine.options.threads or 0)
    started = time.perf_counter()
    segments, _ = model.transcribe(pcm.astype(np.float32) / 32768.0, beam_size=beam_size, vad_filter=False)
    text = " ".join(seg.text.strip() for seg in segments)
    return {"beam_size": beam_size, "wer": wer(reference, text), "wall_s": round(time.perf_counter() - started, 2),
            "text": text}
