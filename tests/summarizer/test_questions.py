"""Questions from the audience: found in a labelled journal, answered, in notes and in prompts."""

from __future__ import annotations

import re

from library.folder import Final
from summarizer import NotesTask
from summarizer.ask_prompts import caption_lines
from summarizer.files import NOTES, TRANSCRIPT
from summarizer.questions import QUESTIONS_HEADING, audience_questions, render_questions
from summarizer.settings import LLMSettings

from .conftest import notes_settings
from .synthetic import append_finals, write_session

LECTURE = [
    Final(0, 0.0, 4.0, "Today we look at the water cycle.", speaker="lecturer"),
    Final(1, 4.5, 8.0, "Water evaporates from the oceans.", speaker="lecturer"),
    Final(2, 9.0, 11.0, "Sorry, does the same water", speaker="audience-1"),
    Final(3, 11.2, 12.5, "come back again?", speaker="audience-1"),
    Final(4, 13.0, 17.0, "Yes, the same water goes round and round.", speaker="lecturer"),
    Final(5, 17.5, 20.0, "For millions of years.", speaker="lecturer"),
    Final(6, 60.0, 64.0, "Now the clouds.", speaker="lecturer"),
    Final(7, 65.0, 67.0, "What about snow?", speaker="audience-2"),
    Final(8, 68.0, 70.0, "Can we go now?", speaker="audience-1"),
]


def test_a_question_is_the_audience_run_and_its_answer_the_lecturer_after_it():
    questions = audience_questions(LECTURE)
    assert [(q.speaker, q.start, q.text, q.answer_start, q.answer) for q in questions] == [
        ("audience-1", 9.0, "Sorry, does the same water come back again?", 13.0,
         "Yes, the same water goes round and round. For millions of years."),
        ("audience-2", 65.0, "What about snow?", None, ""),
        ("audience-1", 68.0, "Can we go now?", None, ""),
    ]
    assert audience_questions([Final(0, 0.0, 1.0, "x", speaker="lecturer"), Final(1, 1.0, 2.0, "y")]) == []


def test_the_questions_part_quotes_question_time_and_answer():
    text = render_questions(LECTURE)
    assert text.splitlines()[:4] == [
        QUESTIONS_HEADING,
        "",
        "- **[00:09] Audience 1:** Sorry, does the same water come back again?",
        "  - _Answer [00:13]:_ Yes, the same water goes round and round. For millions of years.",
    ]
    assert render_questions([Final(0, 0.0, 1.0, "only the lecturer", speaker="lecturer")]) == ""


def test_captions_given_to_the_llm_say_who_in_the_room_spoke():
    lines = caption_lines(LECTURE[:5]).splitlines()
    assert lines[2] == "[00:09] Audience 1: Sorry, does the same water"
    assert lines[4] == "[00:13] Yes, the same water goes round and round."


async def test_extractive_notes_end_with_the_questions_from_the_audience(tmp_path):
    folder = write_session(tmp_path / "s1", [], ended=False)
    append_finals(folder / TRANSCRIPT, [f.to_dict() for f in LECTURE])
    task = NotesTask(folder, LLMSettings(), notes_settings(every_s=10), None)  # no key: an outline
    await task.step(final=True)
    text = (folder / NOTES).read_text()
    assert text.rstrip().endswith(render_questions(LECTURE).rstrip())
    assert len(re.findall(r"^- \*\*\[", text, re.M)) == 3
