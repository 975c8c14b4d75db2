"""The search index: real SQLite files built from real session folders, English and Chinese."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from library.folder import (
    NOTES,
    SUMMARY,
    TRANSCRIPT,
    Final,
    Journal,
    SessionNotFoundError,
    encode_final,
    write_meta,
)
from library.index import INDEX_NAME, SCHEMA_VERSION, open_index
from library.search import EmptyQueryError, Hit, QueryError
from library.textseg import query_terms, segment_for_index

EN = [
    "Today we look at gradient descent and the learning rate.",
    "Self-attention lets every token look at every other token.",
    "Rock and roll is not on the exam.",
    "The minimum is near the bottom of the valley.",
]
ZH = [
    "今天我们讲梯度下降和学习率。",
    "反向传播用链式法则计算每一层的梯度。",
    "卷积神经网络的感受野会变大。",
]


def make_session(out: Path, name: str, texts: list[str], *, lang: str = "en", started: str | None = None,
                 first_utt: int = 0) -> Path:
    """A session folder written the way ``notsound live`` writes it (library.folder.Journal)."""
    journal = Journal(out / name)
    for i, text in enumerate(texts, first_utt):
        journal.append(Final(i, 10.0 * i, 10.0 * i + 8.0, text, lang))
    journal.close()
    write_meta(out / name, session=name, started=started or "2026-11-02T09:00:00+01:00", engine="fake")
    return out / name


@pytest.fixture
def out(tmp_path: Path) -> Path:
    out = tmp_path / "lectures"
    make_session(out, "ml-en", EN, started="2026-11-02T09:00:00+01:00")
    make_session(out, "ml-zh", ZH, lang="zh", started="2026-11-09T09:00:00+01:00")
    return out


def assert_consistent(out: Path) -> None:
    """FTS5's own check that the full-text index matches the rows it was built from."""
    db = sqlite3.connect(out / INDEX_NAME)
    try:
        db.execute("INSERT INTO entries_fts(entries_fts, rank) VALUES ('integrity-check', 1)")
    finally:
        db.close()


def _found(index, query: str, **kw) -> list[tuple[str, int | None]]:
    return [(h.session, h.utt) for h in index.search(query, **kw)]


def test_a_new_index_holds_every_caption_and_finds_english_and_chinese(out):
    with open_index(out) as index:
        stats = index.update()
        assert stats.rebuilt == "missing" and stats.sessions == 2 and stats.captions == len(EN) + len(ZH)
        assert (out / INDEX_NAME).is_file() and index.count("caption") == len(EN) + len(ZH)
        assert sorted(_found(index, "梯度")) == [("ml-zh", 0), ("ml-zh", 1)]
        assert _found(index, "反向传播") == [("ml-zh", 1)]
        assert _found(index, "学习率") == [("ml-zh", 0)]
        assert _found(index, "神经网络") == [("ml-zh", 2)]
        assert _found(index, '"self-attention"') == [("ml-en", 1)]
        assert _found(index, "LEARNING rate") == [("ml-en", 0)]
        assert _found(index, "photosynthesis") == []


def test_a_hit_carries_time_text_and_a_highlighted_snippet(out):
    with open_index(out) as index:
        index.update()
        [hit] = index.search("反向传播")
        assert isinstance(hit, Hit) and hit.kind == "caption" and hit.start == 10.0 and hit.end == 18.0
        assert hit.text == ZH[1] and hit.snippet == "[反向传播]用链式法则计算每一层的梯度。"
        [hit] = index.search("learning rate", mark=("<b>", "</b>"))
        assert hit.snippet == "Today we look at gradient descent and the <b>learning rate</b>."
        assert hit.score > 0
        with pytest.raises(dataclasses.FrozenInstanceError):
            hit.text = "changed"  # type: ignore[misc]


def test_the_rest_of_the_snippet_goes_through_escape(tmp_path):
    out = tmp_path / "lectures"
    make_session(out, "s", ["the [red]gradient[/red] is <b>steep</b>"])
    with open_index(out) as index:
        index.update()
        [hit] = index.search("gradient", mark=("{", "}"), escape=lambda s: s.replace("[", "\\["))
        assert hit.snippet == "the \\[red]{gradient}\\[/red] is <b>steep</b>"


