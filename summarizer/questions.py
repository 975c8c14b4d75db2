"""Questions from the audience: the captions someone in the room said, and the lecturer's answer.

The journal's speaker labels (``live --speakers``) say who said each final:
``lecturer`` or ``audience-N``. A question is a run of consecutive audience
finals of one speaker; its answer is the lecturer's finals that follow it
before anyone else speaks, within ``answer_gap_s`` of the question and for at
most ``answer_s`` seconds. ``notes.md`` and ``summary.md`` end with a
"Questions from the audience" part built here from the journal alone (no
LLM: the question and the answer are quoted as said), and every text sent to
an LLM marks an audience caption with its speaker's name (:func:`spoken`), so
notes, summaries and ``ask`` know who said what. Labels only: no voice
embedding ever reaches this package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from library.folder import Final, fmt_clock, speaker_name

__all__ = ["Question", "QUESTIONS_HEADING", "audience_questions", "render_questions", "spoken",
           "with_questions"]

QUESTIONS_HEADING = "## Questions from the audience"
_MAX_CHARS = 600


@dataclass(frozen=True)
class Question:
    """One question: who asked, when, what, and the lecturer's answer if one followed."""

    speaker: str
    start: float
    text: str
    answer_start: float | None = None
    answer: str = ""


def spoken(final: Final) -> str:
    """The caption's text, led by ``Audience N:`` when someone in the room said it."""
    return f"{speaker_name(final.speaker)}: {final.text}" if final.audience else final.text


def audience_questions(finals: Sequence[Final], *, answer_gap_s: float = 15.0,
                       answer_s: float = 90.0) -> list[Question]:
    """The questions of a lecture in order (empty when no final is labelled audience)."""
    ordered = [f for f in sorted(finals, key=lambda f: (f.start, f.utt)) if f.text]
    questions: list[Question] = []
    i = 0
    while i < len(ordered):
        final = ordered[i]
        if not final.audience:
            i += 1
            continue
        asked = [final]
        i += 1
        while i < len(ordered) and ordered[i].speaker == final.speaker:
            asked.append(ordered[i])
            i += 1
        answer: list[Final] = []
        while (i < len(ordered) and ordered[i].speaker == "lecturer"
               and ordered[i].start - (answer[-1].end if answer else asked[-1].end) <= answer_gap_s
               and ordered[i].start - asked[-1].end <= answer_s):
            answer.append(ordered[i])
            i += 1
        questions.append(Question(final.speaker, final.start, _joined(asked),
                                  answer[0].start if answer else None, _joined(answer)))
    return questions


def render_questions(finals: Sequence[Final]) -> str:
    """The Markdown part "Questions from the audience" (empty when there are none)."""
    questions = audience_questions(finals)
    if not questions:
        return ""
    lines = [QUESTIONS_HEADING, ""]
    for q in questions:
        lines.append(f"- **[{fmt_clock(q.start)}] {speaker_name(q.speaker)}:** {_md(q.text)}")
        if q.answer_start is not None:
            lines.append(f"  - _Answer [{fmt_clock(q.answer_start)}]:_ {_md(q.answer)}")
    return "\n".join(lines) + "\n"


def with_questions(markdown: str, finals: Sequence[Final]) -> str:
    """``markdown`` (the notes), then the questions from the audience when the captions are labelled."""
    questions = render_questions(finals)
    return f"{markdown.rstrip()}\n\n{questions}" if questions else markdown


def _joined(finals: Sequence[Final]) -> str:
    text = " ".join(" ".join(f.text.split()) for f in finals)
    return text if len(text) <= _MAX_CHARS else text[:_MAX_CHARS].rsplit(" ", 1)[0] + " …"


def _md(text: str) -> str:
    """Caption text as Markdown text, never as markup."""
    return "".join("\\" + ch if ch in "\\`*_[]<>&|~#" else ch for ch in text)
