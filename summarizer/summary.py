"""The final summary: ``notsound summary`` writes ``summary.md``.

A transcript that fits the context budget goes to the model in one request.
A longer one is cut into parts that fit, each part is condensed (map), and
the condensed notes are merged, in rounds if they still do not fit (reduce),
before the final request writes the summary from them. A rich progress bar
follows the parts; the final answer streams to the terminal when standard
output is one. The answer must have every required section, else it is asked
for once more; ``summary.md`` is replaced atomically.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from .client import LLMClient, Message, Usage
from .errors import LLMOutputError, NoAPIKeyError, SummaryError
from .files import SUMMARY, TRANSCRIPT, write_atomic
from .prompts import fence, map_system, summary_headings, summary_system
from .settings import LLMSettings, SummarySettings, no_key_help
from .transcript import (
    Final,
    estimate_tokens,
    fmt_time,
    guess_language,
    read_finals,
    split_by_tokens,
)

__all__ = ["run_summary", "load_slides", "transcript_paragraphs", "check_summary"]

log = logging.getLogger(__name__)

#: tokens kept free for message framing and estimate error
MARGIN = 300
REJECTED = "summary.rejected.md"
PARAGRAPH_S = 60.0
_FENCE = re.compile(r"^```[\w-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


def transcript_paragraphs(finals: Sequence[Final], every_s: float = PARAGRAPH_S) -> list[str]:
    """The transcript as paragraphs of about a minute, each led by its ``[mm:ss]`` time."""
    paragraphs: list[str] = []
    current: list[Final] = []
    for final in finals:
        if current and final.start - current[0].start >= every_s:
            paragraphs.append(_paragraph(current))
            current = []
        if final.text:
            current.append(final)
    if current:
        paragraphs.append(_paragraph(current))
    return paragraphs


def _paragraph(finals: Sequence[Final]) -> str:
    return f"[{fmt_time(finals[0].start)}] " + " ".join(f.text for f in finals)


def load_slides(path: Path, budget_tokens: int) -> str:
    """Text of a slides file (text, Markdown, or PDF through ``pdftotext``), cut to the budget."""
    path = Path(path)
    if path.suffix.lower() == ".pdf":
        tool = shutil.which("pdftotext")
        if tool is None:
            raise SummaryError("reading PDF slides needs pdftotext (apt install poppler-utils); "
                               "or pass a text or Markdown export with --slides")
        try:
            done = subprocess.run([tool, "-enc", "UTF-8", str(path), "-"], capture_output=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SummaryError(f"pdftotext failed on {path}: {exc}") from None
        if done.returncode != 0:
            raise SummaryError(f"pdftotext failed on {path}: {done.stderr.decode(errors='replace').strip()}")
        text = done.stdout.decode("utf-8", errors="replace")
    else:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise SummaryError(f"cannot read slides {path}: {exc}") from None
    text = text.strip()
    while text and estimate_tokens(text) > budget_tokens:
        text = text[: int(len(text) * 0.9 * budget_tokens / estimate_tokens(text))]
        log.warning("slides cut to about %d tokens to fit the context budget", budget_tokens)
    return text


def _heading_key(line: str) -> str:
    text = line.lstrip("#").strip().strip("*_ ").rstrip(":：")
    return re.sub(r"^\d+[.)、]\s*", "", text).casefold()


def check_summary(text: str, headings: Sequence[str], title: str) -> str:
    """The summary Markdown with a ``#`` title, or :class:`LLMOutputError` if a section is missing."""
    text = text.strip().replace("\r\n", "\n")
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    found = {_heading_key(line) for line in text.split("\n") if line.startswith("## ")}
    missing = [h for h in headings if h.casefold() not in found]
    if missing:
        raise LLMOutputError(f"summary lacks the sections {', '.join(missing)}")
    if not text.startswith("# "):
        text = f"# {title}\n\n{text}"
    return text + "\n"