@pytest.mark.parametrize("query", ['"', "*", "-", ":", "(", ")", "AND", "OR", "NOT", "NEAR(", "^",
                                   'gradient" OR "x', "text:gradient", "gradient*", "-gradient",
                                   "NEAR(gradient descent, 2)", "{gradient}"])
def test_fts_syntax_in_a_query_is_plain_text(out, query):
    with open_index(out) as index:
        index.update()
        try:
            hits = index.search(query)
        except EmptyQueryError:
            assert not query_terms(query)  # only punctuation: nothing to search for
            return
        words = {w for group in query_terms(query) for w in group}
        for hit in hits:  # every hit holds every word of the query, operators included
            assert all(w in hit.text.lower() for w in words)


def test_operator_words_are_searched_as_words(out):
    with open_index(out) as index:
        index.update()
        assert _found(index, "rock AND roll") == [("ml-en", 2)]
        assert _found(index, "NEAR the bottom") == [("ml-en", 3)]
        assert _found(index, "not exam") == [("ml-en", 2)]


@pytest.mark.parametrize("query", ["", "   ", "?!", '"*"', "。，"])
def test_a_query_without_words_is_a_clear_error(out, query):
    with open_index(out) as index, pytest.raises(EmptyQueryError, match="nothing to search for"):
        index.search(query)


def test_an_overlong_query_is_refused(out):
    with open_index(out) as index:
        index.update()
        with pytest.raises(QueryError, match="characters long: at most"):
            index.search("gradient " * 1000)
        with pytest.raises(QueryError, match="words: at most"):
            index.search(" ".join(f"w{i}" for i in range(200)))


def test_an_update_reads_only_the_lines_appended_since_the_last(out):
    with open_index(out) as index:
        index.update()
        again = index.update()
        assert (again.changed, again.captions) == (0, 0)
        journal = Journal(out / "ml-zh")
        for i, text in enumerate(["注意力机制", "过拟合和正则化", "随机梯度下降"], len(ZH)):
            journal.append(Final(i, 100.0 + i, 104.0 + i, text, "zh"))
        journal.close()
        stats = index.update()
        assert (stats.changed, stats.captions, stats.reread) == (1, 3, 0)
        assert index.count("caption") == len(EN) + len(ZH) + 3
        assert _found(index, "正则化") == [("ml-zh", 4)]
        assert len(index.search("梯度")) == 3


def test_a_line_written_twice_is_indexed_once(out):
    with open_index(out) as index:
        index.update()
        with (out / "ml-en" / TRANSCRIPT).open("ab") as fh:
            fh.write(encode_final(Final(0, 0.0, 8.0, "a resent final with another text")))
        assert index.update().captions == 0
        assert index.count("caption") == len(EN) + len(ZH)


def test_a_torn_last_line_waits_until_it_is_complete(out):
    line = encode_final(Final(9, 90.0, 95.0, "eigenvalues of the covariance matrix"))
    path = out / "ml-en" / TRANSCRIPT
    with open_index(out) as index:
        index.update()
        with path.open("ab") as fh:
            fh.write(line[:25])
        assert index.update().captions == 0 and _found(index, "eigenvalues") == []
        with path.open("ab") as fh:
            fh.write(line[25:])
        stats = index.update()
        assert stats.captions == 1 and _found(index, "eigenvalues") == [("ml-en", 9)]
        assert index.count("caption") == len(EN) + len(ZH) + 1


def test_a_replaced_or_shrunk_journal_is_read_again(out):
    path = out / "ml-en" / TRANSCRIPT
    with open_index(out) as index:
        index.update()
        replacement = b"".join(encode_final(Final(i, i, i + 1.0, f"quantum entanglement part {i} " * 3))
                               for i in range(6))
        assert len(replacement) > path.stat().st_size
        path.write_bytes(replacement)  # larger than before, other content
        stats = index.update()
        assert stats.reread == 1 and stats.captions == 6
        assert _found(index, "gradient descent") == [] and len(index.search("entanglement")) == 6
        path.write_bytes(encode_final(Final(0, 0.0, 1.0, "only one line left")))  # shrunk
        assert index.update().reread == 1
        assert _found(index, "entanglement") == [] and _found(index, "line left") == [("ml-en", 0)]
    assert_consistent(out)


