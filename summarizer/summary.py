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
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from slides import Deck, DeckError, align_texts, attach_deck, load_session_deck, read_deck

from .client import LLMClient, Message, Usage
from .errors import LLMOutputError, NoAPIKeyError, SummaryError
from .files import SUMMARY, read_layer, transcript_path, write_atomic
from .prompts import (
    deck_text,
    fence,
    map_system,
    marked_text,
    summary_deck_note,
    summary_headings,
    summary_system,
)
from .questions import render_questions, spoken
from .settings import LLMSettings, SummarySettings, no_key_help
from .transcript import (
    Final,
    estimate_tokens,
    fmt_time,
    guess_language,
    split_by_tokens,
)

__all__ = ["run_summary", "load_slides", "session_deck", "slide_labels", "transcript_paragraphs",
           "check_summary"]

log = logging.getLogger(__name__)

#: tokens kept free for message framing and estimate error
MARGIN = 300
REJECTED = "summary.rejected.md"
PARAGRAPH_S = 60.0
_FENCE = re.compile(r"^```[\w-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


def transcript_paragraphs(finals: Sequence[Final], every_s: float = PARAGRAPH_S,
                          labels: Sequence[str] = ()) -> list[str]:
    """The transcript as paragraphs of about a minute, each led by its ``[mm:ss]`` time.

    With ``labels`` (one per final: "Slide 7 · Backpropagation" or ""), a
    ``(Slide N · Title)`` marker stands wherever the slide changes.
    """
    paragraphs: list[str] = []
    current: list[tuple[Final, str]] = []
    labels = list(labels) or [""] * len(finals)
    for final, label in zip(finals, labels, strict=False):
        if current and final.start - current[0][0].start >= every_s:
            paragraphs.append(_paragraph(current))
            current = []
        if final.text:
            current.append((final, label))
    if current:
        paragraphs.append(_paragraph(current))
    return paragraphs


def _paragraph(items: Sequence[tuple[Final, str]]) -> str:
    finals = [f for f, _ in items]
    if not any(label for _, label in items):
        return f"[{fmt_time(finals[0].start)}] " + " ".join(spoken(f) for f in finals)
    return f"[{fmt_time(finals[0].start)}] " + marked_text(finals, [x for _, x in items]).replace("\n", " ")


def slide_labels(deck: Deck, finals: Sequence[Final]) -> list[str]:
    """The slide label of each final: the journal's slide numbers, else aligned from the text."""
    numbers = [f.slide for f in finals]
    if all(n is None for n in numbers):
        numbers = align_texts(deck, [f.text for f in finals])
    labels = {s.number: s.label for s in deck.slides}
    return [labels.get(n, "") if n is not None else "" for n in numbers]


def load_slides(path: Path, budget_tokens: int) -> str:
    """The text of a deck (:func:`slides.read_deck`), cut to about ``budget_tokens``."""
    try:
        deck = read_deck(path)
    except DeckError as exc:
        raise SummaryError(str(exc)) from None
    return _deck_text(deck, budget_tokens)


def _deck_text(deck: Deck, budget_tokens: int) -> str:
    text = deck_text(deck.slides, budget_tokens)
    if len(text) < len(deck_text(deck.slides, 10**9)):
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
        self.slide_marks = False  # the transcript carries (Slide N · Title) lines
        self.map_budget = llm.context_tokens - settings.part_output_tokens - estimate_tokens(map_system(language)) - MARGIN
        if self.map_budget < 2 * settings.part_output_tokens:
            raise SummaryError(f"context_tokens={llm.context_tokens} is too small for part_output_tokens="
                               f"{settings.part_output_tokens}: raise [llm] context_tokens")

    def system(self) -> str:
        """The summary system prompt (with the slide-marker note when the transcript has markers)."""
        note = summary_deck_note() if self.slide_marks else ""
        return summary_system(self.language, self.settings.style) + note

    def final_budget(self, slides: str) -> int:
        system = self.system()
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
        messages = [{"role": "system", "content": self.system()},
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


async def _summarize(s: _Summarizer, finals: Sequence[Final], slides: str, title: str, on_delta,
                     labels: Sequence[str] = ()) -> str:
    paragraphs = transcript_paragraphs(finals, labels=labels)
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


def session_deck(session_dir: Path, slides: Path | None) -> Deck | None:
    """The deck of ``--slides FILE`` (stored in the session for later), else the stored one."""
    if slides is None:
        return load_session_deck(session_dir)
    try:
        return attach_deck(session_dir, slides)
    except DeckError as exc:
        raise SummaryError(str(exc)) from None


def _read_material(session_dir: Path, budget: int, slides: Path | None, layer: str = "best"
                   ) -> tuple[list[Final], str, list[str]]:
    finals = [f for f in read_layer(session_dir, layer) if f.text]
    if not finals:
        raise SummaryError(f"no captions in {transcript_path(session_dir, layer)}: nothing to summarise")
    deck = session_deck(session_dir, slides)
    if deck is None:
        return finals, "", []
    return finals, _deck_text(deck, budget), slide_labels(deck, finals)


async def _prepare(session_dir: Path, llm: LLMSettings, settings: SummarySettings,
                   slides: Path | None) -> tuple[list[Final], str, str, list[str]]:
    """The captions, the summary language, the slides text and each caption's slide label."""
    budget = int(llm.context_tokens * settings.slides_share)
    finals, slides_text, labels = await asyncio.to_thread(_read_material, session_dir, budget, slides,
                                                        settings.layer)
    language = settings.language if settings.language.lower() != "auto" else guess_language(finals)
    return finals, language, slides_text, labels


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
    finals, language, slides_text, labels = await _prepare(session_dir, llm, settings, slides)
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
        s.slide_marks = any(labels)
        text = await _summarize(s, finals, slides_text, session_dir.name, on_delta, labels)
    except SummaryError as exc:
        if getattr(exc, "answer", None):
            write_atomic(session_dir / REJECTED, exc.answer)  # type: ignore[attr-defined]
        raise
    finally:
        progress.stop()
        await client.aclose()
    questions = render_questions(finals)
    write_atomic(session_dir / SUMMARY, f"{text.rstrip()}\n\n{questions}" if questions else text)
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
