"""Parts 1 and 3: real-time lectures through the whole path, timed at the client.

Each stream is ``notsound live`` as a user runs it (:func:`notsound.liverun.run_live`):
a :class:`~capture.sources.FileSource` paced at real time, Silero VAD, the
WebSocket client, and the worker in its own process. ``--events`` gives the
arrival time ``t`` of every partial and final in session-audio seconds (the
clock starts when the source starts), so for one utterance:

- final latency = ``t(final) - (end - pad_s)``: from the end of speech (the
  final's ``end`` minus the VAD's 0.2 s end padding) to the final at the
  client. It contains the VAD hangover (the pause that ends the utterance,
  :func:`hangover_s`), the engine time, and the overhead.
- first partial = ``t(first partial) - (start + pad_s)``: from the speech
  onset (the start minus its 0.2 s padding) to the first partial text.
- partial interval: gaps between consecutive partials of one utterance.
- visible latency = ``t(first partial or final showing the final's last two
  words) - (end - pad_s)``: when a reader first sees the end of the sentence
  (early finals show the final's text as a partial before the final).
- streamed WER: the finals of the stream joined, against the lecture's text.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console

from bench.speech import read_wav
from bench.worker import WorkerProcess
from capture.vad import VadOptions
from common.audio import SAMPLE_RATE
from live.server import WorkerSettings
from notsound.liverun import LiveSettings, run_live
from notsound.view import CaptionView

__all__ = ["PAD_S", "MIN_SILENCE_S", "hangover_s", "run_streams", "analyse", "latency_part", "concurrency_part",
           "summary"]

PAD_S = VadOptions().pad_s
MIN_SILENCE_S = VadOptions().min_silence_s


def hangover_s(duration_s: float) -> float:
    """Seconds after its speech that an utterance ``duration_s`` long is declared over:
    the pause that ends it, at least the end padding (a tree without the pause schedule:
    ``min_silence_s``, so the bench also measures older workers and capture code)."""
    options = VadOptions()
    schedule = getattr(options, "silence_needed_s", None)
    needed = schedule(duration_s - PAD_S) if schedule else MIN_SILENCE_S
    return max(needed, PAD_S)


def summary(values: list[float]) -> dict:
    """p50, p95, max and mean of ``values`` (None when empty)."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None, "mean": None}
    arr = np.asarray(values, dtype=float)
    return {"n": len(values), "p50": round(float(np.percentile(arr, 50)), 3),
            "p95": round(float(np.percentile(arr, 95)), 3), "max": round(float(arr.max()), 3),
            "mean": round(float(arr.mean()), 3)}


def _quiet_view() -> CaptionView:
    return CaptionView(console=Console(file=io.StringIO(), width=100), plain=True)


async def run_streams(url: str, key_file: Path, wavs: list[Path], workdir: Path) -> list[list[dict]]:
    """Play every WAV at real time as its own stream at once; their event rows."""
    shutil.rmtree(workdir / "sessions", ignore_errors=True)  # a session of the same name would resume
    workdir.mkdir(parents=True, exist_ok=True)
    paths = [workdir / f"events-{k}.jsonl" for k in range(len(wavs))]
    runs = []
    for k, wav in enumerate(wavs):
        paths[k].unlink(missing_ok=True)
        settings = LiveSettings(server=url, input=wav, fast=False, events=paths[k], key_file=key_file,
                                out=workdir / "sessions", session=f"{workdir.name}-{k}",
                                plain=True, notes=False)
        runs.append(run_live(settings, WorkerSettings(), view=_quiet_view()))
    results = await asyncio.gather(*runs)
    for k, result in enumerate(results):
        if result.owed:
            raise RuntimeError(f"stream {k} ended with {result.owed} finals owed")
    return [[json.loads(line) for line in p.read_text().splitlines() if line.strip()] for p in paths]


def words(text: str) -> list[str]:
    """Lower-case words without punctuation (for WER and last-words matching)."""
    return re.findall(r"[a-z0-9']+", text.lower())


def _visible(row: dict, shown: list[tuple[float, str]]) -> float | None:
    """Seconds from the end of speech until the final's last two words were first on screen."""
    tail = words(row["text"])[-2:]
    if not tail:
        return None
    for t, text in shown:
        seen = words(text)
        if any(seen[i:i + len(tail)] == tail for i in range(len(seen) - len(tail) + 1)):
            return round(t - (row["end"] - PAD_S), 3)
    return None


