"""``--slides`` for ``notsound summary`` and ``notes``: stored once, used later, bad decks reported."""

from __future__ import annotations

import pytest

from notsound.cli import main
from slides import SLIDES_FILE, load_session_deck
from summarizer.prompts import notes_system, summary_deck_note, summary_system
from tests.summarizer.conftest import CANARY

from .decks import LECTURE_DECK, write_pptx


@pytest.fixture
def env(monkeypatch, tmp_path, fake_llm):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NOTSOUND_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("NOTSOUND_LLM_API_KEY", CANARY)
    monkeypatch.setenv("NOTSOUND_LLM_BASE_URL", fake_llm.url)
    return monkeypatch


def final_request(fake_llm):
    return fake_llm.requests[-1].messages


def test_summary_uses_the_deck_and_later_runs_use_it_without_the_flag(env, session, fake_llm, tmp_path):
    folder = session(12)
    deck = write_pptx(tmp_path / "nn.pptx", LECTURE_DECK)
    assert main(["-q", "summary", str(folder), "--slides", str(deck), "--no-stream"]) == 0
    system, user = final_request(fake_llm)[0]["content"], final_request(fake_llm)[1]["content"]
    assert system == summary_system("en", "detailed") + summary_deck_note()
    assert "<slides>\nSlide 1 · Neural Networks" in user and "Slide 4 · Gradient Descent" in user
    assert "(Slide 4 · Gradient Descent)" in user  # the transcript is marked where the slide changes
    assert load_session_deck(folder).source_name == "nn.pptx"

    fake_llm.requests.clear()
    assert main(["-q", "summary", str(folder), "--no-stream"]) == 0
    assert "Slide 4 · Gradient Descent" in final_request(fake_llm)[1]["content"]


def test_without_a_deck_the_prompts_are_unchanged(env, session, fake_llm):
    folder = session(3)
    assert main(["-q", "summary", str(folder), "--no-stream"]) == 0
    system, user = final_request(fake_llm)[0]["content"], final_request(fake_llm)[1]["content"]
    assert system == summary_system("en", "detailed")
    assert "<slides>" not in user and "(Slide" not in user
    assert not (folder / SLIDES_FILE).exists()


@pytest.mark.parametrize("name, content, message", [
    ("talk.key", b"keynote bytes", "unknown slides format '.key'"),
    ("broken.pdf", b"%PDF-1.4 junk", "not a readable PDF"),
])
def test_a_bad_deck_is_one_line_and_exit_1(env, session, fake_llm, tmp_path, capsys, name, content, message):
    folder = session(3)
    (tmp_path / name).write_bytes(content)
    for command in ("summary", "notes"):
        assert main(["-q", command, str(folder), "--slides", str(tmp_path / name)]) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert not (folder / "summary.md").exists() and not (folder / SLIDES_FILE).exists()
    assert fake_llm.requests == []


def test_notes_carry_the_deck_as_a_glossary_and_mark_slides(env, session, fake_llm, tmp_path):
    folder = session(12)
    deck = write_pptx(tmp_path / "nn.pptx", LECTURE_DECK)
    assert main(["-q", "notes", str(folder), "--slides", str(deck), "--every", "120"]) == 0
    system = fake_llm.requests[0].messages[0]["content"]
    assert system.startswith(notes_system("en")) and system != notes_system("en")
    assert "<slides>\nSlide 1 · Neural Networks" in system and "Backpropagation" in system
    assert {r.messages[0]["content"] for r in fake_llm.requests} == {system}  # byte-stable prefix
    turns = "\n".join(m["content"] for r in fake_llm.requests for m in r.messages if m["role"] == "user")
    assert "(Slide 4 · Gradient Descent)" in turns
    assert (folder / SLIDES_FILE).exists()


def test_notes_without_a_deck_keep_the_plain_system_prompt(env, session, fake_llm):
    folder = session(6)
    assert main(["-q", "notes", str(folder), "--every", "120"]) == 0
    assert {r.messages[0]["content"] for r in fake_llm.requests} == {notes_system("en")}


def test_slide_numbers_in_the_journal_win_over_alignment(env, fake_llm, tmp_path):
    from slides import attach_deck
    from tests.summarizer.synthetic import synthetic_finals, write_session

    finals = [dict(f, slide=7) for f in synthetic_finals(3)]  # about gradient descent, but slide 7 is shown
    folder = write_session(tmp_path / "s", finals)
    attach_deck(folder, write_pptx(tmp_path / "nn.pptx", LECTURE_DECK))
    assert main(["-q", "summary", str(folder), "--no-stream"]) == 0
    user = final_request(fake_llm)[1]["content"]
    assert "(Slide 7 · Momentum and Adam)" in user and "(Slide 4 ·" not in user
