"""``make bench``: latency, overhead, concurrency, batching and memory of the live path.

    .venv/bin/python bench/run.py                         # everything (~12-15 min on 2 CPUs)
    .venv/bin/python bench/run.py --quick                 # a shorter version of everything
    .venv/bin/python bench/run.py --engines whisper --parts latency,engine

Parts (``--parts``, comma-separated; default all):

1. ``latency``: a ~65 s espeak-ng lecture at real time through FileSource ->
   VAD -> StreamClient -> WebSocket -> worker process -> client, per engine;
2. ``engine``: the same utterances transcribed alone in this process, and the
   pipeline overhead derived from 1 and 2 (formula in ``bench/offline.py``);
3. ``concurrency``: 2, 4, 8, 16 simultaneous real-time streams (~30 s lectures)
   until p95 final latency passes 2 s (levels that would overrun ``--budget-s`` are skipped);
4. ``batching``: the scheduler fed 4 streams as fast as possible, max_batch 16
   versus 1 (SenseVoice and whisper);
5. ``memory``: worker RSS over 3 h of audio replayed as fast as the fake
   engine answers, and over 3 x 20 min with a tiny random-weight SenseVoice;
6. ``gpu``: the concurrency part on CUDA in fp16 when there is a GPU;
7. ``nopartials`` (only when named): part 1 again with a worker that makes no
   partials, to see what partials cost the finals;
8. ``fluent``: the lecture's sentences run together (0.2-0.35 s pauses) at real
   time, scored per sentence (``bench/fluent.py``), at 1 stream and at 4
   (2 with ``--quick``) with a new voice per sentence; for whisper also the
   whole-file WER of the same audio.

Prints the tables and writes ``bench/out/bench.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import engines as eng  # noqa: E402
from bench import speech  # noqa: E402
from bench.fake_engine import offer_fake_engine  # noqa: E402
from bench.fluent import fluent_lectures, fluent_part  # noqa: E402
from bench.memory import MEMORY_WORKER_ARGS, memory_part  # noqa: E402
from bench.offline import (  # noqa: E402
    cut_utterances,
    engine_times,
    overhead,
    throughput_part,
    whole_file_wer,
)
from bench.pipeline import concurrency_part, latency_part, quiet_logs  # noqa: E402
from bench.report import TARGETS, print_report, write_json  # noqa: E402
from bench.worker import WorkerProcess  # noqa: E402
from live.server import default_threads  # noqa: E402
from models import EngineError  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent / "out"
PARTS = ("latency", "engine", "concurrency", "batching", "memory", "gpu", "fluent")
#: parts run only when named: part 1 again with partials off (what partials cost finals)
EXTRA_PARTS = ("nopartials",)
NO_PARTIALS = ["--partial-every-s", "100000"]
#: engines of part 4 (the fake engine has no per-call cost to amortise)
BATCHING_ENGINES = ("sensevoice", "whisper")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter lectures, 2 streams at most, 30 min of memory replay")
    p.add_argument("--engines", default="sensevoice,whisper,fake",
                   help=f"comma-separated, from {', '.join(eng.ENGINE_CHOICES)} (sensevoice = full size fp32 and int8)")
    p.add_argument("--parts", default=",".join(PARTS),
                   help=f"comma-separated, from {', '.join(PARTS)} (default: all) and {', '.join(EXTRA_PARTS)}")
    p.add_argument("--threads", type=int, default=default_threads(),
                   help="engine CPU threads (default: the worker's, all cores but one)")
    p.add_argument("--max-streams", type=int, default=16, help="most concurrent streams tried")
    p.add_argument("--memory-hours", type=int, default=3, help="marks of the memory replay")
    p.add_argument("--memory-mark-s", type=float, default=None,
                   help="audio seconds per mark (default 3600; 600 with --quick)")
    p.add_argument("--memory-sensevoice-mark-s", type=float, default=None,
                   help="mark of the replay with a tiny random SenseVoice (default 1200; 300 with --quick; 0: skip)")
    p.add_argument("--sentences", type=int, default=None,
                   help="lecture sentences to use (default all 11; 4 with --quick)")
    p.add_argument("--budget-s", type=float, default=840.0,
                   help="stop adding concurrency levels once the run has used this long (default 14 min)")
    p.add_argument("--out", type=Path, default=OUT_DIR / "bench.json")
    args = p.parse_args(argv)
    args.parts = _split(args.parts, PARTS + EXTRA_PARTS, "part")
    args.engines = _split(args.engines, tuple(eng.ENGINE_CHOICES), "engine")
    if args.memory_mark_s is None:
        args.memory_mark_s = 600.0 if args.quick else 3600.0
    if args.memory_sensevoice_mark_s is None:
        args.memory_sensevoice_mark_s = 300.0 if args.quick else 1200.0
    return args


def _split(text: str, choices: tuple[str, ...], what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in items if x not in choices]
    if bad:
        raise SystemExit(f"unknown {what} {', '.join(bad)}: choose from {', '.join(choices)}")
    return items


class Lectures:
    """The lecture of parts 1, 2, 4, 5 and one lecture per stream for part 3, as WAV files."""

    def __init__(self, workdir: Path, sentences: int, stream_speech_s: float, fluent_streams: int):
        self.workdir = workdir
        self.stream_speech_s = stream_speech_s
        self.sentences = sentences
        self.fluent_streams = fluent_streams
        self._fluent: list[speech.Spoken] = []
        self.pcm = speech.lecture(speech.LECTURE[:sentences])
        self.text = " ".join(speech.LECTURE[:sentences])
        self.main = speech.write_wav(workdir / "lecture.wav", self.pcm)
        self.utterances = cut_utterances(self.pcm)
        self._streams: dict[int, Path] = {}

    def for_streams(self, n: int) -> list[Path]:
        """``n`` different lectures of ``stream_speech_s`` of speech: the sentences rotated per stream."""
        for k in range(n):
            if k not in self._streams:
                texts = speech.pick_sentences(speech.LECTURE, self.stream_speech_s, rotate=3 * k)
                self._streams[k] = speech.write_wav(self.workdir / f"stream-{k}.wav", speech.lecture(texts))
        return [self._streams[k] for k in range(n)]

    @property
    def fluent(self) -> list[speech.Spoken]:
        """The fluent lecture, then one per stream of the fluent part's second level."""
        if not self._fluent:
            self._fluent = fluent_lectures(self.sentences, self.fluent_streams, self.stream_speech_s)
        return self._fluent

    def describe(self) -> dict:
        durations = [round(u.duration, 2) for u in self.utterances]
        return {"lecture_s": round(len(self.pcm) / speech.SAMPLE_RATE, 1), "utterances": len(durations),
                "utterance_s": durations, "stream_lecture_s": [
                    round(len(speech.read_wav(p)) / speech.SAMPLE_RATE, 1) for p in self._streams.values()],
                "fluent_lecture_s": [round(len(s.pcm) / speech.SAMPLE_RATE, 1) for s in self._fluent]}


