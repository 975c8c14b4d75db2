"""Engine-only real-time factor: processing seconds per second of audio.

Speech comes from espeak-ng (resampled to 16 kHz mono by sox): whole sentences
are concatenated until the next one would not fit, then padded with silence to
exactly the target length. Each length is transcribed as a batch of one clip,
``--repeats`` times after one warm-up call; the best time counts.

    python bench/engine_rtf.py --engine whisper --threads 2
    python bench/engine_rtf.py --engine sensevoice --model DIR --precision fp32

Prints a table and writes ``bench/out/engine_rtf_<engine>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fake_engine import offer_fake_engine  # noqa: E402
from bench.speech import SENTENCES, missing_tools, synth, utterance  # noqa: E402
from models import EngineError, EngineOptions, create_engine, engine_names  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent / "out"


def time_engine(args: argparse.Namespace, clips: dict[float, np.ndarray]) -> dict:
    options = EngineOptions(
        model=args.model, device=args.device, precision=args.precision, threads=args.threads
    )
    engine = create_engine(args.engine, options)
    start = time.perf_counter()
    engine.load()
    load_s = time.perf_counter() - start
    engine.warmup()
    rows = []
    for seconds, audio in clips.items():
        runs, text = [], ""
        for _ in range(args.repeats):
            start = time.perf_counter()
            text = engine.transcribe([audio], args.language)[0].text
            runs.append(time.perf_counter() - start)
        best = min(runs)
        rows.append(
            {
                "audio_s": seconds,
                "best_s": best,
                "rtf": best / seconds,
                "runs_s": runs,
                "text": text,
            }
        )
    engine.close()
    return {"model": engine.model_ref, "load_s": load_s, "results": rows}


def print_table(report: dict) -> None:
    print(
        f"engine={report['engine']} model={report['model']} device={report['device']} "
        f"precision={report['precision']} threads={report['threads']} "
        f"load={report['load_s']:.2f}s"
    )
    print(f"{'audio s':>8} {'best s':>8} {'RTF':>7}  runs s")
    for row in report["results"]:
        runs = " ".join(f"{r:.3f}" for r in row["runs_s"])
        print(f"{row['audio_s']:>8.1f} {row['best_s']:>8.3f} {row['rtf']:>7.3f}  {runs}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", required=True, choices=engine_names())
    parser.add_argument("--model", default=None, help="model name or folder (engine default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--language", default="auto")
    parser.add_argument("--lengths", default="5,10", help="utterance lengths in seconds")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    offer_fake_engine()  # --engine fake: the harness's own cost
    args = parse_args(argv)
    missing = missing_tools()
    if missing:
        print(f"needs {' and '.join(missing)} (apt-get install espeak-ng sox)", file=sys.stderr)
        return 2
    sentences = [synth(text) for text in SENTENCES]
    lengths = [float(x) for x in args.lengths.split(",")]
    clips = {seconds: utterance(seconds, sentences) for seconds in lengths}
    try:
        timings = time_engine(args, clips)
    except EngineError as exc:
        print(f"{args.engine}: {exc}", file=sys.stderr)
        return 1
    report = {
        "engine": args.engine,
        "device": args.device,
        "precision": args.precision,
        "threads": args.threads,
        "repeats": args.repeats,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        **timings,
    }
    print_table(report)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"engine_rtf_{args.engine}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
