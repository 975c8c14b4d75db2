"""Benchmark of the ``notsound ask`` prompt layout: prompt tokens per turn and the repeated prefix.

A synthetic 90-minute lecture (tests/summarizer/synthetic.py) is asked ten
questions through the real conversation code (``summarizer.ask.LectureChat``,
which writes ``ask.jsonl`` as ``notsound ask`` does), against the loopback
OpenAI-compatible server of the tests. For every turn it prints the prompt
tokens, the tokens of the longest prefix shared with the previous request
(what a provider's prefix cache can serve) and their share, and the
server-reported cache hits (64-token units, against any earlier request,
as DeepSeek counts them). Target: a repeated-prefix share of at least 90%
from the second turn on.

Scenarios: ``ended`` (the whole transcript in the snapshot), ``live`` (the
journal grows by three minutes between questions, the last half hour of a
lecture), ``passages`` (a context budget too small for the transcript, so
each question comes with retrieved passages).

Tokens: ``summarizer.transcript.estimate_tokens`` (the summarizer's own
estimate, within about 5% of cl100k on lecture text) over the messages laid
out as ``<|role|>content<|end|>``.

    python bench/ask_bench.py [--minutes 90] [--lang en|zh] [--turns 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from summarizer.ask import LectureChat  # noqa: E402
from summarizer.settings import AskSettings, LLMSettings  # noqa: E402
from summarizer.transcript import estimate_tokens, fmt_time  # noqa: E402
from tests.summarizer.llm_server import FakeLLM, _common_prefix, prompt_text  # noqa: E402
from tests.summarizer.synthetic import append_finals, synthetic_finals, write_session  # noqa: E402

QUESTIONS = [
    "What is this lecture about?",
    "How was the learning rate defined?",
    "Which mistake did the lecturer warn about for the exam?",
    "Explain the chain rule part again, briefly.",
    "What did I miss in the last five minutes?",
    "Which homework was mentioned, and when?",
    "How does dropout relate to overfitting?",
    "Give me three review questions on regularization.",
    "What example numbers were used for the step size?",
    "Summarise the lecture in five bullet points.",
]


def answer_model(request: dict) -> str:
    """An answer of about 150 tokens citing the latest caption time it was given."""
    text = request["messages"][-1]["content"] + request["messages"][1]["content"][-4000:]
    times = [line[1:line.index("]")] for line in text.splitlines() if line.startswith("[") and "]" in line]
    cite = f"[{times[-1]}]" if times else ""
    body = ("The lecturer explained this step by step, starting from the definition and then an example "
            "with concrete numbers, and came back to it when discussing the homework. ")
    return f"{body * 4}See {cite}."


@dataclass
class Row:
    turn: int
    prompt: int
    repeated: int
    cached: int
    minute: float

    @property
    def share(self) -> float:
        return self.repeated / self.prompt if self.prompt else 0.0


async def converse(folder: Path, settings: AskSettings, turns: int, grow: list[list[dict]] | None) -> list[Row]:
    rows: list[Row] = []
    with FakeLLM(reply=answer_model) as fake:
        llm = LLMSettings(base_url=fake.url, timeout_s=10, deadline_s=30)
        async with LectureChat(folder, llm, settings, "sk-bench-key") as chat:
            previous = ""
            for n in range(turns):
                if grow and n:
                    append_finals(folder / "transcript.jsonl", grow[n - 1])
                answer = await chat.ask(QUESTIONS[n % len(QUESTIONS)])
                prompt = prompt_text(fake.requests[-1].messages)
                repeated = estimate_tokens(prompt[: _common_prefix(prompt, previous)]) if previous else 0
                rows.append(Row(n + 1, estimate_tokens(prompt), repeated, answer.usage.cached_tokens,
                                chat.finals()[-1].end / 60))
                previous = prompt
    return rows


def report(name: str, rows: list[Row]) -> bool:
    later = rows[1:]
    low = min((r.share for r in later), default=0.0)
    total = sum(r.prompt for r in later)
    overall = sum(r.repeated for r in later) / total if total else 0.0
    print(f"\n{name}")
    print(f"{'turn':>4}{'at':>9}{'prompt':>9}{'repeated':>10}{'share':>8}{'cache hit':>11}")
    for r in rows:
        print(f"{r.turn:>4}{fmt_time(r.minute * 60):>9}{r.prompt:>9,}{r.repeated:>10,}{r.share:>8.1%}{r.cached:>11,}")
    ok = low >= 0.9
    print(f"turns 2-{len(rows)}: repeated prefix {overall:.1%} of prompt tokens, lowest turn {low:.1%} "
          f"(target >= 90%: {'met' if ok else 'NOT met'})")
    return ok


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=90)
    parser.add_argument("--lang", default="en", choices=("en", "zh"))
    parser.add_argument("--turns", type=int, default=10)
    args = parser.parse_args()
    finals = synthetic_finals(args.minutes, lang=args.lang, seed=1)
    transcript = estimate_tokens("\n".join(f["text"] for f in finals))
    print(f"synthetic lecture: {args.minutes:g} min, {args.lang}, {len(finals)} captions, {transcript:,} "
          f"transcript tokens (estimate_tokens); {args.turns} questions; answers about "
          f"{estimate_tokens(answer_model({'messages': [{'content': ''}] * 2})):,} tokens")
    with tempfile.TemporaryDirectory() as tmp:
        ended = write_session(Path(tmp) / "ended", finals)
        met = report("ended lecture: whole transcript in the snapshot (default [ask] settings)",
                     await converse(ended, AskSettings(), args.turns, None))
        cut = args.minutes * 60 - 3 * 60 * (args.turns - 1)
        live = write_session(Path(tmp) / "live", [f for f in finals if f["start"] < cut], ended=False)
        steps = [[f for f in finals if cut + 180 * i <= f["start"] < cut + 180 * (i + 1)]
                 for i in range(args.turns - 1)]
        met &= report("live lecture: three more minutes of captions before each question",
                      await converse(live, AskSettings(), args.turns, steps))
        small = write_session(Path(tmp) / "passages", finals)
        report("passages: context_tokens 12000, too small for the transcript (not held to the target)",
               await converse(small, AskSettings(context_tokens=12_000), args.turns, None))
    print(f"\ntarget (repeated prefix >= 90% of prompt tokens from turn 2 on, whole-transcript layouts): "
          f"{'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