class Deadline:
    """Seconds of the run's time budget left for optional work, ``reserve`` kept for what follows."""

    def __init__(self, budget_s: float):
        self.end = time.monotonic() + budget_s
        self.reserve = 0.0

    def left(self) -> float:
        return self.end - time.monotonic() - self.reserve


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def offline_parts(spec: eng.EngineSpec, lectures: Lectures, args: argparse.Namespace) -> dict:
    """Parts 2 and 4 with the engine loaded in this process (no worker running meanwhile)."""
    from models import create_engine

    out: dict = {}
    engine = create_engine(spec.engine, spec.options())
    started = time.perf_counter()
    engine.load()
    out["load_s"] = round(time.perf_counter() - started, 1)
    try:
        if "engine" in args.parts:
            out["engine"] = engine_times(engine, lectures.utterances)
            log(f"  engine alone: RTF {out['engine']['rtf']}, p50 {out['engine']['engine_s']['p50']} s")
        if "latency" in args.parts and spec.engine == "whisper":
            out["offline_wer"] = whole_file_wer(engine, lectures.pcm, lectures.text)
            log(f"  whole file, beam 5: WER {out['offline_wer']['wer']}")
        if "fluent" in args.parts and spec.engine == "whisper":
            main = lectures.fluent[0]
            out["fluent_offline_wer"] = whole_file_wer(engine, main.pcm, main.text)
            log(f"  fluent whole file, beam 5: WER {out['fluent_offline_wer']['wer']}")
        if "batching" in args.parts and spec.engine in BATCHING_ENGINES:
            out["batching"] = throughput_part(engine, lectures.utterances, per_stream=2 if args.quick else 3)
            log(f"  batching: {out['batching']['ratio']}x")
    finally:
        engine.close()
    return out


def live_parts(spec: eng.EngineSpec, lectures: Lectures, args: argparse.Namespace,
               workdir: Path) -> dict:
    """Parts 1 and 3 against one worker process."""
    out: dict = {}
    with WorkerProcess(spec) as worker:
        out["worker_startup_s"] = round(worker.startup_s, 1)
        log(f"  worker up in {worker.startup_s:.1f} s")
        if "latency" in args.parts:
            reference = lectures.text if spec.engine == "whisper" else ""  # the others: random weights
            out["latency"] = latency_part(worker, lectures.main, workdir / spec.key / "latency", reference)
            log(f"  1 stream: p95 final latency {out['latency']['final_latency_s']['p95']} s")
        if "concurrency" in args.parts and spec.engine != "fake":  # fakes: latency baselines only
            out["concurrency"] = _concurrency(worker, spec, lectures, args, workdir, out.get("latency"))
        if "fluent" in args.parts:
            out["fluent"] = _fluent(worker, spec, lectures, workdir / spec.key / "fluent")
    return out


