"""Speaker labels: how right they are on multi-voice lectures, what they add to a final, their CPU.

    .venv/bin/python bench/speakers.py                      # ~10 min lecture, both parts
    .venv/bin/python bench/speakers.py --minutes 3 --parts quality

Material: espeak-ng lectures (``bench/speech.py``): one lecturer voice with,
every few sentences, a question from another voice (cycled from
``QUESTION_VOICES``), and lectures of one voice alone (several voices).

- ``quality``: the lecture through the real segmenter (Silero VAD), each
  utterance embedded (:class:`capture.voices.ResemblyzerEncoder`) and
  labelled in order (:class:`capture.speakers.SpeakerLabeller`). Reported:
  the share of the lecturer's speech labelled ``lecturer`` (by duration), the
  questions found (a question is found when most of its speech is labelled
  audience), audience labels on the one-voice lectures (phantoms), and the
  process CPU seconds of embedding per hour of audio.
- ``latency``: ``notsound live`` at real time on the first ``--latency-s``
  seconds of the lecture with an embedded worker (``--engine whisper``, the
  real cost: the embedding and the decode share the cores; or the fake
  engine, ``--rtf``, which uses no CPU), with speaker labels and without,
  ``--rounds`` times each, alternating: the seconds finals waited for their
  label (median, p95) and the final latency of both.
- ``contention``: what the embedding's CPU does to a final's decode, apart
  from the noise of a whole run (where a final may wait behind a partial call
  whatever the labels do): the lecture's utterances decoded as finals by the
  worker's engine (whisper tiny.en, the worker's threads) alone, and while the
  encoder embeds 1.6 s windows in another thread at the rate a live stream
  makes them (one per 1.6 s of audio, as :class:`capture.voices.SpeakerTrack`
  does). Paired clip by clip (each decoded with the embedding off and on in
  turn, the order alternating, at least 3 rounds), so the machine's drift
  over a run cancels. Reported: each clip's decode time with the encoder busy
  less its time alone (median, p95), so the added latency of a final.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fake_engine import offer_fake_engine  # noqa: E402
from bench.pipeline import PAD_S, summary  # noqa: E402
from bench.speech import LECTURE, SAMPLE_RATE, SENTENCES, synth, write_wav  # noqa: E402

__all__ = ["QUESTIONS", "QUESTION_VOICES", "Spoken", "build_lecture", "label_utterances", "quality"]

LECTURER_VOICE = "en-us"
QUESTION_VOICES = ("en+f2", "en+m7", "en+f4")
SOLO_VOICES = ("en-us", "en-gb", "en+f2", "en+m7")
MORE = [
    "Evaporation is fastest where the air is warm and dry and the wind keeps moving it.",
    "A cloud can hold a surprising amount of water, many tonnes in a single small cloud.",
    "Groundwater moves slowly through rock and can stay underground for thousands of years.",
    "Glaciers and ice caps store most of the fresh water on our planet.",
    "When the climate warms, the whole cycle speeds up and storms carry more rain.",
    "Measuring rainfall is simple: a funnel, a bottle and a ruler are enough.",
]
QUESTIONS = [
    "Excuse me, does the same water really come back again and again?",
    "How long does one drop stay in the sky before it falls?",
    "Sorry, could you explain transpiration once more?",
    "Is snow part of the same cycle or a different one?",
    "What happens to the water that falls into the desert?",
    "Why are some clouds white and others dark grey?",
    "Can we drink the water from a glacier directly?",
    "Does the ocean get saltier when the water evaporates?",
]
GAPS_S = (1.0, 1.3, 0.8, 1.2, 0.9, 1.4)


@dataclass(frozen=True)
class Spoken:
    """One sentence of the material: where it is and who said it."""

    start: float
    end: float
    voice: str
    question: int = -1  # the question's number, -1 for the lecturer


def build_lecture(minutes: float, every: int = 5) -> tuple[np.ndarray, list[Spoken]]:
    """A lecture of about ``minutes`` with a question after every ``every`` lecturer sentences."""
    texts = LECTURE + SENTENCES + MORE
    parts, spoken = [np.zeros(int(0.5 * SAMPLE_RATE), np.int16)], []
    at, k, q = 0.5, 0, 0
    while at < minutes * 60:
        if k and k % every == 0:
            voice, text, number = QUESTION_VOICES[q % len(QUESTION_VOICES)], QUESTIONS[q % len(QUESTIONS)], q
            q += 1
        else:
            voice, text, number = LECTURER_VOICE, texts[k % len(texts)], -1
        k += 1
        pcm = synth(text, voice=voice)
        spoken.append(Spoken(at, at + len(pcm) / SAMPLE_RATE, voice, number))
        gap = np.zeros(int(GAPS_S[len(spoken) % len(GAPS_S)] * SAMPLE_RATE), np.int16)
        parts += [pcm, gap]
        at += (len(pcm) + len(gap)) / SAMPLE_RATE
    return np.concatenate(parts), spoken


def solo_lecture(voice: str, minutes: float) -> tuple[np.ndarray, list[Spoken]]:
    texts = LECTURE + SENTENCES + MORE
    parts, spoken, at = [np.zeros(int(0.5 * SAMPLE_RATE), np.int16)], [], 0.5
    for i in range(10_000):
        if at >= minutes * 60:
            break
        pcm = synth(texts[i % len(texts)], voice=voice)
        spoken.append(Spoken(at, at + len(pcm) / SAMPLE_RATE, voice))
        gap = np.zeros(int(GAPS_S[i % len(GAPS_S)] * SAMPLE_RATE), np.int16)
        parts += [pcm, gap]
        at += (len(pcm) + len(gap)) / SAMPLE_RATE
    return np.concatenate(parts), spoken


def _segment(pcm: np.ndarray) -> list:
    from capture.segmenter import Segmenter, UtteranceEnded
    from capture.vad import VadOptions

    segmenter = Segmenter(VadOptions())
    ended = []
    for i in range(0, len(pcm), 1600):
        ended += [e.utterance for e in segmenter.feed(pcm[i:i + 1600]) if isinstance(e, UtteranceEnded)]
    ended += [e.utterance for e in segmenter.flush() if isinstance(e, UtteranceEnded)]
    return ended


def label_utterances(pcm: np.ndarray, encoder) -> tuple[list[tuple[float, float, str | None]], float]:
    """Each utterance's (start, end, label), and the process CPU seconds its embeddings took.

    Embedded window by window as the live track does (:func:`capture.voices.embed_windowed`)."""
    from capture.speakers import SpeakerLabeller
    from capture.voices import embed_windowed

    labeller = SpeakerLabeller()
    out, cpu = [], 0.0
    for utterance in _segment(pcm):
        t0 = time.process_time()
        embedding = embed_windowed(encoder, utterance.pcm())
        cpu += time.process_time() - t0
        out.append((utterance.start, utterance.end, labeller.label(embedding, utterance.duration)))
    return out, cpu


def _owner(start: float, end: float, spoken: list[Spoken]) -> Spoken | None:
    best, overlap = None, 0.0
    for s in spoken:
        o = min(end, s.end) - max(start, s.start)
        if o > overlap:
            best, overlap = s, o
    return best


def quality(minutes: float) -> dict:
    from capture.voices import ResemblyzerEncoder

    encoder = ResemblyzerEncoder()
    pcm, spoken = build_lecture(minutes)
    labels, cpu = label_utterances(pcm, encoder)
    lecturer_s = lecturer_ok = 0.0
    question_votes: dict[int, list[float]] = {}
    for start, end, label in labels:
        owner = _owner(start, end, spoken)
        if owner is None:
            continue
        if owner.question < 0:
            lecturer_s += end - start
            lecturer_ok += (end - start) if label == "lecturer" else 0.0
        else:
            votes = question_votes.setdefault(owner.question, [0.0, 0.0])
            votes[0 if (label or "").startswith("audience-") else 1] += end - start
    questions = sum(1 for s in spoken if s.question >= 0)
    found = sum(1 for v in question_votes.values() if v[0] > v[1])
    audio_s = len(pcm) / SAMPLE_RATE
    solos = {}
    for voice in SOLO_VOICES:
        solo_pcm, _ = solo_lecture(voice, min(minutes, 4.0))
        solo_labels, solo_cpu = label_utterances(solo_pcm, encoder)
        cpu += solo_cpu
        audio_s += len(solo_pcm) / SAMPLE_RATE
        solos[voice] = {"utterances": len(solo_labels),
                        "audience": sum(1 for _, _, lab in solo_labels if (lab or "").startswith("audience-"))}
    return {
        "audio_s": round(len(pcm) / SAMPLE_RATE, 1), "utterances": len(labels), "questions": questions,
        "lecturer_share": round(lecturer_ok / lecturer_s, 4) if lecturer_s else None,
        "questions_found": found, "questions_found_share": round(found / questions, 4) if questions else None,
        "phantoms_one_voice": solos,
        "embedding_cpu_s_per_audio_hour": round(cpu / audio_s * 3600, 1),
    }


async def _live(wav: Path, workdir: Path, speakers: bool, worker) -> tuple[list[float], list[float]]:
    from rich.console import Console

    from notsound.liverun import LiveSettings, run_live
    from notsound.view import CaptionView

    tag = f"{speakers}-{time.monotonic_ns()}"
    events = workdir / f"events-{tag}.jsonl"
    settings = LiveSettings(input=wav, events=events, out=workdir / "sessions", session=f"s-{tag}",
                            plain=True, notes=False, speakers=speakers)
    view = CaptionView(console=Console(file=io.StringIO(), width=100), plain=True)
    result = await run_live(settings, worker, view=view)
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    finals = [r["t"] - (r["end"] - PAD_S) for r in rows if r["type"] == "final"]
    return finals, result.label_waits


def latency(seconds: float, engine: str, rtf: float, rounds: int) -> dict:
    from live.server import WorkerSettings

    worker = WorkerSettings(engine="fake", model=f"rtf={rtf}") if engine == "fake" else WorkerSettings(engine=engine)
    pcm, _ = build_lecture(seconds / 60)
    off: list[float] = []
    on: list[float] = []
    waits: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        wav = write_wav(Path(tmp) / "lecture.wav", pcm)
        for _ in range(rounds):
            off += asyncio.run(_live(wav, Path(tmp), False, worker))[0]
            finals, waited = asyncio.run(_live(wav, Path(tmp), True, worker))
            on += finals
            waits += waited
    name = f"fake rtf={rtf}" if engine == "fake" else engine
    return {"audio_s": round(len(pcm) / SAMPLE_RATE, 1), "engine": name, "rounds": rounds,
            "label_wait_s": summary(waits), "final_latency_on_s": summary(on),
            "final_latency_off_s": summary(off)}


class _Embedding:
    """A thread that embeds 1.6 s windows at the rate a live stream makes them while ``on``."""

    def __init__(self, encoder, pcm: np.ndarray):
        import threading

        from capture.voices import WINDOW_S

        self.encoder, self.pcm, self.window_s = encoder, pcm, WINDOW_S
        self.windows = 0
        self.on = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-embed", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.on.set()
        self._thread.join()

    def _run(self) -> None:
        width = int(self.window_s * SAMPLE_RATE)
        at = 0
        while True:
            self.on.wait()
            if self._stop.is_set():
                return
            started = time.monotonic()
            if at + width > len(self.pcm):
                at = 0
            self.encoder.embed(self.pcm[at:at + width])
            self.windows += 1
            at += width
            self._stop.wait(max(0.0, self.window_s - (time.monotonic() - started)))


def contention(minutes: float, rounds: int) -> dict:
    """Decode time of finals alone and beside the embedding (see the module doc).

    Paired clip by clip: each clip is decoded with the embedding off and on, in
    turn (the order alternating), so the machine's drift over a run cancels."""
    from capture.voices import ResemblyzerEncoder
    from live.server import default_threads
    from models import EngineOptions, create_engine

    engine = create_engine("whisper", EngineOptions(threads=default_threads()))
    engine.load()
    pcm, _ = build_lecture(minutes)
    clips = [u.pcm() for u in _segment(pcm)][:24]
    engine.transcribe(clips[:1], "en", kind="final")  # warm

    def decode(clip: np.ndarray) -> float:
        t0 = time.perf_counter()
        engine.transcribe([clip], "en", kind="final")
        return time.perf_counter() - t0

    out: dict = {"clips": len(clips), "rounds": rounds, "engine_threads": default_threads()}
    encoder = ResemblyzerEncoder()
    alone: list[float] = []
    busy: list[float] = []
    with _Embedding(encoder, pcm) as embedding:
        for r in range(rounds):
            for k, clip in enumerate(clips):
                for running in ((False, True) if (r + k) % 2 == 0 else (True, False)):
                    if running:
                        embedding.on.set()
                    else:
                        embedding.on.clear()
                        time.sleep(0.1)  # the window under way ends
                    (busy if running else alone).append(decode(clip))
    out["decode_alone_s"] = summary(alone)
    out["added_s"] = summary([b - a for a, b in zip(alone, busy, strict=True)])
    out["windows"] = embedding.windows
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="length of the multi-voice lecture")
    p.add_argument("--parts", default="quality,latency,contention")
    p.add_argument("--latency-s", type=float, default=120.0, help="seconds of lecture played at real time")
    p.add_argument("--engine", default="whisper", help="latency: the worker's engine (whisper, or fake)")
    p.add_argument("--rtf", type=float, default=0.05, help="the fake engine's seconds per audio second")
    p.add_argument("--rounds", type=int, default=2, help="latency: runs with labels and without, each")
    args = p.parse_args(argv)
    offer_fake_engine()
    out = {}
    if "quality" in args.parts:
        out["quality"] = quality(args.minutes)
        print(json.dumps(out["quality"], indent=1), flush=True)
    if "latency" in args.parts:
        out["latency"] = latency(args.latency_s, args.engine, args.rtf, args.rounds)
        print(json.dumps(out["latency"], indent=1), flush=True)
    if "contention" in args.parts:
        out["contention"] = contention(min(args.minutes, 3.0), max(args.rounds, 3))
        print(json.dumps(out["contention"], indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