def test_notes_and_summary_are_indexed_by_section_and_replaced_when_they_change(out):
    (out / "ml-en" / NOTES).write_text(
        "# Lecture notes — ml-en\n\n## 00:00–05:00 · Gradient descent\n\n- [00:10] steps downhill\n\n"
        "## 05:00–10:00 · Attention\n\n- queries and keys\n", encoding="utf-8")
    (out / "ml-zh" / SUMMARY).write_text("# 总结\n\n## 反向传播\n\n链式法则\n", encoding="utf-8")
    with open_index(out) as index:
        stats = index.update()
        assert stats.sections == 3 + 2
        [hit] = index.search("downhill")
        assert (hit.kind, hit.utt, hit.start, hit.end) == ("notes", None, 0.0, None)
        assert hit.text.startswith("## 00:00–05:00 · Gradient descent")
        assert [h.start for h in index.search("queries keys")] == [300.0]
        assert [(h.kind, h.session) for h in index.search("链式法则", kinds=("summary",))] == [("summary", "ml-zh")]
        assert [h.kind for h in index.search("链式法则", kinds=("caption",))] == ["caption"]
        (out / "ml-en" / NOTES).write_text("# Lecture notes — ml-en\n\n## 00:00–05:00 · Momentum\n\n- heavy ball\n",
                                           encoding="utf-8")
        stats = index.update()
        assert stats.changed == 1 and stats.sections == 2
        assert index.search("downhill") == [] and len(index.search("heavy ball")) == 1
        (out / "ml-zh" / SUMMARY).unlink()
        assert index.update().changed == 1 and index.search("链式法则", kinds=("summary",)) == []
    assert_consistent(out)


def test_a_session_removed_from_disk_leaves_the_index(out):
    with open_index(out) as index:
        index.update()
        shutil.rmtree(out / "ml-zh")
        stats = index.update()
        assert stats.removed == 1 and stats.sessions == 1
        assert index.search("梯度") == [] and index.count() == len(EN)
        assert set(index.sessions()) == {"ml-en"}
    assert_consistent(out)


def test_session_and_since_filters(out):
    make_session(out, "ml-en-2", ["Gradient descent again, with momentum."], started="2026-11-16T09:00:00+01:00")
    with open_index(out) as index:
        index.update()
        assert {h.session for h in index.search("gradient")} == {"ml-en", "ml-en-2"}
        assert {h.session for h in index.search("gradient", session="ml-en-2")} == {"ml-en-2"}
        assert {h.session for h in index.search("gradient", session=str(out / "ml-en"))} == {"ml-en"}
        assert {h.session for h in index.search("gradient", since=date(2026, 11, 10))} == {"ml-en-2"}
        assert index.search("gradient", since=date(2026, 12, 1)) == []
        assert index.sessions() == {"ml-en": "2026-11-02", "ml-en-2": "2026-11-16", "ml-zh": "2026-11-09"}
        with pytest.raises(SessionNotFoundError, match="no session 'nope'"):
            index.search("gradient", session="nope")
        assert len(index.search("gradient", limit=1)) == 1


def test_garbage_in_the_index_file_is_moved_aside_and_rebuilt(out):
    with open_index(out) as index:
        index.update()
    path = out / INDEX_NAME
    path.write_bytes(b"this is not a database " * 500)
    with open_index(out) as index:
        assert index.recovered == "corrupt"
        stats = index.update()
        assert stats.rebuilt == "corrupt" and stats.captions == len(EN) + len(ZH)
        assert _found(index, "反向传播") == [("ml-zh", 1)]
    assert (out / (INDEX_NAME + ".broken")).read_bytes().startswith(b"this is not a database")


def test_a_damaged_schema_behind_a_valid_header_is_rebuilt(out):
    with open_index(out) as index:
        index.update()
    path = out / INDEX_NAME
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\xa5" * (len(data) - 100))  # header kept, every page garbage
    with open_index(out) as index:
        assert index.recovered == "corrupt"
        index.update()
        assert index.count("caption") == len(EN) + len(ZH) and len(index.search("gradient")) == 1