class _Summarizer:
    """One summary run: budgets, the map and reduce rounds, the final request."""

    def __init__(self, client: LLMClient, llm: LLMSettings, settings: SummarySettings, language: str,
                 progress: Callable[[str, int], None]):
        self.client, self.llm, self.settings, self.language = client, llm, settings, language
        self.progress = progress
        self.usage = Usage()
        self.calls = 0
        self.map_budget = llm.context_tokens - settings.part_output_tokens - estimate_tokens(map_system(language)) - MARGIN
        if self.map_budget < 2 * settings.part_output_tokens:
            raise SummaryError(f"context_tokens={llm.context_tokens} is too small for part_output_tokens="
                               f"{settings.part_output_tokens}: raise [llm] context_tokens")

    def final_budget(self, slides: str) -> int:
        system = summary_system(self.language, self.settings.style)
        budget = (self.llm.context_tokens - self.settings.max_output_tokens - estimate_tokens(system)
                  - estimate_tokens(slides) - MARGIN)
        if budget < self.settings.part_output_tokens:
            raise SummaryError(f"context_tokens={self.llm.context_tokens} leaves no room for the transcript "
                               "after max_output_tokens and slides: raise [llm] context_tokens")
        return budget

    async def _ask(self, messages: list[Message], max_tokens: int, on_delta=None) -> str:
        """One request, always streamed: long answers keep bytes flowing within ``timeout_s``."""
        self.calls += 1
        result = await self.client.chat(messages, max_tokens=max_tokens, on_delta=on_delta or _ignore)
        self.usage += result.usage
        if result.finish_reason == "length":
            log.warning("an answer was cut at %d tokens: raise [summary] max_output_tokens or "
                        "part_output_tokens if sections are missing", max_tokens)
        if not result.text.strip():
            raise LLMOutputError("the model returned an empty answer")
        return result.text.strip()

    async def condense(self, blocks: Sequence[str]) -> str:
        messages = [{"role": "system", "content": map_system(self.language)},
                    {"role": "user", "content": "\n\n".join(blocks)}]
        return await self._ask(messages, self.settings.part_output_tokens)

    async def map_parts(self, paragraphs: Sequence[str]) -> list[str]:
        groups = split_by_tokens(paragraphs, self.map_budget)
        self.progress("map", len(groups))
        notes = []
        for n, group in enumerate(groups, 1):
            text = "\n".join(paragraphs[i] for i in group)
            span = paragraphs[group[0]].split("]", 1)[0].lstrip("[")
            notes.append(fence("notes", await self.condense([fence("transcript", text, part=f"{n}/{len(groups)}")]),
                               part=str(n), starts=span))
            self.progress("advance", 1)
        return notes

    async def reduce(self, notes: list[str], budget: int) -> list[str]:
        while len(notes) > 1 and sum(estimate_tokens(n) for n in notes) > budget:
            groups = split_by_tokens(notes, self.map_budget)
            if len(groups) == len(notes):  # each alone is too big: merge pairs
                groups = [list(range(i, min(i + 2, len(notes)))) for i in range(0, len(notes), 2)]
            self.progress("merge", len(groups))
            merged = []
            for n, group in enumerate(groups, 1):
                merged.append(fence("notes", await self.condense([notes[i] for i in group]), part=str(n)))
                self.progress("advance", 1)
            notes = merged
        return notes

    async def final(self, material: str, slides: str, title: str, on_delta) -> str:
        user = (fence("slides", slides) + "\n\n" if slides else "") + material
        user += "\n\nWrite the summary of this lecture now."
        messages = [{"role": "system", "content": summary_system(self.language, self.settings.style)},
                    {"role": "user", "content": user}]
        headings = summary_headings(self.language, self.settings.style)
        for attempt in (1, 2):
            text = await self._ask(messages, self.settings.max_output_tokens, on_delta)
            try:
                checked = check_summary(text, headings, title)
                self.progress("advance", 1)
                return checked
            except LLMOutputError as exc:
                if attempt == 2:
                    err = SummaryError(f"{exc}; the model's answer is kept in {REJECTED}")
                    err.answer = text  # type: ignore[attr-defined]
                    raise err from None
                log.warning("%s; asking once more", exc)
                if on_delta is not None:
                    on_delta(f"\n\n[{exc}; asking once more]\n\n")
        raise AssertionError("unreachable")  # pragma: no cover


