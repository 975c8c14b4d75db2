"""The session-folder format: one reader and writer for capture, the summarizer and the library."""

from __future__ import annotations

import json
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from library.folder import (
    META,
    PENDING,
    TRANSCRIPT,
    Final,
    Journal,
    SessionNameError,
    SessionNotFoundError,
    TranscriptReader,
    check_session_name,
    decode_final,
    encode_final,
    list_sessions,
    read_finals,
    read_meta,
    remove_if_unused,
    remove_stale_temps,
    resolve_session,
    session_path,
    write_atomic,
    write_json_atomic,
    write_meta,
)
from wire.protocol import Caption, decode_worker, encode


def _line(n: int, **kw) -> bytes:
    obj = {"type": "final", "utt": n, "start": n * 2.0, "end": n * 2.0 + 1.5, "text": f"t{n}", "lang": "en"}
    obj.update(kw)
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode()


def test_journal_line_is_byte_for_byte_the_wire_final():
    caption = Caption(7, 1.23456, 2.5, "梯度 descent", "zh", "NEUTRAL", ("BGM",))
    wire = json.dumps(caption.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
    assert encode_final(caption) == wire.encode("utf-8")


_ms = st.integers(min_value=0, max_value=10 * 24 * 3600 * 1000).map(lambda ms: ms / 1000)
_label = st.text(max_size=16)
_speaker = st.sampled_from(["", "lecturer"]) | st.integers(1, 99).map(lambda n: f"audience-{n}")
_finals = st.builds(
    lambda utt, times, text, lang, emotion, events, raw, slide, speaker: Final(
        utt, min(times), max(times), text, lang, emotion, tuple(events), raw, slide, speaker),
    st.integers(min_value=0, max_value=2**53), st.tuples(_ms, _ms), st.text().map(str.strip), _label, _label,
    st.lists(_label, max_size=4), st.text(), st.none() | st.integers(min_value=0, max_value=10_000),
    _speaker)


@settings(max_examples=300, deadline=None)
@given(_finals)
def test_journal_line_is_the_wire_final_then_raw_and_slide_and_reads_back(final):
    line = encode_final(final)
    shared = Caption(final.utt, final.start, final.end, final.text, final.lang, final.emotion, final.events)
    frame = encode(shared)
    assert isinstance(frame, str)
    wire = frame.encode("utf-8")
    assert line.endswith(b"}\n") and b"\n" not in line[:-1]
    assert line.startswith(wire[:-1])  # the shared fields byte for byte, then raw and slide when set
    extra = json.loads(b"{" + line[len(wire):-1]) if len(line) > len(wire) + 1 else {}
    assert extra == {k: v for k, v in (("raw", final.raw), ("slide", final.slide), ("speaker", final.speaker))
                     if v not in ("", None)}
    assert decode_worker(line.decode("utf-8")) == shared
    assert decode_final(json.loads(line)) == final


def test_raw_and_slide_are_written_only_when_set_and_read_back(tmp_path):
    plain = encode_final(Final(0, 0.0, 1.0, "a"))
    assert b"raw" not in plain and b"slide" not in plain
    line = encode_final(Final(1, 1.0, 2.0, "corrected", raw="corected", slide=3))
    final = json.loads(line)
    assert (final["raw"], final["slide"]) == ("corected", 3)
    (tmp_path / TRANSCRIPT).write_bytes(plain + line)
    back = read_finals(tmp_path)
    assert [(f.raw, f.slide, f.text) for f in back] == [("", None, "a"), ("corected", 3, "corrected")]


def test_the_speaker_is_written_only_when_set_and_an_older_or_odd_line_reads_without_one(tmp_path):
    assert b"speaker" not in encode_final(Final(0, 0.0, 1.0, "a"))
    line = encode_final(Final(1, 1.0, 2.0, "a question?", speaker="audience-2"))
    assert json.loads(line)["speaker"] == "audience-2"
    (tmp_path / TRANSCRIPT).write_bytes(_line(0) + line + _line(2, speaker="Alice Smith") + _line(3, speaker=7))
    back = read_finals(tmp_path)
    assert [(f.utt, f.speaker, f.audience) for f in back] == [
        (0, "", False), (1, "audience-2", True), (2, "", False), (3, "", False)]
    with pytest.raises(ValueError):
        Final(4, 0.0, 1.0, "x", speaker="Alice")


def test_end_before_start_is_clamped_by_the_reader_and_the_writer(tmp_path):
    (tmp_path / TRANSCRIPT).write_bytes(_line(0, start=5.0, end=4.0))
    [read] = read_finals(tmp_path)
    assert (read.start, read.end) == (5.0, 5.0)
    assert Final(1, 3.0, 2.0, "x").end == 3.0
    journal = Journal(tmp_path)
    assert journal.append(Final(1, 9.0, 8.0, "late"))
    journal.close()
    written = json.loads((tmp_path / TRANSCRIPT).read_bytes().splitlines()[-1])
    assert (written["start"], written["end"]) == (9.0, 9.0)
    assert journal.last_end == 9.0


def test_lines_with_bad_numbers_or_types_are_skipped_and_the_first_utt_wins(tmp_path):
    path = tmp_path / TRANSCRIPT
    path.write_bytes(
        _line(0) + _line(0, text="again") + b"not json\n" + _line(1, start="x") + _line(2, utt=-1)
        + _line(3, end=float("inf")).replace(b"Infinity", b"1e999") + _line(4, start=-1.0)
        + json.dumps({"type": "partial", "utt": 5, "text": "p"}).encode() + b"\n"
        + json.dumps({"utt": 6, "start": 1.0, "end": 2.0, "text": " no type "}).encode() + b"\n"
        + _line(7, utt=True) + _line(8, events="BGM") + b'{"type":"fin' + _line(9) + b"\n"
    )
    finals = read_finals(path)
    assert [(f.utt, f.text) for f in finals] == [(0, "t0"), (6, "no type"), (8, "t8"), (9, "t9")]
    assert finals[2].events == ()


def test_reader_is_incremental_keeps_a_torn_tail_and_takes_a_session_folder(tmp_path):
    path = tmp_path / TRANSCRIPT
    path.write_bytes(_line(0) + _line(1)[:15])
    reader = TranscriptReader(tmp_path)
    assert [f.utt for f in reader.read_new()] == [0]
    with path.open("ab") as fh:
        fh.write(_line(1)[15:] + _line(0, text="dup"))
    assert [f.utt for f in reader.read_new()] == [1]
    assert reader.read_new() == []
    path.write_bytes(_line(2))  # replaced by a shorter file: read again, known utts skipped
    assert [f.utt for f in reader.read_new()] == [2]


def test_reader_drops_an_endless_line_but_reads_on(tmp_path):
    path = tmp_path / TRANSCRIPT
    path.write_bytes(_line(0) + b"x" * (3 << 20) + b"\n" + _line(1))
    assert [f.utt for f in read_finals(path)] == [0, 1]


def test_journal_dedupes_repairs_a_torn_tail_and_resumes(tmp_path):
    journal = Journal(tmp_path / "s")
    assert journal.append(Caption(0, 0.0, 1.0, "a"))
    assert not journal.append(Caption(0, 0.0, 1.0, "a again"))
    assert 0 in journal and journal.next_utt == 1
    journal.close()
    with open(tmp_path / "s" / TRANSCRIPT, "ab") as fh:
        fh.write(b'{"type":"final","utt":1,"sta')
    again = Journal(tmp_path / "s")
    assert again.next_utt == 1 and again.last_end == 1.0
    assert again.append(Final(1, 1.0, 2.0, "b"))
    again.close()
    assert [f.text for f in read_finals(tmp_path / "s")] == ["a", "b"]


def test_meta_merges_skips_none_and_survives_garbage(tmp_path):
    assert read_meta(tmp_path) == {}
    write_meta(tmp_path, language="en", engine=None)
    assert write_meta(tmp_path, engine="fake") == {"language": "en", "engine": "fake"}
    assert read_meta(tmp_path) == {"language": "en", "engine": "fake"}
    (tmp_path / META).write_text("[1, 2")
    assert read_meta(tmp_path) == {}
    (tmp_path / META).write_text(json.dumps({"x": "y" * (2 << 20)}))
    assert read_meta(tmp_path) == {}


def test_atomic_writer_takes_text_or_bytes_sets_the_mode_and_leaves_no_temp(tmp_path):
    write_atomic(tmp_path / "a.md", "# 标题\n")
    write_atomic(tmp_path / "b.bin", b"\x00\x01", mode=0o600, durable=False)
    write_json_atomic(tmp_path / "c.json", {"k": "中"})
    assert (tmp_path / "a.md").read_text(encoding="utf-8") == "# 标题\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert stat.S_IMODE(os.stat(tmp_path / "b.bin").st_mode) == 0o600
    assert json.loads((tmp_path / "c.json").read_text(encoding="utf-8")) == {"k": "中"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md", "b.bin", "c.json"]
    (tmp_path / ".a.md.1234abcd.tmp").write_text("half")
    assert remove_stale_temps(tmp_path, "a.md") == 1
    assert not (tmp_path / ".a.md.1234abcd.tmp").exists()


def test_resolve_session_by_name_or_path_and_a_helpful_error(tmp_path):
    out = tmp_path / "lectures"
    for name in ("2026-11-01_0900", "2026-11-02_0900"):
        Journal(out / name).close()
    assert resolve_session("2026-11-02_0900", out) == out / "2026-11-02_0900"
    assert resolve_session(str(out / "2026-11-01_0900")) == out / "2026-11-01_0900"
    with pytest.raises(SessionNotFoundError, match=r"no session 'nope'.*2026-11-01_0900, 2026-11-02_0900") as err:
        resolve_session("nope", out)
    assert err.value.exit_code == 2
    with pytest.raises(SessionNotFoundError, match="holds no sessions"):
        resolve_session("nope", tmp_path / "empty")


def test_session_names_are_checked_before_they_become_folders(tmp_path):
    assert check_session_name("2026-11-29_0900") == "2026-11-29_0900"
    for bad in ("", "..", "-x", "a b", "x" * 129):
        with pytest.raises(SessionNameError):
            check_session_name(bad)
    assert session_path("lec1", tmp_path) == tmp_path / "lec1"
    assert session_path(str(tmp_path / "elsewhere"), tmp_path / "out") == tmp_path / "elsewhere"


def test_list_sessions_keeps_only_session_folders_in_name_order(tmp_path):
    Journal(tmp_path / "b").close()
    (tmp_path / "a").mkdir()
    write_meta(tmp_path / "a", language="en")
    (tmp_path / "not-a-session").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / TRANSCRIPT).write_text("")
    (tmp_path / "file.txt").write_text("x")
    assert [p.name for p in list_sessions(tmp_path)] == ["a", "b"]
    assert list_sessions(tmp_path / "missing") == []


def test_an_unused_folder_is_removed_and_a_used_one_is_kept(tmp_path):
    unused = tmp_path / "unused"
    Journal(unused).close()
    (unused / PENDING).mkdir()
    write_meta(unused, language="auto")
    assert remove_if_unused(unused) and not unused.exists()
    used = tmp_path / "used"
    journal = Journal(used)
    journal.append(Final(0, 0.0, 1.0, "said"))
    journal.close()
    assert not remove_if_unused(used)
    assert [f.text for f in read_finals(used)] == ["said"]
    audio = tmp_path / "audio"
    (audio / PENDING).mkdir(parents=True)
    (audio / PENDING / "0.pcm").write_bytes(b"\0\0")
    assert not remove_if_unused(audio) and (audio / PENDING / "0.pcm").exists()


def test_every_package_reads_the_journal_with_the_same_type():
    import summarizer.transcript as st

    assert st.Final is Final and st.read_finals is read_finals
