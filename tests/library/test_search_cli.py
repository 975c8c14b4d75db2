"""``notsound search`` and ``notsound index`` through the real command line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text

from library.folder import Final, Journal
from library.index import INDEX_NAME
from library.search_view import search_command
from notsound.cli import main

from .test_index import EN, ZH, make_session


@pytest.fixture
def out(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NOTSOUND_CONFIG", str(tmp_path / "none.toml"))
    out = tmp_path / "lectures"
    make_session(out, "ml-en", EN, started="2026-11-02T09:00:00+01:00")
    make_session(out, "ml-zh", ZH, lang="zh", started="2026-11-09T09:00:00+01:00")
    return out


def test_search_prints_ranked_hits_with_session_time_and_marked_words(out, capsys):
    assert main(["search", "梯度", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == ["ml-zh  [00:00]  今天我们讲[梯度]下降和学习率。",
                             "ml-zh  [00:10]  反向传播用链式法则计算每一层的[梯度]。"]


def test_search_uses_lectures_in_the_current_folder_by_default(out, capsys):
    assert main(["search", "self-attention"]) == 0
    assert capsys.readouterr().out == "ml-en  [00:10]  [Self-attention] lets every token look at every other token.\n"


def test_search_json_is_a_list_of_hits(out, capsys):
    assert main(["search", "learning rate", "--json", "--out", str(out)]) == 0
    [hit] = json.loads(capsys.readouterr().out)
    assert hit["session"] == "ml-en" and hit["kind"] == "caption" and hit["utt"] == 0
    assert (hit["start"], hit["end"], hit["time"]) == (0.0, 8.0, "00:00")
    assert hit["text"] == EN[0] and "[learning rate]" in hit["snippet"] and hit["score"] > 0


def test_search_on_a_terminal_highlights_with_rich_and_shows_caption_text_literally(out):
    make_session(out, "markup", ["the [bold red]gradient[/] trick"])
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system="standard", width=200)
    assert search_command("gradient", out=out, session="markup", console=console) == 0
    shown = buffer.getvalue()
    assert "\x1b[1;33mgradient\x1b[0m" in shown  # the match in bold yellow
    plain = Text.from_ansi(shown).plain
    assert plain == "markup  [00:00]  the [bold red]gradient[/] trick\n"


def test_search_brings_the_index_up_to_date_first(out, capsys):
    assert main(["search", "momentum", "--out", str(out)]) == 1
    journal = Journal(out / "ml-en")
    journal.append(Final(len(EN), 60.0, 65.0, "Momentum smooths the steps."))
    journal.close()
    assert main(["search", "momentum", "--out", str(out)]) == 0
    assert capsys.readouterr().out == "ml-en  [01:00]  [Momentum] smooths the steps.\n"


def test_session_and_since_narrow_the_search(out, capsys):
    make_session(out, "ml-en-2", ["Gradient descent with momentum."], started="2026-11-16T10:00:00+01:00")
    assert main(["search", "gradient", "--out", str(out), "--session", "ml-en-2"]) == 0
    assert capsys.readouterr().out.startswith("ml-en-2  [00:00]")
    assert main(["search", "gradient", "--out", str(out), "--since", "2026-11-03", "--json"]) == 0
    assert [h["session"] for h in json.loads(capsys.readouterr().out)] == ["ml-en-2"]


@pytest.mark.parametrize("argv, message", [
    (["search", "x", "--since", "2026-13-40"], "--since wants a date as YYYY-MM-DD"),
    (["search", "x", "--since", "yesterday"], "--since wants a date as YYYY-MM-DD"),
    (["search", "gradient", "--session", "nope"], "no session 'nope'"),
    (["search", ""], "the query is empty"),
    (["search", "  \t "], "the query is empty"),
    (["search", '"*"()'], "nothing to search for"),
    (["search", "x", "--limit", "0"], "--limit must be between 1 and"),
])
def test_bad_input_is_one_line_and_exit_2(out, capsys, argv, message):
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("notsound: ") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_session_outside_the_lectures_folder_is_refused(out, tmp_path, capsys):
    other = make_session(tmp_path / "elsewhere", "far", ["gradient"])
    assert main(["search", "gradient", "--out", str(out), "--session", str(other)]) == 2
    assert "not in the lectures folder" in capsys.readouterr().err


def test_fts_syntax_is_searched_as_text(out, capsys):
    assert main(["search", 'rock AND "roll', "--out", str(out)]) == 0
    assert capsys.readouterr().out == "ml-en  [00:20]  [Rock and roll] is not on the exam.\n"
    assert main(["search", "NEAR(x y) OR -z*", "--out", str(out)]) == 1
    assert "no matches" in capsys.readouterr().err


def test_no_lectures_folder_is_no_match_and_says_where(tmp_path, capsys):
    assert main(["search", "gradient", "--out", str(tmp_path / "missing")]) == 1
    assert "no sessions in" in capsys.readouterr().err


def test_index_reports_what_it_did(out, capsys):
    assert main(["index", "--out", str(out)]) == 0
    first = capsys.readouterr().out
    assert ": created in " in first and "2 sessions, 2 changed" in first and f"+{len(EN) + len(ZH)} captions" in first
    assert main(["index", "--out", str(out)]) == 0
    assert ": updated in " in capsys.readouterr().out
    assert main(["index", "--out", str(out), "--rebuild"]) == 0
    assert ": rebuilt in " in capsys.readouterr().out
    (out / INDEX_NAME).write_bytes(b"\0garbage" * 100)
    assert main(["index", "--out", str(out)]) == 0
    assert "rebuilt (the old file was damaged)" in capsys.readouterr().out
    assert main(["search", "反向传播", "--out", str(out)]) == 0


def test_index_of_a_missing_folder_is_an_error(tmp_path, capsys):
    assert main(["index", "--out", str(tmp_path / "missing")]) == 2
    assert "no lectures folder" in capsys.readouterr().err