def _fluent(worker: WorkerProcess, spec: eng.EngineSpec, lectures: Lectures, workdir: Path) -> dict:
    """The fluent lecture at 1 stream, then the per-stream ones at once (not for fakes)."""
    with_text = spec.engine == "whisper"  # the others: random weights, latency only
    levels = {"1": [lectures.fluent[0]]}
    if spec.engine != "fake":
        levels[str(lectures.fluent_streams)] = lectures.fluent[1:]
    out = {}
    for name, spokens in levels.items():
        out[name] = fluent_part(worker, spokens, workdir / f"streams-{name}", with_text)
        fl, vis = out[name]["final_latency_s"], out[name]["visible_latency_s"]
        log(f"  fluent, {name} stream(s): final p50/p95 {fl['p50']}/{fl['p95']} s, visible p50/p95 "
            f"{vis['p50']}/{vis['p95']} s, {out[name]['finals_per_sentence']} finals a sentence "
            f"({out[name]['committed_sentences']} sentences committed before their final), "
            f"WER {out[name].get('streamed_wer')}, worker {out[name]['worker']['cores']} cores")
    return out


def _concurrency(worker: WorkerProcess, spec: eng.EngineSpec, lectures: Lectures,
                 args: argparse.Namespace, workdir: Path, one: dict | None) -> dict:
    levels = [1] if one is None else []
    n = 2
    while n <= (2 if args.quick else args.max_streams):
        levels.append(n)
        n *= 2
    if one is not None:
        p95 = one["final_latency_s"]["p95"]
        if p95 is None or p95 > 2.0:
            return {"limit_p95_s": 2.0, "levels": [], "max_streams": 0,
                    "note": f"1 stream already at p95 {p95} s"}
    result = concurrency_part(worker, lectures.for_streams, workdir / spec.key, levels, log=log,
                              time_left=args.deadline.left)
    if result["max_streams"] is None:
        result["max_streams"] = 1 if one is not None else 0
    if one is not None:
        result["note"] = "1 stream: part 1"
    return result


def run_engine(spec: eng.EngineSpec, lectures: Lectures, args: argparse.Namespace, workdir: Path) -> dict:
    log(f"{spec.key}:")
    started = time.monotonic()
    result: dict = {"spec": {"engine": spec.engine, "model": spec.model, "precision": spec.precision,
                             "device": spec.device, "threads": spec.threads}}
    if {"engine", "batching"} & set(args.parts) or ("fluent" in args.parts and spec.engine == "whisper"):
        result.update(offline_parts(spec, lectures, args))
    if {"latency", "concurrency", "fluent"} & set(args.parts):
        result.update(live_parts(spec, lectures, args, workdir))
    if result.get("latency", {}).get("streamed_wer") is not None and result.get("offline_wer"):
        offline_wer = result["offline_wer"]["wer"]
        result["wer_ratio"] = round(result["latency"]["streamed_wer"] / offline_wer, 3) if offline_wer else None
        log(f"  streamed WER {result['latency']['streamed_wer']} = {result['wer_ratio']}x the whole file's")
    one_fluent = result.get("fluent", {}).get("1", {})
    if one_fluent.get("streamed_wer") is not None and result.get("fluent_offline_wer"):
        offline_wer = result["fluent_offline_wer"]["wer"]
        result["fluent_wer_ratio"] = round(one_fluent["streamed_wer"] / offline_wer, 3) if offline_wer else None
    if result.get("latency") and result.get("engine"):
        result["overhead"] = overhead(result["latency"]["per_utterance"],
                                      result["engine"]["per_utterance"])
        log(f"  overhead: {result['overhead']['ratio']} of engine time")
    if "nopartials" in args.parts:
        result.update(_no_partials(spec, lectures, workdir, result.get("engine")))
    result["wall_s"] = round(time.monotonic() - started, 1)
    return result


def _no_partials(spec: eng.EngineSpec, lectures: Lectures, workdir: Path, engine: dict | None) -> dict:
    """Part 1 with a worker that makes no partials: how much partials delay finals."""
    with WorkerProcess(spec, NO_PARTIALS) as worker:
        latency = latency_part(worker, lectures.main, workdir / spec.key / "no-partials")
    log(f"  no partials, 1 stream: p95 final latency {latency['final_latency_s']['p95']} s")
    out = {"latency_no_partials": latency}
    if engine:
        out["overhead_no_partials"] = overhead(latency["per_utterance"], engine["per_utterance"])
    return out


