"""Live final latency on a shared worker with and without a polish job beside it, and with recording off.

One real-time stream of the bench's lecture (``notsound live --input``, VAD
and recording as in production) goes to an in-process worker whose engine is
the fake one with a real-time factor (``--model rtf=...``: a 28 s polish
window then costs ``28 * rtf`` seconds of engine time, a 4 s final ``4 * rtf``).
Three runs: recording on, recording on with ``notsound polish --server`` of
another session running on the same worker all along, recording off. Prints
one JSON object with each run's final latency p50/p95 (seconds from an
utterance's end in the audio to its final), the polish windows decoded meanwhile
and the load average. A benchmark, never a test::

    PYTHONPATH=. python -m bench.polish_server_bench --model rtf=0.05,per_call=0.02
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import statistics
import tempfile
import threading
from pathlib import Path

import numpy as np

from bench.fake_engine import offer_fake_engine
from bench.speech import LECTURE, lecture, write_wav
from common.audio import SAMPLE_RATE
from library.folder import Final, Journal, new_part_path
from library.opus import OpusWriter


def _polish_source(folder: Path, seconds: float) -> Path:
    """A session to polish: ``seconds`` of recording, a 3 s burst of noise (one caption) every 4 s."""
    rng = np.random.default_rng(0)
    pcm = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.int16)
    journal = Journal(folder)
    for utt, start in enumerate(np.arange(0.5, seconds - 4.0, 4.0)):
        i = int(start * SAMPLE_RATE)
        pcm[i:i + 3 * SAMPLE_RATE] = (rng.standard_normal(3 * SAMPLE_RATE) * 3000).astype(np.int16)
        journal.append(Final(utt, float(start), float(start) + 3.0, f"live {utt}", "en"))
    journal.close()
    writer = OpusWriter(new_part_path(folder, 0.0))
    writer.write(pcm)
    writer.close()
    return folder


def _polish_until(url: str, source: Path, stop: threading.Event, windows: list[int], tag: str) -> None:
    """Polish copies of ``source`` on the worker, one after the other, until ``stop``."""
    from notsound.polish import polish_session
    from notsound.polish_remote import RemoteDecoder

    class Counting(RemoteDecoder):
        def decode(self, *args, **kwargs):
            if stop.is_set():
                raise InterruptedError
            segments = super().decode(*args, **kwargs)
            windows[0] += 1
            return segments

    n = 0
    while not stop.is_set():
        copy = source.parent / f"copy-{tag}-{n}"
        shutil.copytree(source, copy)
        decoder = Counting(url, session=copy.name)
        try:
            polish_session(copy, decoder)
        except InterruptedError:
            pass
        finally:
            decoder.close()
        n += 1


async def _one_run(url: str, wav: Path, out: Path, name: str, record: bool, polish: Path | None) -> dict:
    from rich.console import Console

    from notsound.liverun import LiveSettings, run_live
    from notsound.view import CaptionView

    stop, windows = threading.Event(), [0]
    polisher = None
    if polish is not None:
        polisher = threading.Thread(target=_polish_until, args=(url, polish, stop, windows, name),
                                    daemon=True)
        polisher.start()
    try:
        settings = LiveSettings(input=wav, server=url, out=out, session=name, plain=True, notes=False,
                                record=record)
        quiet = CaptionView(console=Console(file=io.StringIO(), width=100), plain=True)
        result = await run_live(settings, None, view=quiet)
    finally:
        stop.set()
        if polisher is not None:
            await asyncio.to_thread(polisher.join)
    latencies = sorted(result.latencies)
    return {"finals": len(latencies), "latency_p50_s": round(statistics.median(latencies), 3),
            "latency_p95_s": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3),
            "polish_windows_meanwhile": windows[0] if polish is not None else None,
            "load_avg_1m_after": round(os.getloadavg()[0], 2)}


async def _main(model: str, repeat: int) -> dict:
    from live.server import Worker, WorkerSettings
    from models import EngineOptions, create_engine

    settings = WorkerSettings(host="127.0.0.1", port=0, engine="fake", warmup=False, auth=False, calibrate=False)
    report: dict = {"engine": f"fake {model}", "load_avg_before": [round(x, 2) for x in os.getloadavg()],
                    "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="polish-server-bench-") as tmp:
        out = Path(tmp)
        pcm = lecture(LECTURE)
        wav = write_wav(out / "lecture.wav", pcm)
        report["lecture_s"] = round(len(pcm) / SAMPLE_RATE, 1)
        source = _polish_source(out / "polish" / "source", 300.0)
        engine = create_engine("fake", EngineOptions(model=model))
        runs: dict[str, list[dict]] = {"record": [], "record_with_polish": [], "no_record": []}
        async with Worker(settings, engine=engine) as worker:
            for n in range(repeat):  # interleaved, so a change of load hits every condition alike
                runs["record"].append(await _one_run(worker.url, wav, out, f"a{n}", True, None))
                runs["record_with_polish"].append(await _one_run(worker.url, wav, out, f"b{n}", True, source))
                runs["no_record"].append(await _one_run(worker.url, wav, out, f"c{n}", False, None))
    report["runs"] = runs
    for name, results in runs.items():
        report[f"{name}_p95_s"] = round(statistics.median(r["latency_p95_s"] for r in results), 3)
    report["polish_vs_without_p95"] = round(report["record_with_polish_p95_s"] / report["record_p95_s"], 3)
    report["no_record_vs_record_p95"] = round(report["no_record_p95_s"] / report["record_p95_s"], 3)
    report["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rtf=0.05,per_call=0.02",
                        help="fake engine options (a realistic engine speed: rtf=S per second of audio)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each condition, interleaved")
    args = parser.parse_args()
    offer_fake_engine()
    print(json.dumps(asyncio.run(_main(args.model, args.repeat)), indent=2))


if __name__ == "__main__":
    main()
