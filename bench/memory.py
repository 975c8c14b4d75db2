"""Part 5: worker memory and CPU over a long lecture replayed at accelerated pace.

The lecture's utterances (cut by the live segmenter) are sent again and again
through the real :class:`~capture.client.StreamClient` to a worker process
started with its audio-rate limit off, as fast as it answers (at most ``owed``
finals in flight, like ``notsound live --fast``), until ``marks`` x
``mark_s`` seconds of audio have their finals. At every quarter of a mark the
feed pauses until every final is in (no audio in flight), then the worker's
RSS and CPU time are sampled with psutil; the table shows RSS at each
mark (hour 1, 2, 3 with the default ``mark_s`` of 3600 s) and the growth from
the first mark to the last, which flat memory keeps near 0 %.
"""

from __future__ import annotations

import asyncio
import time

from bench.worker import WorkerProcess
from capture.client import ClientOptions, StreamClient
from capture.utterance import Utterance
from capture.vad import SAMPLE_RATE

__all__ = ["memory_part", "MEMORY_WORKER_ARGS"]

#: worker flags for an accelerated replay: no audio-rate or frame-rate limit, no idle timeout
MEMORY_WORKER_ARGS = ["--audio-rate", "0", "--messages-per-s", "1000000", "--idle-timeout-s", "0",
                      "--no-warmup"]


class _Sampler:
    """Worker RSS/CPU at given amounts of acknowledged audio."""

    def __init__(self, worker: WorkerProcess):
        self.worker = worker
        self.acked_s = 0.0
        self.t0 = time.monotonic()
        self.cpu0 = worker.cpu_s()
        self.samples: list[dict] = []

    def on_final(self, caption, pending) -> None:
        self.acked_s += caption.end - caption.start

    def sample(self, mark_s: float) -> None:
        self.samples.append({
            "audio_h": round(mark_s / 3600, 4),
            "acked_h": round(self.acked_s / 3600, 4),
            "wall_s": round(time.monotonic() - self.t0, 2),
            "rss_mb": round(self.worker.rss_mb(), 2),
            "cpu_s": round(self.worker.cpu_s() - self.cpu0, 2),
        })


async def _send_one(client: StreamClient, utt: int, u: Utterance, position: float) -> None:
    pcm = u.pcm()
    client.start_utterance(utt, position)
    for i in range(0, len(pcm), SAMPLE_RATE):
        client.add_audio(utt, pcm[i:i + SAMPLE_RATE])
    client.end_utterance(utt)


async def _until(task: asyncio.Task, wait) -> None:
    """Await ``wait`` unless the client task ends first (then raise what it raised)."""
    waiter = asyncio.ensure_future(wait)
    await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()
        raise RuntimeError("the client stopped before the replay ended")


async def _replay(worker: WorkerProcess, utterances: list[Utterance], points: list[float],
                  sampler: _Sampler, owed: int) -> int:
    """Send utterances until each point (audio seconds) in turn; sample when all are answered."""
    key = worker.key_file.read_text().strip()
    client = StreamClient(ClientOptions(url=worker.url, session="memory", key=key, max_rate=0.0),
                          on_final=sampler.on_final)
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    fed, utt, position = 0.0, 0, 0.0
    try:
        for point in points:
            while fed < point:
                u = utterances[utt % len(utterances)]
                await _send_one(client, utt, u, position)
                utt, fed, position = utt + 1, fed + u.duration, position + u.duration + 1.0
                await _until(task, client.wait_below(owed))
            await _until(task, client.wait_settled(None))  # quiet: no audio in flight
            await asyncio.sleep(0.2)
            sampler.sample(point)
        stop.set()
        await asyncio.wait_for(task, 120)
    finally:
        task.cancel()
    return utt


def memory_part(worker: WorkerProcess, utterances: list[Utterance], *, marks: int = 3,
                mark_s: float = 3600.0, owed: int = 8) -> dict:
    """Replay ``marks * mark_s`` seconds of utterances; RSS at every mark and the growth."""
    utterances = [u for u in utterances if u.duration > 0]
    sampler = _Sampler(worker)
    rss_start = worker.rss_mb()
    points = [mark_s * (i + 1) / 4 for i in range(4 * marks)]
    count = asyncio.run(_replay(worker, utterances, points, sampler, owed))
    wall = time.monotonic() - sampler.t0
    at_marks = sampler.samples[3::4]  # a sample every quarter mark: every 4th is a mark
    first, last = (at_marks[0]["rss_mb"], at_marks[-1]["rss_mb"]) if at_marks else (None, None)
    growth = round((last - first) / first * 100, 2) if first else None
    tail = (round((last - at_marks[-2]["rss_mb"]) / at_marks[-2]["rss_mb"] * 100, 2)
            if len(at_marks) > 1 else None)
    cpu = sampler.samples[-1]["cpu_s"] if sampler.samples else None
    return {
        "mark_s": mark_s, "marks": marks, "audio_s": round(sampler.acked_s, 1),
        "utterances": count, "wall_s": round(wall, 1),
        "speedup_x_realtime": round(sampler.acked_s / wall, 1) if wall else None,
        "rss_start_mb": round(rss_start, 1),
        "rss_at_marks_mb": [s["rss_mb"] for s in at_marks],
        "growth_first_to_last_pct": growth,
        "growth_first_to_last_mb": round(last - first, 2) if first else None,
        "growth_last_mark_pct": tail,
        "worker_cpu_s": cpu, "worker_cores": round(cpu / wall, 3) if cpu and wall else None,
        "samples": sampler.samples,
    }
