"""The notes document: its state file (the watermark), rendering and sanity checks.

``notes.md`` is always rendered from :class:`NotesState`, which is saved in
``notes.state.json`` next to it. Order of writes: notes first, state second,
so the watermark never claims more than the notes hold; a restart re-renders
the notes from the state and redoes at most one part.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import LLMOutputError
from .extractive import Sentence
from .files import NOTES_OUTLINE_LINE, write_atomic
from .prompts import notes_title
from .transcript import fmt_time

__all__ = [
    "STATE_VERSION",
    "Section",
    "NotesState",
    "load_state",
    "save_state",
    "render_notes",
    "render_outline",
    "check_section",
    "check_notes",
    "write_notes",
]

log = logging.getLogger(__name__)

STATE_VERSION = 1
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S")
_FENCE = re.compile(r"^```[\w-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)
_TIME_PREFIX = re.compile(r"^(?:part\s*\d+\s*[·:\-–]\s*)?(?:\d+:)?\d+:\d\d\s*[–-]\s*(?:\d+:)?\d+:\d\d\s*[·:\-–]?\s*", re.I)


@dataclass
class Section:
    """One section of the notes, covering finals ``first``..``last``.

    Attributes:
        source: ``llm``, or ``extractive`` when the model's answers for the part
            kept failing the sanity check.
    """

    first: int
    last: int
    start: float
    end: float
    title: str
    body: str
    source: str = "llm"


@dataclass
class NotesState:
    """What ``notes.md`` holds: the finals (utt numbers of ``layer``) already in it, and its sections.

    ``layer`` is the transcript the notes were made from, ``live`` (the journal) or
    ``polished``: utt numbers mean something in one layer only. A state without it
    (written before there were layers) is of the live one.
    """

    mode: str = "llm"
    lang: str = ""
    utts: set[int] = field(default_factory=set)
    sections: list[Section] = field(default_factory=list)
    layer: str = "live"

    def to_json(self) -> str:
        data = {"version": STATE_VERSION, "mode": self.mode, "lang": self.lang, "layer": self.layer,
                "utts": _ranges(self.utts), "sections": [asdict(s) for s in self.sections]}
        return json.dumps(data, ensure_ascii=False, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> NotesState:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError("unknown notes state version")
        utts = {u for lo, hi in data.get("utts", []) for u in range(int(lo), int(hi) + 1)}
        sections = [Section(**s) for s in data.get("sections", [])]
        return cls(str(data.get("mode", "llm")), str(data.get("lang", "")), utts, sections,
                   str(data.get("layer", "live")))


def _ranges(utts: Iterable[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for u in sorted(utts):
        if out and u == out[-1][1] + 1:
            out[-1][1] = u
        else:
            out.append([u, u])
    return out


def load_state(path: Path) -> NotesState | None:
    """The saved state, or ``None`` when there is none or it is unreadable (start afresh)."""
    try:
        return NotesState.from_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("ignoring unreadable notes state %s: %s", path, exc)
        return None


def save_state(path: Path, state: NotesState) -> None:
    write_atomic(path, state.to_json())


def _span(sections: Sequence[Section]) -> str:
    return f"{fmt_time(sections[0].start)}–{fmt_time(sections[-1].end)}" if sections else "—"


def render_notes(state: NotesState, session: str, model: str) -> str:
    """``notes.md`` made by the LLM: a title, one line of provenance, one ``##`` section per part."""
    lines = [f"# {notes_title(state.lang)} — {session}", "",
             f"_Live notes by {model} · {_span(state.sections)} · {len(state.sections)} sections_", ""]
    for s in state.sections:
        lines += [f"## {fmt_time(s.start)}–{fmt_time(s.end)} · {s.title}", "", s.body.strip(), ""]
    return "\n".join(lines)


def render_outline(outline: Sequence[tuple[str, Sequence[Sentence]]], session: str, lang: str) -> str:
    """``notes.md`` without an LLM: the extractive outline under one short line saying so
    (how to turn LLM notes on is told in the terminal and in ``notsound notes --help``)."""
    lines = [f"# {notes_title(lang)} — {session}", "", NOTES_OUTLINE_LINE, ""]
    for heading, sentences in outline:
        lines += [f"## {heading}", ""]
        lines += [f"- [{fmt_time(s.time)}] {s.text}" for s in sentences]
        lines.append("")
    return "\n".join(lines)


def check_section(text: str, fallback_title: str) -> tuple[str, str]:
    """The (title, body) of a model's notes section, or :class:`LLMOutputError`.

    Accepted: Markdown (optionally in a code fence) with bullets, starting with
    a heading that becomes the title (``fallback_title`` when there is none);
    further ``#``/``##`` headings are demoted to ``###`` so the document keeps
    one level per part.
    """
    text = text.strip().replace("\r\n", "\n")
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text:
        raise LLMOutputError("empty notes section")
    lines = text.split("\n")
    title = fallback_title
    if lines[0].lstrip().startswith("#"):
        title = _TIME_PREFIX.sub("", lines.pop(0).strip().lstrip("#").strip()).strip("*_ ") or fallback_title
    body = [re.sub(r"^#{1,2}(?=\s)", "###", line) for line in lines]
    if not any(_BULLET.match(line) for line in body):
        raise LLMOutputError("notes section without bullet points")
    return title[:100], "\n".join(body).strip()


def check_notes(markdown: str) -> bool:
    """Whether a rendered notes document has its title and well-formed sections."""
    lines = markdown.split("\n")
    if not lines or not lines[0].startswith("# "):
        return False
    return all(len(line) > 3 for line in lines if line.startswith("## "))


def write_notes(path: Path, markdown: str) -> None:
    if not check_notes(markdown):
        raise LLMOutputError("rendered notes failed the check; notes.md left unchanged")
    write_atomic(path, markdown)
