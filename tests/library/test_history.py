"""``notsound history``: the sessions newest first, and no folder left by a run that failed early."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from library.folder import (
    NOTES,
    NOTES_OUTLINE_LINE,
    SLIDES,
    SUMMARY,
    TRANSCRIPT,
    Final,
    Journal,
    read_finals,
    write_meta,
)
from library.history import (
    TITLE_CHARS,
    count_words,
    format_tsv,
    history,
    render_table,
    session_info,
)
from notsound.cli import main


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NOTSOUND_CONFIG", str(tmp_path / "none.toml"))
    return monkeypatch


def _session(out, name, texts, lang="en", started=None, engine="fake", gap=1.0):
    journal = Journal(out / name)
    t = 0.0
    for i, text in enumerate(texts):
        journal.append(Final(i, t, t + 3.0, text, lang))
        t += 3.0 + gap
    journal.close()
    write_meta(out / name, session=name, language="auto", started=started, engine=engine)
    return out / name


@pytest.fixture
def library(tmp_path):
    out = tmp_path / "lectures"
    _session(out, "ml-1", ["Today we study gradient descent.", "The learning rate sets the step."],
             started="2026-11-02T09:00:00+01:00")
    zh = _session(out, "ml-2", ["今天我们讲反向传播。", "梯度从输出层传回来。"], lang="zh",
                  started="2026-11-09T09:00:00+01:00", engine="sensevoice")
    (zh / SUMMARY).write_text("# 反向传播与链式法则\n\n## 要点\n- x\n", encoding="utf-8")
    (zh / NOTES).write_text("# 课堂笔记 — ml-2\n\n## 00:00–05:00 · 链式法则\n- y\n", encoding="utf-8")
    first = out / "ml-1"
    (first / NOTES).write_text("# Lecture notes — ml-1\n\n## 00:00–02:00 · Gradient descent basics\n- z\n")
    (first / SLIDES).write_text("{}")
    empty = out / "2026-11-05_1000"
    Journal(empty).close()
    (empty / TRANSCRIPT).write_bytes(b'{"type":"final","utt":0,"sta')  # torn, nothing readable
    return out


def test_history_lists_sessions_newest_first_with_titles_words_and_files(library):
    rows = history(library)
    assert [r.name for r in rows] == ["ml-2", "2026-11-05_1000", "ml-1"]
    zh, empty, en = rows
    assert zh.title == "反向传播与链式法则", "the summary's heading comes first"
    assert en.title == "Gradient descent basics", "else the notes' first section"
    assert (zh.words, zh.language, zh.engine, zh.summary, zh.notes, zh.slides) == (18, "zh", "sensevoice", True, True, False)
    assert (en.words, en.language, en.duration_s, en.slides, en.summary) == (11, "en", 7.0, True, False)
    assert (empty.words, empty.captions, empty.duration_s, empty.title) == (0, 0, 0.0, "")
    assert empty.started is not None and empty.started.strftime("%Y-%m-%d %H:%M") == "2026-11-05 10:00"


def test_without_notes_or_summary_the_title_is_the_first_words(tmp_path):
    folder = _session(tmp_path, "s", ["So, welcome back everyone to the second lecture on convex optimization today"])
    info = session_info(folder)
    assert info.title.endswith("…") and info.title.startswith("So, welcome back")
    assert len(info.title) <= 49 and not info.notes


def test_words_count_cjk_characters_and_latin_words():
    assert count_words("梯度下降 uses the learning-rate, 3 times") == 4 + 5
    assert count_words("") == 0


def test_history_command_prints_json_and_tab_separated_text(env, library, capsys):
    assert main(["history", "--out", str(library), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["ml-2", "2026-11-05_1000", "ml-1"]
    assert rows[0]["started"] == "2026-11-09T09:00:00+01:00" and rows[2]["words"] == 11
    assert main(["history", "--out", str(library)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["date", "session", "title", "duration", "words", "language", "engine",
                                    "notes", "summary", "slides"]
    assert lines[3].split("\t")[1:] == ["ml-1", "Gradient descent basics", "00:07", "11", "en", "fake",
                                        "yes", "no", "yes"]


def test_history_of_an_empty_library_says_so(env, tmp_path, capsys):
    assert main(["history", "--out", str(tmp_path / "none")]) == 0
    assert "no sessions" in capsys.readouterr().err
    assert main(["history", "--out", str(tmp_path / "none"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_titles_are_shown_as_text_not_markup_and_tabs_never_split_a_row(tmp_path):
    folder = _session(tmp_path, "s", ["x"])
    (folder / SUMMARY).write_text("# [bold red]a\ttitle[/]\n")
    rows = history(tmp_path)
    console = Console(file=io.StringIO(), width=200, color_system=None)
    render_table(rows, console)
    assert "[bold red]a" in console.file.getvalue()
    assert format_tsv(rows).splitlines()[1].count("\t") == 9


def test_live_failing_before_any_audio_leaves_no_session_folder(env, tmp_path, capsys):
    out = tmp_path / "lectures"
    assert main(["live", "--input", str(tmp_path / "nope.wav"), "--fast", "--engine", "fake",
                 "--no-notes", "--out", str(out), "--session", "s1"]) == 2
    assert "not found" in capsys.readouterr().err and not (out / "s1").exists()
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not audio")
    assert main(["live", "--input", str(bad), "--fast", "--engine", "fake", "--no-notes", "--plain",
                 "--out", str(out), "--session", "s1"]) == 1
    assert "cannot decode" in capsys.readouterr().err
    assert not (out / "s1").exists()
    assert history(out) == []


def test_a_failed_resume_keeps_the_earlier_session(env, tmp_path, capsys):
    out = tmp_path / "lectures"
    folder = _session(out, "s1", ["kept"])
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not audio")
    assert main(["live", "--input", str(bad), "--fast", "--engine", "fake", "--no-notes", "--plain",
                 "--out", str(out), "--session", "s1"]) == 1
    assert [f.text for f in read_finals(folder)] == ["kept"]


LAGRANGE = ["Today: the method of Lagrange multipliers.", "It might seem amiable to ask why we might need it.",
            "We ask what the constraint might cost."]


@pytest.mark.parametrize("provenance", [NOTES_OUTLINE_LINE, "_Extractive outline: LLM notes are off (no API key)._"])
def test_an_outline_made_without_an_llm_gives_no_title_the_first_sentence_does(tmp_path, provenance):
    folder = _session(tmp_path, "s", LAGRANGE)
    (folder / NOTES).write_text(f"# Lecture notes — s\n\n{provenance}\n\n## 00:00–05:00 · might, amiable, ask\n"
                                "- [00:00] It might seem amiable to ask why we might need it.\n")
    assert session_info(folder).title == "Today: the method of Lagrange multipliers"


def test_a_filler_first_sentence_is_passed_over_and_a_long_one_cut_at_a_word(tmp_path):
    folder = _session(tmp_path, "s", ["Okay.", "Right, so.", "Today we derive backpropagation from the chain rule "
                                      "and then apply it to a small two-layer network."])
    title = session_info(folder).title
    assert title == "Today we derive backpropagation from the chain…"
    assert len(title) <= TITLE_CHARS


def test_a_short_first_sentence_is_the_title_when_nothing_else_is_said(tmp_path):
    assert session_info(_session(tmp_path, "s", ["Okay."])).title == "Okay"


def test_a_chinese_title_is_the_first_sentence_cut_after_a_comma_or_at_a_character(tmp_path):
    said = ["今天我们讲反向传播算法的推导过程，然后用链式法则计算每一层参数的梯度。", "下面开始。"]
    assert session_info(_session(tmp_path, "a", said, lang="zh")).title == "今天我们讲反向传播算法的推导过程…"
    short = session_info(_session(tmp_path, "b", ["今天我们讲反向传播。", "梯度从输出层传回来。"], lang="zh"))
    assert short.title == "今天我们讲反向传播"
    unbroken = session_info(_session(tmp_path, "c", ["卷积神经网络" * 6 + "。"], lang="zh")).title
    assert unbroken == ("卷积神经网络" * 6)[:23] + "…"