def run_memory(lectures: Lectures, args: argparse.Namespace) -> dict:
    out = {}
    runs = [(eng.EngineSpec("fake", "fake", threads=args.threads), args.memory_mark_s)]
    if args.memory_sensevoice_mark_s > 0:
        runs.append((eng.tiny_spec(args.threads), args.memory_sensevoice_mark_s))
    for spec, mark_s in runs:
        log(f"memory: {spec.key}, {args.memory_hours} marks of {mark_s:g} s of audio")
        with WorkerProcess(spec, MEMORY_WORKER_ARGS) as worker:
            out[spec.key] = memory_part(worker, lectures.utterances, marks=args.memory_hours, mark_s=mark_s)
        log(f"  RSS {out[spec.key]['rss_at_marks_mb']} MB, growth {out[spec.key]['growth_first_to_last_pct']} %"
            f" in {out[spec.key]['wall_s']} s")
    return out


def run_gpu(lectures: Lectures, args: argparse.Namespace, workdir: Path) -> dict:
    if not eng.gpu_available():
        return {"available": False, "line": "not available here (torch.cuda.is_available() is False); "
                "with a GPU, part 3 runs on cuda in fp16"}
    spec = eng.cuda_spec()
    eng.prepare_models([eng.EngineSpec("full", "sensevoice")])
    log(f"{spec.key} (GPU):")
    with WorkerProcess(spec) as worker:
        levels = [1, 2, 4, 8, 16, 32][: 2 if args.quick else None]
        conc = concurrency_part(worker, lectures.for_streams, workdir / spec.key, levels, log=log,
                                time_left=args.deadline.left)
    return {"available": True, "line": f"cuda fp16: {conc['max_streams']} streams under 2 s p95",
            "concurrency": conc}


def _reserve(later: list[eng.EngineSpec], lectures: Lectures, args: argparse.Namespace) -> float:
    """Rough seconds the engines after this one (part 1, loads) and the memory part will need."""
    lecture_s = len(lectures.pcm) / speech.SAMPLE_RATE
    total = 40.0 if "memory" in args.parts else 0.0
    for spec in later:
        total += (lecture_s + 10 if "latency" in args.parts else 0) + (5 if spec.engine == "fake" else 60)
    return total


def _meta(args: argparse.Namespace, argv: list[str] | None) -> dict:
    return {
        "command": shlex.join([".venv/bin/python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "python": platform.python_version(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()], "threads": args.threads,
        "quick": args.quick, "parts": args.parts, "engines": args.engines, "budget_s": args.budget_s,
        "note": "CPUs shared with other processes: timings are noisy",
    }


def main(argv: list[str] | None = None) -> int:
    offer_fake_engine()  # the baseline rows, in this process and the workers it starts
    args = parse_args(argv)
    started = time.monotonic()
    args.deadline = Deadline(args.budget_s)
    missing = speech.missing_tools()
    if missing:
        print(f"bench: needs {' and '.join(missing)} (apt-get install espeak-ng sox)", file=sys.stderr)
        return 2
    report: dict = {"meta": _meta(args, argv), "targets": TARGETS}
    workdir = args.out.resolve().parent / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    sentences = args.sentences or (4 if args.quick else len(speech.LECTURE))
    lectures = Lectures(workdir, sentences, 12.0 if args.quick else 24.0, 2 if args.quick else 4)
    specs, report["models"] = eng.prepare_models(eng.select_specs(args.engines, args.threads),
                                                 tiny=args.memory_sensevoice_mark_s > 0 and "memory" in args.parts)
    with quiet_logs():
        report["engines"] = {}
        for i, spec in enumerate(specs):
            args.deadline.reserve = _reserve(specs[i + 1:], lectures, args)
            try:
                report["engines"][spec.key] = run_engine(spec, lectures, args, workdir)
            except (EngineError, RuntimeError, OSError) as exc:  # one engine failing spoils no other row
                log(f"  {spec.key} failed: {exc}")
                report["engines"][spec.key] = {"error": str(exc)}
        args.deadline.reserve = 0.0
        report["memory"] = run_memory(lectures, args) if "memory" in args.parts else {}
        report["gpu"] = run_gpu(lectures, args, workdir) if "gpu" in args.parts else {
            "available": eng.gpu_available(), "line": "not run (--parts)"}
    report["speech"] = lectures.describe()
    meta = report["meta"]
    meta["runtime_s"] = round(time.monotonic() - started, 1)
    meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    meta["json"] = str(args.out)
    write_json(report, args.out)
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
