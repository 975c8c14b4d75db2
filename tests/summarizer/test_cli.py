"""``notsound notes`` and ``notsound summary`` end to end, in process, against the loopback server."""

from __future__ import annotations

import re

import pytest

from notsound.cli import main
from summarizer import no_key_help
from summarizer.files import NOTES_OUTLINE_LINE

from .conftest import CANARY


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NOTSOUND_CONFIG", str(tmp_path / "none.toml"))
    return monkeypatch


def test_summary_without_a_key_exits_2_and_says_how_to_set_one(env, session, capsys):
    folder = session(2)
    assert main(["summary", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "DEEPSEEK_API_KEY" in err and "NOTSOUND_LLM_API_KEY" in err
    assert not (folder / "summary.md").exists()


def test_summary_with_the_loopback_server_writes_summary_md(env, session, fake_llm, tmp_path, capsys):
    folder = session(3, name="2026-02-03_1000")
    env.setenv("NOTSOUND_LLM_API_KEY", CANARY)
    env.setenv("NOTSOUND_LLM_BASE_URL", fake_llm.url)
    env.setenv("NOTSOUND_LLM_MODEL", "fake-model")
    code = main(["-q", "summary", "2026-02-03_1000", "--out", str(tmp_path), "--style", "action-items"])
    assert code == 0
    text = (folder / "summary.md").read_text()
    assert text.startswith("# ") and "## Action items" in text
    assert fake_llm.requests[0].json["model"] == "fake-model"
    assert "wrote" in capsys.readouterr().err


def test_summary_of_an_unknown_session_exits_2(env, tmp_path, capsys):
    env.setenv("NOTSOUND_LLM_API_KEY", CANARY)
    assert main(["summary", "nope", "--out", str(tmp_path)]) == 2
    assert "no session 'nope'" in capsys.readouterr().err


def test_notes_without_a_key_writes_the_outline_and_tells_the_set_up_in_the_terminal_once(env, session, capsys):
    folder = session(6)
    assert main(["-q", "notes", str(folder)]) == 0
    text = (folder / "notes.md").read_text()
    assert NOTES_OUTLINE_LINE in text and "API_KEY" not in text
    out, err = capsys.readouterr()
    assert out.strip() == str(folder / "notes.md")
    assert err.count("DEEPSEEK_API_KEY") == 1 and err.startswith("notsound: LLM notes are off")
    assert "NOTSOUND_LLM_API_KEY" in err and "NOTSOUND_LLM_KEY_FILE" in err


def test_notes_help_says_how_to_turn_llm_notes_on(capsys):
    with pytest.raises(SystemExit):
        main(["notes", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for name in re.findall(r"\b[A-Z][A-Z_]{4,}\b|\[llm\] key_file", no_key_help()):
        assert name.replace("[llm] ", "") in help_text, name


def test_notes_with_the_loopback_server_writes_llm_notes(env, session, fake_llm):
    folder = session(6)
    env.setenv("DEEPSEEK_API_KEY", CANARY)
    env.setenv("NOTSOUND_LLM_BASE_URL", fake_llm.url)
    assert main(["-q", "notes", str(folder), "--every", "60"]) == 0
    text = (folder / "notes.md").read_text()
    assert "_Live notes by deepseek-chat" in text and text.count("\n## ") >= 4


def test_notes_with_a_refused_key_exits_1_and_keeps_what_it_had(env, session, fake_llm, capsys):
    folder = session(2)
    env.setenv("DEEPSEEK_API_KEY", CANARY)
    env.setenv("NOTSOUND_LLM_BASE_URL", fake_llm.url)
    fake_llm.script = [401]
    assert main(["-q", "notes", str(folder)]) == 1
    assert "401" in capsys.readouterr().err
    assert not (folder / "notes.md").exists()


def test_notes_use_the_polished_layer_unless_told_live(env, session, capsys):
    folder = session(4)
    live = (folder / "transcript.jsonl").read_text()
    (folder / "transcript.polished.jsonl").write_text(live.replace('"text": "', '"text": "Polished '))
    assert main(["-q", "notes", str(folder)]) == 0
    assert "Polished" in (folder / "notes.md").read_text()
    assert main(["-q", "notes", str(folder), "--live"]) == 0
    assert "Polished" not in (folder / "notes.md").read_text()