def analyse(rows: list[dict]) -> list[dict]:
    """One record per final of a stream: its times and latencies (see module doc)."""
    partials: dict[int, list[float]] = {}
    shown: dict[int, list[tuple[float, str]]] = {}
    for row in rows:
        shown.setdefault(row["utt"], []).append((row["t"], row["text"]))
        if row["type"] == "partial":
            partials.setdefault(row["utt"], []).append(row["t"])
    out = []
    for row in rows:
        if row["type"] != "final":
            continue
        times = partials.get(row["utt"], [])
        out.append({
            "utt": row["utt"], "start": row["start"], "end": row["end"],
            "duration_s": round(row["end"] - row["start"], 3),
            "final_latency_s": round(row["t"] - (row["end"] - PAD_S), 3),
            "visible_latency_s": _visible(row, shown.get(row["utt"], [])),
            "text": row["text"],
            "first_partial_s": round(times[0] - (row["start"] + PAD_S), 3) if times else None,
            "partials": len(times),
            "partial_gaps_s": [round(b - a, 3) for a, b in zip(times, times[1:], strict=False)],
        })
    return out


def _stream_stats(per_utt: list[dict]) -> dict:
    gaps = [g for u in per_utt for g in u["partial_gaps_s"]]
    first = [u["first_partial_s"] for u in per_utt if u["first_partial_s"] is not None]
    visible = [u["visible_latency_s"] for u in per_utt if u.get("visible_latency_s") is not None]
    return {
        "utterances": len(per_utt),
        "final_latency_s": summary([u["final_latency_s"] for u in per_utt]),
        "visible_latency_s": summary(visible),
        "first_partial_s": summary(first),
        "utterances_with_partials": len(first),
        "partial_interval_s": summary(gaps),
    }


def _play(worker: WorkerProcess, wavs: list[Path], workdir: Path) -> tuple[list[list[dict]], dict]:
    meter = worker.meter()
    streams = asyncio.run(run_streams(worker.url, worker.key_file, wavs, workdir))
    usage = meter.stop()
    return [analyse(rows) for rows in streams], usage.as_dict()


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    return round(float(jiwer.wer(" ".join(words(reference)), " ".join(words(hypothesis)) or "-")), 4)


def latency_part(worker: WorkerProcess, wav: Path, workdir: Path, reference: str = "") -> dict:
    """Part 1: one real-time stream of the lecture (and its WER when ``reference`` is given)."""
    (per_utt,), usage = _play(worker, [wav], workdir)
    out = {**_stream_stats(per_utt), "worker": usage, "per_utterance": per_utt}
    if reference:
        out["streamed_wer"] = wer(reference, " ".join(u["text"] for u in sorted(per_utt, key=lambda u: u["utt"])))
    return out


def concurrency_part(worker: WorkerProcess, wavs_for: Callable[[int], list[Path]], workdir: Path,
                     levels: list[int], limit_s: float = 2.0,
                     log: Callable[[str], None] = print,
                     time_left: Callable[[], float] = lambda: float("inf")) -> dict:
    """Part 3: ``n`` simultaneous real-time streams for each level until p95 passes ``limit_s``.

    A level is skipped (and the search ends) when ``time_left()`` is shorter
    than its lectures plus 20 s.
    """
    rows = []
    holds = None
    skipped = None
    for n in levels:
        needed = max(len(read_wav(p)) for p in wavs_for(n)) / SAMPLE_RATE + 20
        if time_left() < needed:
            skipped = n
            log(f"    {n} streams: skipped, the time budget is spent")
            break
        per_stream, usage = _play(worker, wavs_for(n), workdir / f"streams-{n}")
        merged = [u for s in per_stream for u in s]
        stats = _stream_stats(merged)
        p95 = stats["final_latency_s"]["p95"]
        ok = p95 is not None and p95 <= limit_s
        rows.append({"streams": n, "holds": ok, **stats, "worker": usage})
        log(f"    {n} streams: p95 final latency {p95} s, worker {usage['cores']:.2f} cores"
            f" -> {'holds' if ok else 'fails'}")
        if not ok:
            break
        holds = n
    result = {"limit_p95_s": limit_s, "levels": rows, "max_streams": holds}
    if skipped is not None:
        result["skipped_from"] = skipped
    return result


@contextlib.contextmanager
def quiet_logs():
    """Keep the client's reconnect chatter and the like out of the bench's table."""
    import logging

    previous = logging.root.level
    logging.basicConfig(level=logging.ERROR)
    logging.root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logging.root.setLevel(previous)
