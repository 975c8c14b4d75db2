"""Benchmark of the incremental notes prompt layout against the naive one.

A synthetic 90-minute lecture (tests/summarizer/synthetic.py) is appended to a
session journal 30 s at a time and fed through the real notes loop
(``summarizer.NotesTask``), which talks to the loopback OpenAI-compatible
server of the tests. The naive approach sends the whole transcript so far at
every update and gets the whole notes back. For both it prints total prompt
tokens, completion tokens, and the share of prompt tokens that repeat the
previous request's exact prefix (what a provider's prefix cache can serve).

Token counts: OpenAI's cl100k_base through ``tiktoken`` when its encoding
file is available (or the ``bpe-openai`` package, which ships it), else the
documented estimate ``summarizer.transcript.estimate_tokens``; the same counter
for everything. A prompt is counted as its messages laid out as
``<|role|>content<|end|>`` (close to a chat template). Targets: prompt tokens
at most 3x the transcript's, completion at most 3x the final notes',
prefix share at least 60%.

    python bench/notes_bench.py [--minutes 90] [--lang en|zh] [--every 120]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from summarizer.client import LLMClient  # noqa: E402
from summarizer.notes import NotesTask  # noqa: E402
from summarizer.prompts import fence, notes_system  # noqa: E402
from summarizer.settings import LLMSettings, NotesSettings  # noqa: E402
from summarizer.transcript import estimate_tokens  # noqa: E402
from tests.summarizer.llm_server import FakeLLM, _common_prefix, fake_model, prompt_text  # noqa: E402
from tests.summarizer.synthetic import append_finals, synthetic_finals  # noqa: E402

NAIVE_SYSTEM = "Rewrite the complete notes of the lecture so far from the whole transcript."


def token_counter() -> tuple[Callable[[str], int], str]:
    """cl100k_base if it can be loaded offline, else the documented estimate."""
    try:
        import tiktoken

        enc = tiktoken.get_encoding("cl100k_base")
        return (lambda s: len(enc.encode(s, disallowed_special=()))), "cl100k_base (tiktoken)"
    except Exception:
        pass
    try:
        import bpe_openai

        enc = bpe_openai.get_encoding("cl100k_base")
        return (lambda s: len(enc.encode(s))), "cl100k_base (bpe-openai)"
    except Exception:
        return estimate_tokens, "estimate_tokens (no cl100k file offline)"


@dataclass
class Figures:
    requests: int
    prompt: int
    completion: int
    shared: int

    @property
    def share(self) -> float:
        return self.shared / self.prompt if self.prompt else 0.0


def measure(requests, replies: list[str], count: Callable[[str], int]) -> Figures:
    prompts = [prompt_text(r.messages) for r in requests]
    shared = sum(count(p[: _common_prefix(p, prev)]) for prev, p in zip(prompts, prompts[1:], strict=False))
    return Figures(len(prompts), sum(map(count, prompts)), sum(map(count, replies)), shared)


async def incremental(finals: list[dict], folder: Path, settings: NotesSettings, count) -> tuple:
    folder.mkdir(parents=True)
    with FakeLLM(tokens=count) as fake:
        llm = LLMSettings(base_url=fake.url, timeout_s=10, deadline_s=30)
        task = NotesTask(folder, llm, settings, "sk-bench")
        step, t = 30.0, 30.0
        while finals and t < finals[-1]["end"] + step:
            append_finals(folder / "transcript.jsonl", [f for f in finals if t - step <= f["start"] < t])
            await task.step(final=False)
            t += step
        await task.flush()
        replies = [fake_model(r.json) for r in fake.answered]
        return measure(fake.answered, replies, count), task, (folder / "notes.md").read_text()


async def naive(finals: list[dict], task: NotesTask, count) -> Figures:
    """Whole transcript at every update; the answer is the whole notes up to that part."""
    sections = task.state.sections
    with FakeLLM(tokens=count) as fake:
        client = LLMClient(LLMSettings(base_url=fake.url), "sk-bench")
        replies = []
        for n, section in enumerate(sections, 1):
            text = "\n".join(f["text"] for f in finals if f["utt"] <= section.last)
            notes = "\n\n".join(f"## {s.title}\n{s.body}" for s in sections[:n])
            fake.reply = lambda _req, notes=notes: notes
            messages = [{"role": "system", "content": notes_system("en") + "\n" + NAIVE_SYSTEM},
                        {"role": "user", "content": fence("transcript", text)}]
            replies.append((await client.chat(messages, max_tokens=8000)).text)
        await client.aclose()
        return measure(fake.answered, replies, count)


def row(name: str, f: Figures, transcript: int, notes: int) -> str:
    return (f"{name:<30}{f.requests:>5}{f.prompt:>11,}{f.prompt / transcript:>7.2f}x"
            f"{f.completion:>10,}{f.completion / notes:>7.2f}x{f.share:>9.1%}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=90)
    parser.add_argument("--lang", default="en", choices=("en", "zh"))
    parser.add_argument("--every", type=float, default=NotesSettings.every_s, help="seconds of speech per update")
    args = parser.parse_args()
    count, counter = token_counter()
    finals = synthetic_finals(args.minutes, lang=args.lang, seed=1)
    transcript = count("\n".join(f["text"] for f in finals))
    layouts = {f"fixed window of {w} part{'s' * (w > 1)}": NotesSettings(
        every_s=args.every, retry_s=0, prompt_ratio=1e9, max_window_parts=w) for w in (1, 2, 3, 4, 6)}
    default = f"adaptive, prompt_ratio {NotesSettings.prompt_ratio:g}"
    layouts[default] = NotesSettings(every_s=args.every, retry_s=0)
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for n, (name, settings) in enumerate(layouts.items()):
            results[name] = await incremental(finals, Path(tmp) / str(n), settings, count)
        figures, task, notes_md = results[default]
        notes = count(notes_md)
        plain = await naive(finals, task, count)
    print(f"synthetic lecture: {args.minutes:g} min, {args.lang}, {len(finals)} finals, "
          f"{transcript:,} transcript tokens; update every {args.every:g} s of speech; tokens: {counter}")
    print(f"final notes.md: {notes:,} tokens, {len(task.state.sections)} sections; "
          f"server-reported prefix-cache hits (64-token units, any earlier request): {task.usage.cached_tokens:,}")
    print(f"\n{'approach':<30}{'reqs':>5}{'prompt':>11}{'/trn':>8}{'complet.':>10}{'/notes':>8}{'prefix':>9}")
    for name, (f, _, _) in results.items():
        print(row(name, f, transcript, notes) + ("  <- default" if name == default else ""))
    print(row("naive (whole transcript)", plain, transcript, notes))
    ok = figures.prompt <= 3 * transcript and figures.completion <= 3 * notes and figures.share >= 0.6
    print(f"\ntargets (prompt <= 3x transcript, completion <= 3x notes, prefix share >= 60%): "
          f"{'met' if ok else 'NOT met'} by the default layout")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
