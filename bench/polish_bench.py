"""The recording and ``notsound polish`` on the bench's lecture (whisper tiny.en, CPU).

Prints one JSON object: the WER of the live finals, of the polished layer, of
the polished layer made from the original audio instead of the Ogg Opus
recording, and of the same model on the whole file with beam 5; the polish's
real-time factor (wall seconds per second of lecture); the recording's size
per hour and the encoder's CPU time per second of audio. A benchmark, never
a test::

    PYTHONPATH=. python -m bench.polish_bench --threads 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.offline import whole_file_wer
from bench.pipeline import wer
from bench.speech import LECTURE, lecture, write_wav
from common.audio import SAMPLE_RATE
from library.folder import read_finals, read_layer, recording_parts
from library.opus import OpusWriter
from models import EngineOptions, create_engine


def _encoder_cpu(pcm: np.ndarray, folder: Path) -> float:
    """CPU seconds per second of audio to encode ``pcm`` in 0.1 s blocks, syncing every 0.5 s."""
    writer = OpusWriter(folder / "cpu.opus")
    began = time.process_time()
    for n, i in enumerate(range(0, len(pcm), 1600)):
        writer.write(pcm[i:i + 1600])
        if n % 5 == 4:
            writer.sync()
    writer.close()
    return (time.process_time() - began) / (len(pcm) / SAMPLE_RATE)


def _polish(folder: Path, threads: int, original: np.ndarray | None = None) -> tuple[float, float]:
    """(WER-ready text, wall seconds) of a polish of ``folder``; from ``original`` audio if given."""
    import notsound.polish as polish

    if original is not None:
        polish.read_part = lambda path: original  # the bench's own switch: same windows, lossless audio
    engine = create_engine("whisper", EngineOptions(threads=threads))
    engine.load()
    began = time.perf_counter()
    polish.polish_session(folder, engine)
    return " ".join(f.text for f in read_layer(folder)), time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from live.server import WorkerSettings
    from notsound.liverun import LiveSettings, run_live

    pcm = lecture(LECTURE)
    reference = " ".join(LECTURE)
    duration = len(pcm) / SAMPLE_RATE
    with tempfile.TemporaryDirectory(prefix="polish-bench-") as tmp:
        out = Path(tmp)
        wav = write_wav(out / "lecture.wav", pcm)
        live = LiveSettings(input=wav, fast=True, out=out, session="s", plain=True, notes=False)
        worker = WorkerSettings(engine="whisper", port=0, threads=args.threads)
        asyncio.run(run_live(live, worker))
        folder = out / "s"
        live_text = " ".join(f.text for f in read_finals(folder))
        [part] = recording_parts(folder)
        mb_per_hour = part.path.stat().st_size / 1e6 / duration * 3600
        shutil.copytree(folder, out / "original")
        polished_text, polish_s = _polish(folder, args.threads)
        original_text, _ = _polish(out / "original", args.threads, original=pcm)
        whole = whole_file_wer(create_engine("whisper", EngineOptions(threads=args.threads)), pcm, reference)
        report = {
            "lecture_s": round(duration, 1),
            "wer_live_finals": round(wer(reference, live_text), 4),
            "wer_polished": round(wer(reference, polished_text), 4),
            "wer_polished_from_original": round(wer(reference, original_text), 4),
            "wer_whole_file_beam5": round(whole["wer"], 4),
            "polish_rtf": round(polish_s / duration, 3),
            "recording_mb_per_hour": round(mb_per_hour, 2),
            "encoder_cpu_share_of_a_core": round(_encoder_cpu(pcm, out), 4),
            "threads": args.threads,
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