async def _summarize(s: _Summarizer, finals: Sequence[Final], slides: str, title: str, on_delta) -> str:
    paragraphs = transcript_paragraphs(finals)
    budget = s.final_budget(slides)
    whole = "\n".join(paragraphs)
    if estimate_tokens(whole) + MARGIN <= budget:
        s.progress("final", 1)
        return await s.final(fence("transcript", whole), slides, title, on_delta)
    notes = await s.reduce(await s.map_parts(paragraphs), budget)
    s.progress("final", 1)
    return await s.final("\n\n".join(notes), slides, title, on_delta)


class _Progress:
    """A rich progress bar over the map and merge rounds; silent for a one-request summary."""

    LABELS = {"map": "Summarising parts", "merge": "Merging part notes", "final": "Writing the summary"}

    def __init__(self, console, streaming: bool):
        self.console, self.streaming = console, streaming
        self._bar = None
        self._task = None

    def __call__(self, kind: str, total: int) -> None:
        if kind == "advance":
            if self._bar is not None and self._task is not None:
                self._bar.advance(self._task, total)
            return
        if self._bar is None:
            if kind == "final":
                return
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console)
            self._bar.start()
        if kind == "final" and self.streaming:
            self.stop()  # the streamed answer shows the last step
            return
        self._task = self._bar.add_task(self.LABELS[kind], total=total)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


async def _prepare(session_dir: Path, llm: LLMSettings, settings: SummarySettings,
                   slides: Path | None) -> tuple[list[Final], str, str]:
    """The captions, the summary language and the slides text of a session."""
    finals = [f for f in read_finals(session_dir / TRANSCRIPT) if f.text]
    if not finals:
        raise SummaryError(f"no captions in {session_dir / TRANSCRIPT}: nothing to summarise")
    language = settings.language if settings.language.lower() != "auto" else guess_language(finals)
    slides_text = ""
    if slides is not None:
        budget = int(llm.context_tokens * settings.slides_share)
        slides_text = await asyncio.to_thread(load_slides, slides, budget)
    return finals, language, slides_text


async def run_summary(
    session_dir: Path | str,
    llm: LLMSettings,
    settings: SummarySettings,
    api_key: str | None,
    *,
    slides: Path | None = None,
    stream_to: TextIO | None = None,
    console=None,
) -> Path:
    """Write ``summary.md`` for a session and return its path.

    Args:
        stream_to: where to stream the answer as it arrives; by default standard
            output when it is a terminal and ``settings.stream`` is on.
        console: a rich console for the progress bar (default: standard error).

    Raises:
        NoAPIKeyError: no key configured (exit code 2).
        SummaryError: no transcript, budget too small, unusable answers.
        LLMError: the API failed (after retries and within the deadline).
    """
    if not api_key:
        raise NoAPIKeyError(f"notsound summary needs an LLM; {no_key_help()}")
    session_dir = Path(session_dir)
    finals, language, slides_text = await _prepare(session_dir, llm, settings, slides)
    if stream_to is None and settings.stream and sys.stdout.isatty():
        stream_to = sys.stdout
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    progress = _Progress(console, streaming=stream_to is not None)
    client = LLMClient(llm, api_key)
    try:
        s = _Summarizer(client, llm, settings, language, progress)
        on_delta = _writer(stream_to) if stream_to is not None else None
        text = await _summarize(s, finals, slides_text, session_dir.name, on_delta)
    except SummaryError as exc:
        if getattr(exc, "answer", None):
            write_atomic(session_dir / REJECTED, exc.answer)  # type: ignore[attr-defined]
        raise
    finally:
        progress.stop()
        await client.aclose()
    write_atomic(session_dir / SUMMARY, text)
    log.info("summary: %d requests, %d prompt tokens (%d cached), %d completion tokens",
             s.calls, s.usage.prompt_tokens, s.usage.cached_tokens, s.usage.completion_tokens)
    return session_dir / SUMMARY


def _ignore(piece: str) -> None:
    pass


def _writer(stream: TextIO) -> Callable[[str], None]:
    def write(piece: str) -> None:
        stream.write(piece)
        stream.flush()

    return write
