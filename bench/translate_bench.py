"""Benchmark of live translation (``summarizer.translate.Translator``) against the loopback server.

The finals of a synthetic lecture (tests/summarizer/synthetic.py, about 10 s
of speech each) are handed to the real translator at their end times, as
``notsound live --translate`` does; the loopback OpenAI-compatible server of
the tests answers each request after ``--delay`` seconds (time to the first
streamed word) with a deterministic "translation". ``--speed`` runs lecture
time and the model's delay that many times faster; every figure is given in
lecture seconds (wall seconds x speed; the fixed overhead of each request,
a few milliseconds, is magnified by the speed too, so figures err slow).

Scenarios:

- ``latency``: 300 ms model, real time: how long after its final a
  translation is shown (first streamed text and complete), p50/p95.
- ``behind``: 3 s model, a 30-minute lecture at 20x: how many captions wait
  (sampled each lecture second), the oldest one's wait, whether the queue
  catches up (and how long after the last final).
- ``slow``: 12 s model, same lecture: slower than the finals come, so
  consecutive finals go together in one request.

Each also gives prompt tokens per translated caption and the repeated-prefix
share: the tokens of each request that repeat the previous request's exact
prefix (what a provider's prefix cache serves), counted like
``bench/notes_bench.py`` (cl100k_base when it loads offline, else the
documented estimate).

    python bench/translate_bench.py [--scenario all|latency|behind|slow] [--lang en|zh]
                                    [--minutes M --speed X --delay S]  (one custom run)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.notes_bench import token_counter  # noqa: E402
from library.folder import Final  # noqa: E402
from summarizer.settings import LLMSettings  # noqa: E402
from summarizer.translate import TranslateSettings, Translator  # noqa: E402
from tests.summarizer.llm_server import FakeLLM, _common_prefix, prompt_text  # noqa: E402
from tests.summarizer.synthetic import synthetic_finals  # noqa: E402

SCENARIOS = {  # name: (model delay s, lecture minutes, speed)
    "latency": (0.3, 3.0, 1.0),
    "behind": (3.0, 30.0, 20.0),
    "slow": (12.0, 30.0, 20.0),
}


@dataclass
class Result:
    name: str
    delay: float
    minutes: float
    speed: float
    finals: int = 0
    shown: list[float] = field(default_factory=list)  # final -> translation shown, lecture s
    first: list[float] = field(default_factory=list)  # final -> first streamed text
    behind: list[tuple[float, int, float]] = field(default_factory=list)  # (t, captions, oldest wait)
    catch_up: float | None = None  # after the last final, until nothing waits
    requests: int = 0
    batch_max: int = 0
    prompt: int = 0
    shared: int = 0
    cached: int = 0
    reported: int = 0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


async def simulate(name: str, delay: float, minutes: float, speed: float, lang: str,
                   count: Callable[[str], int]) -> Result:
    result = Result(name, delay, minutes, speed)
    finals = synthetic_finals(minutes, lang=lang, seed=2)
    target = "zh" if lang == "en" else "en"
    loop = asyncio.get_running_loop()
    submitted: dict[int, float] = {}
    shown: dict[int, float] = {}
    first: dict[int, float] = {}
    with FakeLLM(tokens=count, delay_s=delay / speed) as fake, tempfile.TemporaryDirectory() as tmp:
        llm = LLMSettings(base_url=fake.url, timeout_s=120, deadline_s=600)
        translator = Translator(
            tmp, target, llm, TranslateSettings(deadline_s=600), "sk-bench",
            on_translation=lambda t: shown.setdefault(t.utt, loop.time()),
            on_partial=lambda utt, _text: first.setdefault(utt, loop.time()))
        stop = asyncio.Event()
        task = asyncio.create_task(translator.run(stop))
        t0 = loop.time()
        sampler = asyncio.create_task(_sample(translator, result, t0, speed))
        for f in finals:
            await asyncio.sleep(max(0.0, t0 + f["end"] / speed - loop.time()))
            submitted[f["utt"]] = loop.time()
            translator.submit(Final(f["utt"], f["start"], f["end"], f["text"], f["lang"]))
        ended = loop.time()
        while len(shown) < len(submitted) and loop.time() - ended < 600 / speed:
            await asyncio.sleep(0.01)
        if len(shown) == len(submitted):
            result.catch_up = (max(shown.values()) - ended) * speed
        sampler.cancel()
        stop.set()
        await task
        prompts = [prompt_text(r.messages) for r in fake.answered]
    result.finals = len(finals)
    result.shown = [(shown[u] - submitted[u]) * speed for u in shown]
    result.first = [(first[u] - submitted[u]) * speed for u in first if u in submitted]
    result.requests = len(prompts)
    result.batch_max = max((r.messages[-1]["content"].count("\n[") for r in fake.answered), default=0)
    result.prompt = sum(map(count, prompts))
    result.shared = sum(count(p[: _common_prefix(p, prev)]) for prev, p in zip(prompts, prompts[1:], strict=False))
    result.cached, result.reported = translator.usage.cached_tokens, translator.usage.prompt_tokens
    return result


async def _sample(translator: Translator, result: Result, t0: float, speed: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        lag = translator.lag
        result.behind.append(((loop.time() - t0) * speed, lag.captions, lag.seconds * speed))
        await asyncio.sleep(1.0 / speed)


def report(r: Result) -> None:
    done = len(r.shown)
    print(f"\n[{r.name}] model delay {r.delay:g} s, {r.minutes:g}-minute lecture ({r.finals} finals) "
          f"at {r.speed:g}x")
    print(f"  translation shown after its final: p50 {pct(r.shown, .5):.2f} s, p95 {pct(r.shown, .95):.2f} s, "
          f"max {max(r.shown, default=float('nan')):.2f} s; first streamed text p50 {pct(r.first, .5):.2f} s, "
          f"p95 {pct(r.first, .95):.2f} s")
    waiting = [c for _, c, _ in r.behind]
    oldest = [s for _, _, s in r.behind]
    share_behind = sum(c > 1 for c in waiting) / len(waiting) if waiting else 0.0
    print(f"  captions waiting (each lecture second): mean {statistics.fmean(waiting):.2f}, "
          f"max {max(waiting)}, p95 {pct(waiting, .95):.0f}; oldest waiting max {max(oldest):.1f} s; "
          f"more than one waiting {share_behind:.0%} of the time")
    catch = "did not catch up within 600 s" if r.catch_up is None else f"{r.catch_up:.1f} s after the last final"
    print(f"  all {done}/{r.finals} translated: {catch}; {r.requests} requests, "
          f"{done / max(1, r.requests):.2f} captions per request (max {r.batch_max})")
    print(f"  prompt tokens per translated caption {r.prompt / max(1, done):.0f}; "
          f"repeated-prefix share {r.shared / max(1, r.prompt):.1%} "
          f"(server-reported cache hits, 64-token units: {r.cached / max(1, r.reported):.1%})")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="all", choices=("all", *SCENARIOS))
    parser.add_argument("--lang", default="en", choices=("en", "zh"), help="lecture language (en -> zh, zh -> en)")
    parser.add_argument("--minutes", type=float, help="custom run: lecture minutes")
    parser.add_argument("--speed", type=float, help="custom run: times faster than real time")
    parser.add_argument("--delay", type=float, help="custom run: model delay in seconds")
    args = parser.parse_args()
    count, counter = token_counter()
    import openai  # noqa: F401 - loaded before the clock starts, as in a run that is under way
    import pypinyin  # noqa: F401 - the loopback server's zh -> en stand-in uses it
    if args.delay is not None:
        runs = {"custom": (args.delay, args.minutes or 30.0, args.speed or 20.0)}
    else:
        runs = SCENARIOS if args.scenario == "all" else {args.scenario: SCENARIOS[args.scenario]}
    print(f"live translation bench: {args.lang} lecture -> {'zh' if args.lang == 'en' else 'en'}; tokens: {counter}")
    for name, (delay, minutes, speed) in runs.items():
        report(await simulate(name, delay, minutes, speed, args.lang, count))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