def test_another_schema_version_is_rebuilt(out):
    with open_index(out) as index:
        index.update()
    db = sqlite3.connect(out / INDEX_NAME)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with open_index(out) as index:
        assert index.recovered == "schema"
        assert index.update().captions == len(EN) + len(ZH)
    db = sqlite3.connect(out / INDEX_NAME)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_rebuild_starts_over_and_gives_the_same_answers(out):
    with open_index(out) as index:
        index.update()
        before = index.search("gradient")
        stats = index.rebuild()
        assert stats.rebuilt == "rebuild" and stats.captions == len(EN) + len(ZH)
        assert index.count() == len(EN) + len(ZH) and index.search("gradient") == before


def test_search_runs_while_another_connection_holds_a_write_transaction(out, tmp_path):
    with open_index(out) as index:
        index.update()
        writer = sqlite3.connect(out / INDEX_NAME, isolation_level=None)
        try:
            assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("DELETE FROM entries")  # not committed yet
            assert _found(index, "反向传播") == [("ml-zh", 1)]  # readers see the last commit
            writer.execute("ROLLBACK")
        finally:
            writer.close()
        make_session(out, "ml-3", ["Backpropagation through time."])
        with open_index(out) as other:  # a second process-like handle updates; the first sees it
            assert other.update().captions == 1
        assert _found(index, "backpropagation") == [("ml-3", 0)]
        assert index.update().changed == 0


def test_segmented_text_keeps_english_as_is_and_cuts_chinese_into_words():
    assert segment_for_index("Self-attention, again.") == "Self-attention, again."
    words = segment_for_index("反向传播用链式法则").split()
    assert {"反向", "传播", "链式", "法则"} <= set(words)


def test_the_session_filter_is_exact_when_rows_of_sessions_interleave(out):
    with open_index(out) as index:
        index.update()
        make_session(out, "ml-en", ["More gradient descent after the break."], first_utt=len(EN))
        make_session(out, "ml-late", ["A gradient descent recap from another course."])
        assert index.update().captions == 2
        journal = Journal(out / "ml-en")
        journal.append(Final(len(EN) + 1, 200.0, 205.0, "The last gradient of the day."))
        journal.close()
        index.update()  # ml-en's rows now span ml-zh's and ml-late's
        assert {h.session for h in index.search("gradient")} == {"ml-en", "ml-late"}
        assert sorted(h.utt for h in index.search("gradient", session="ml-en")) == [0, len(EN), len(EN) + 1]
        assert [h.session for h in index.search("gradient", session="ml-late")] == ["ml-late"]
        assert index.search("gradient", session="ml-zh") == []


def test_the_library_benchmark_runs_small(tmp_path):
    from bench import library_bench

    report = tmp_path / "library.json"
    assert library_bench.main(["--lectures", "3", "--captions", "40", "--queries", "20", "--json", str(report)]) == 0
    figures = json.loads(report.read_text())["index"]
    assert figures["build_captions"] == 3 * 40 and figures["update_one_lecture_captions"] == 40
    assert figures["rows"] == 4 * 40 and figures["queries"] == 20 and figures["index_mb"] > 0
    assert figures["search_ms"]["p50"] <= figures["search_ms"]["p95"] <= figures["search_ms"]["max"]


def test_updates_while_a_journal_is_being_appended_lose_and_double_nothing(tmp_path):
    import threading

    out = tmp_path / "lectures"
    journal = Journal(out / "live")
    total = 120

    def record() -> None:
        for i in range(total):
            journal.append(Final(i, 2.0 * i, 2.0 * i + 1.5, f"caption {i} 第{i}句 about topic{i}"))

    writer = threading.Thread(target=record)
    with open_index(out) as index:
        writer.start()
        while writer.is_alive():
            index.update()
        writer.join()
        journal.close()
        index.update()
        assert index.count("caption") == total
        assert [h.utt for h in index.search(f"topic{total - 1}")] == [total - 1]
        assert index.update().changed == 0


def test_a_session_without_metadata_is_dated_by_its_name_else_its_journal(tmp_path):
    out = tmp_path / "lectures"
    folder = make_session(out, "physics", ["Entropy always grows."])
    (folder / "session.json").unlink()
    named = make_session(out, "2026-03-04_0900", ["Enthalpy is another story."])
    (named / "session.json").unlink()
    with open_index(out) as index:
        index.update()
        day = date.fromtimestamp((folder / TRANSCRIPT).stat().st_mtime).isoformat()
        assert index.sessions() == {"physics": day, "2026-03-04_0900": "2026-03-04"}
        assert len(index.search("entropy", since=date.fromisoformat(day))) == 1
