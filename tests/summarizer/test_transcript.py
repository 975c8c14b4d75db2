"""The tolerant journal reader, the token estimate, language guess and chunking."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from summarizer.transcript import (
    Final,
    TranscriptReader,
    estimate_tokens,
    guess_language,
    read_finals,
    split_by_speech,
    split_by_tokens,
)


def _line(utt: int, text: str = "hello", **kw) -> str:
    obj = {"type": "final", "utt": utt, "start": utt * 2.0, "end": utt * 2.0 + 1.5, "text": text, "lang": "en"}
    obj.update(kw)
    return json.dumps(obj) + "\n"


def test_reader_returns_only_appended_finals(tmp_path):
    path = tmp_path / "transcript.jsonl"
    path.write_text(_line(0) + _line(1))
    reader = TranscriptReader(path)
    assert [f.utt for f in reader.read_new()] == [0, 1]
    assert reader.read_new() == []
    with path.open("a") as fh:
        fh.write(_line(2))
    assert [f.utt for f in reader.read_new()] == [2]


def test_torn_last_line_is_left_until_it_is_complete(tmp_path):
    path = tmp_path / "transcript.jsonl"
    full = _line(1)
    path.write_text(_line(0) + full[:20])
    reader = TranscriptReader(path)
    assert [f.utt for f in reader.read_new()] == [0]
    with path.open("a") as fh:
        fh.write(full[20:])
    assert [f.utt for f in reader.read_new()] == [1]


def test_repeated_utt_keeps_the_first_and_bad_lines_are_skipped(tmp_path):
    path = tmp_path / "transcript.jsonl"
    path.write_text(
        _line(0, "first") + "not json\n" + json.dumps({"type": "partial", "utt": 1}) + "\n"
        + _line(0, "second") + _line(1, start="x") + '{"type":"fin' + _line(2, "after torn") + "\n\n"
    )
    finals = read_finals(path)
    assert [(f.utt, f.text) for f in finals] == [(0, "first"), (2, "after torn")]


def test_missing_journal_reads_as_empty(tmp_path):
    assert read_finals(tmp_path / "nope.jsonl") == []


def test_estimate_is_close_to_bpe_counts_for_english_and_chinese():
    english = "So the learning rate is really about the step size, and that is why we care. " * 20
    chinese = "所以梯度下降其实就是关于学习率的，这也是我们关心收敛的原因。" * 20
    # cl100k_base gives 361 and 680 tokens for these.
    assert abs(estimate_tokens(english) - 361) / 361 < 0.15
    assert abs(estimate_tokens(chinese) - 680) / 680 < 0.15


def test_language_follows_caption_lang_then_cjk_share():
    zh = [Final(0, 0, 1, "你好，今天讲梯度下降", "zh"), Final(1, 1, 2, "ok", "en")]
    assert guess_language(zh) == "zh"
    assert guess_language([Final(0, 0, 1, "今天我们讲梯度下降和学习率", "")]) == "zh"
    assert guess_language([Final(0, 0, 1, "today gradient descent", "auto")]) == "en"


def test_split_by_speech_and_tokens():
    finals = [Final(i, i * 10, i * 10 + 8, f"t{i}") for i in range(10)]
    parts = split_by_speech(finals, 30)
    assert [len(p) for p in parts] == [4, 4, 2]
    assert sum(parts, []) == finals
    groups = split_by_tokens(["word " * 50] * 5, 120)
    assert groups == [[0, 1], [2, 3], [4]]


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=30))
def test_polling_a_journal_written_in_arbitrary_pieces_yields_each_final_once(tmp_path_factory, cuts):
    path = tmp_path_factory.mktemp("j") / "transcript.jsonl"
    data = "".join(_line(i, f"caption {i} 中文") for i in range(12)).encode()
    reader, seen, pos = TranscriptReader(path), [], 0
    path.write_bytes(b"")
    for cut in [*cuts, len(data)]:
        with path.open("ab") as fh:
            fh.write(data[pos : pos + cut])
        pos += cut
        seen += [f.utt for f in reader.read_new()]
    assert seen == list(range(12))
