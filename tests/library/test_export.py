"""``notsound export``: subtitles parsed back with pysubs2 and checked against every rule; transcripts."""

from __future__ import annotations

import dataclasses
import html
import re

import pysubs2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from library.export import SubtitleOptions, build_cues, to_subtitles, to_transcript
from library.folder import TRANSCRIPT, Final, Journal, write_meta
from notsound.cli import main

OPTS = SubtitleOptions()
_CJK = re.compile(r"[\u4e00-\u9fff]")

ENGLISH = [
    Final(0, 0.0, 1.6, "Good morning, everyone."),
    Final(1, 2.0, 13.5, "Today we are going to talk about gradient descent, which is the workhorse of "
                        "machine learning, and we will see why the learning rate matters so much."),
    Final(2, 13.6, 13.9, "Okay."),
    Final(3, 14.0, 17.0, "First, we look at the data we collected last week. Then we fit a model to it."),
    Final(4, 17.1, 17.5, "So this is a very fast sentence spoken in almost no time at all, really."),
    Final(5, 17.6, 40.0, "Let me write it down slowly"),
    Final(6, 41.0, 42.0, "https://example.org/a-very-long-address/that-does-not-fit-on-one-line/at-all"),
]
CHINESE = [
    Final(10, 50.0, 58.0, "今天我们来讲梯度下降，它是机器学习里最重要的优化方法之一，我们会看到学习率为什么这么重要。", "zh"),
    Final(11, 58.2, 58.6, "好。", "zh"),
    Final(12, 59.0, 61.0, "反向传播就是链式法则在计算图上的应用", "zh"),
    Final(13, 61.1, 75.0, "我们先看一个简单的例子，然后再看一般的情况。", "zh"),
]


def _parse(text: str, fmt: str) -> list[pysubs2.SSAEvent]:
    subs = pysubs2.SSAFile.from_string(text, format_=fmt)
    return list(subs)


def _lines(event: pysubs2.SSAEvent, fmt: str) -> list[str]:
    """The event's lines as a viewer sees them (``plaintext`` would drop ``{...}`` as SSA tags)."""
    return [html.unescape(x) if fmt == "vtt" else x for x in event.text.split("\\N")]


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def check_rules(finals: list[Final], text: str, fmt: str) -> list[pysubs2.SSAEvent]:
    """Every convention the export promises, checked on the parsed file; returns the events."""
    events = _parse(text, fmt)
    assert events, "something was exported"
    for i, ev in enumerate(events):
        lines = _lines(ev, fmt)
        limit = OPTS.max_line_cjk if _CJK.search(ev.text) else OPTS.max_line
        assert 1 <= len(lines) <= 2, lines
        assert all(0 < len(line) <= limit for line in lines), lines
        duration = ev.end - ev.start
        assert 1000 <= duration <= 7000, (ev.start, ev.end, lines)
        nxt = events[i + 1] if i + 1 < len(events) else None
        if nxt is not None:
            assert ev.end <= nxt.start, "events never overlap"
        cps = sum(len(line) for line in lines) / (duration / 1000)
        blocked = (nxt is not None and ev.end == nxt.start) or duration == 7000
        assert cps <= OPTS.max_cps + 0.05 or blocked, (cps, lines)
    said = _squash("".join(f.text for f in finals))
    shown = _squash("".join("".join(_lines(ev, fmt)) for ev in events))
    assert shown == said, "every character said is shown once, in order"
    return events


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
@pytest.mark.parametrize("finals", [ENGLISH, CHINESE, ENGLISH + CHINESE], ids=["en", "zh", "both"])
def test_subtitles_follow_the_conventions(finals, fmt):
    check_rules(finals, to_subtitles(finals, fmt), fmt)


def test_long_captions_become_several_events_timed_in_proportion():
    events = check_rules(ENGLISH[1:2], to_subtitles(ENGLISH[1:2], "srt"), "srt")
    assert len(events) >= 2
    assert events[0].start == 2000 and abs(events[-1].end - 13500) <= 1000
    sizes = [sum(len(x) for x in _lines(ev, "srt")) for ev in events]
    spans = [ev.end - ev.start for ev in events]
    assert max(spans) / min(spans) < 1.6 * max(sizes) / min(sizes)


def test_lines_break_after_punctuation():
    finals = [Final(0, 0.0, 5.0, "We start with the data, then we fit a simple model to all of it.")]
    [event] = _parse(to_subtitles(finals, "srt"), "srt")
    assert _lines(event, "srt") == ["We start with the data,", "then we fit a simple model to all of it."]
    cues = build_cues(CHINESE[:1])
    assert len(cues) == 2 and all(cue.lines[-1][-1] in "，。" for cue in cues), "events end at punctuation"


def test_a_slow_caption_is_split_to_stay_under_seven_seconds_and_short_ones_last_a_second():
    cues = build_cues([ENGLISH[5], ENGLISH[2]])
    assert all(1000 <= c.end_ms - c.start_ms <= 7000 for c in cues)
    okay = build_cues(ENGLISH[2:3])[0]
    assert (okay.start_ms, okay.end_ms) == (13600, 14600)


def test_overlapping_or_simultaneous_captions_never_overlap_on_screen():
    finals = [Final(0, 5.0, 6.0, "one"), Final(1, 5.0, 5.2, "two"), Final(2, 5.5, 9.0, "three")]
    check_rules(finals, to_subtitles(finals, "srt"), "srt")


def test_markup_in_captions_is_shown_as_text():
    finals = [Final(0, 0.0, 3.0, "if a < b and c > d & {not a tag} <i>x</i> \\N")]
    [vtt] = _parse(to_subtitles(finals, "vtt"), "vtt")
    assert "&lt;i&gt;" in to_subtitles(finals, "vtt") and "<i>" not in to_subtitles(finals, "vtt")
    assert "{not a tag}" in to_subtitles(finals, "srt")
    assert " ".join(_lines(vtt, "vtt")) == finals[0].text.replace("\\N", "\\\u200bN")


_EN_WORDS = ["the", "gradient", "descent", "rate,", "model.", "we", "learning", "convergence", "so", "is",
             "parameters;", "a", "loss", "function?", "regularization", "x"]
_ZH_WORDS = ["梯度", "下降", "学习率", "我们", "今天", "模型", "，", "。", "反向传播", "的", "是", "参数"]


@st.composite
def lectures(draw):
    finals, t = [], 0.0
    for utt in range(draw(st.integers(1, 8))):
        zh = draw(st.booleans())
        words = draw(st.lists(st.sampled_from(_ZH_WORDS if zh else _EN_WORDS), min_size=1, max_size=45))
        text = ("" if zh else " ").join(words).strip("，。") or "好"
        t += draw(st.floats(0.0, 4.0))
        duration = draw(st.floats(0.0, 25.0))
        finals.append(Final(utt, round(t, 3), round(t + duration, 3), text, "zh" if zh else "en"))
        t += duration * draw(st.sampled_from([1.0, 0.5]))  # sometimes the next one starts early
    return finals


@settings(max_examples=60, deadline=None)
@given(finals=lectures(), fmt=st.sampled_from(["srt", "vtt"]))
def test_any_lecture_exports_within_the_rules(finals, fmt):
    check_rules(finals, to_subtitles(finals, fmt), fmt)


def test_transcripts_have_times_and_paragraphs_after_pauses():
    txt = to_transcript(ENGLISH + CHINESE, "txt")
    paragraphs = txt.strip().split("\n\n")
    assert len(paragraphs) == 2, "the 8 s pause before 00:50 starts the only new paragraph"
    assert paragraphs[0].startswith("[00:00] Good morning, everyone. Today we are going")
    assert paragraphs[1].startswith("[00:50] 今天我们来讲梯度下降，") and "重要。好。反向传播" in paragraphs[1]
    assert _squash("".join(re.sub(r"^\[\d\d:\d\d\] ", "", p) for p in paragraphs)) == _squash(
        "".join(f.text for f in ENGLISH + CHINESE))


def test_long_stretches_of_speech_are_cut_into_paragraphs():
    finals = [Final(i, i * 10.0, i * 10.0 + 9.5, f"sentence {i}.") for i in range(40)]
    times = re.findall(r"^\[(\d+:\d\d(?::\d\d)?)\]", to_transcript(finals, "txt"), re.M)
    assert times == ["00:00", "01:30", "03:00", "04:30", "06:00"]


def test_markdown_transcript_escapes_markup():
    md = to_transcript([Final(0, 65.0, 66.0, "use *args and <script>x</script> [link](y)")], "md", title="T")
    assert md.startswith("# T\n")
    assert r"**[01:05]** use \*args and \<script\>x\</script\> \[link\](y)" in md


# -- the command, and sessions with nothing to export ------------------------------


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NOTSOUND_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    monkeypatch.delenv("NOTSOUND_LLM_API_KEY", raising=False)
    return monkeypatch


def _lecture(out, name="2026-11-29_0900", finals=ENGLISH + CHINESE):
    journal = Journal(out / name)
    for final in finals:
        journal.append(final)
    journal.close()
    write_meta(out / name, started="2026-11-29T09:00:00+01:00", engine="fake")
    return out / name


def test_export_prints_to_stdout_or_writes_the_file(env, tmp_path, capsys):
    out = tmp_path / "lectures"
    _lecture(out)
    assert main(["export", "2026-11-29_0900", "--out", str(out), "--format", "vtt"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("WEBVTT")
    check_rules(ENGLISH + CHINESE, printed, "vtt")
    target = tmp_path / "lecture.srt"
    assert main(["export", str(out / "2026-11-29_0900"), "-f", "srt", "-o", str(target)]) == 0
    check_rules(ENGLISH + CHINESE, target.read_text(encoding="utf-8"), "srt")
    assert main(["export", "2026-11-29_0900", "--out", str(out), "-f", "md"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("# Transcript — 2026-11-29\\_0900\n") and "**[00:50]** 今天" in md
    assert "2026-11-29 09:00 · 01:15 ·" in md


def test_export_of_an_unknown_session_exits_2_with_the_sessions_there(env, tmp_path, capsys):
    out = tmp_path / "lectures"
    _lecture(out)
    assert main(["export", "nope", "--out", str(out), "-f", "srt"]) == 2
    err = capsys.readouterr().err
    assert "no session 'nope'" in err and "2026-11-29_0900" in err and "Traceback" not in err


@pytest.mark.parametrize("journal", [b"", b'{"type":"final","utt":0,"start":1.0,"en', b"garbage\n\n",
                                     b'{"type":"final","utt":0,"start":1.0,"end":2.0,"text":"  "}\n'])
def test_empty_or_torn_journals_give_nothing_to_export_or_take_notes_from(env, tmp_path, capsys, journal):
    folder = tmp_path / "lectures" / "empty"
    folder.mkdir(parents=True)
    (folder / TRANSCRIPT).write_bytes(journal)
    target = tmp_path / "x.srt"
    assert main(["export", str(folder), "-f", "srt", "-o", str(target)]) == 1
    assert "nothing to export" in capsys.readouterr().err and not target.exists()
    assert main(["notes", str(folder)]) == 1
    assert "nothing to take notes from" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == [TRANSCRIPT], "no empty notes.md, nothing else written"
    assert (folder / TRANSCRIPT).read_bytes() == journal
    assert main(["history", "--out", str(tmp_path / "lectures"), "--json"]) == 0
    assert '"words": 0' in capsys.readouterr().out


def test_markdown_export_heads_each_stretch_with_the_slide_it_was_said_on(env, tmp_path, capsys):
    from slides.store import attach_deck

    out = tmp_path / "lectures"
    said = [Final(0, 0.0, 3.0, "Gradient descent takes small steps.", "en", slide=1),
            Final(1, 3.5, 6.0, "Each step follows the slope.", "en", slide=1),
            Final(2, 6.5, 9.0, "Backpropagation gives the gradient.", "en", slide=2),
            Final(3, 9.5, 12.0, "Back to the step size.", "en", slide=1)]
    folder = _lecture(out, finals=said)
    deck = tmp_path / "deck.md"
    deck.write_text("# Gradient descent\nsteps\n\n---\n\n# Backpropagation <b>\nchain rule\n", encoding="utf-8")
    attach_deck(folder, deck)
    assert main(["export", folder.name, "--out", str(out), "-f", "md"]) == 0
    md = capsys.readouterr().out
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings == ["## Slide 1 · Gradient descent", "## Slide 2 · Backpropagation \\<b\\>",
                        "## Slide 1 · Gradient descent"]
    section = md.split("## Slide 2")[1].split("## Slide 1")[0]
    assert "Backpropagation gives the gradient." in section and "small steps" not in section
    assert main(["export", folder.name, "--out", str(out), "-f", "txt"]) == 0
    assert "Slide" not in capsys.readouterr().out  # plain transcripts stay plain


LABELLED = [
    Final(0, 0.0, 4.0, "Today we look at the water cycle.", speaker="lecturer"),
    Final(1, 4.5, 8.0, "Water evaporates from the oceans.", speaker="lecturer"),
    Final(2, 9.0, 11.0, "Does the same water come back again?", speaker="audience-1"),
    Final(3, 11.5, 15.0, "Yes, the same water goes round and round.", speaker="lecturer"),
    Final(4, 15.5, 17.0, "And what about snow?", speaker="audience-2"),
    Final(5, 17.5, 19.0, "Snow is part of it too."),
]


def _speakers_of(lines: list[str]) -> list[str]:
    from library.export import speaker_of_line

    return [speaker_of_line(line)[0] for line in lines]


@pytest.mark.parametrize("fmt", ["vtt", "srt"])
def test_subtitles_carry_the_speakers_and_they_parse_back(fmt):
    text = to_subtitles(LABELLED, fmt)
    prefixes = ["Lecturer: ", "", "Audience 1: ", "Lecturer: ", "Audience 2: ", ""]
    shown = [dataclasses.replace(f, text=p + f.text) for f, p in zip(LABELLED, prefixes, strict=True)]
    events = check_rules(shown if fmt == "srt" else LABELLED, text, fmt)
    if fmt == "vtt":
        cues = [block.splitlines()[2] for block in text.strip().split("\n\n")[1:]]
        assert _speakers_of(cues) == ["Lecturer", "Lecturer", "Audience 1", "Lecturer", "Audience 2", ""]
        assert [ev.plaintext.split("\n")[0] for ev in events][2] == "Does the same water come back again?"
    else:  # a name where the speaker changes
        firsts = [ev.text.split("\\N")[0] for ev in events]
        assert _speakers_of(firsts) == ["Lecturer", "", "Audience 1", "Lecturer", "Audience 2", ""]


def test_transcripts_name_the_speaker_of_each_paragraph_and_parse_back():
    from library.export import speaker_of_line

    txt = to_transcript(LABELLED, "txt").strip().split("\n\n")
    said = [speaker_of_line(p.split("] ", 1)[1]) for p in txt]
    assert [who for who, _ in said] == ["Lecturer", "Audience 1", "Lecturer", "Audience 2", ""]
    assert said[1][1] == "Does the same water come back again?"
    md = to_transcript(LABELLED, "md").strip().split("\n\n")
    assert [speaker_of_line(p.split("** ", 1)[1])[0] for p in md] == [
        "Lecturer", "Audience 1", "Lecturer", "Audience 2", ""]
    assert "Lecturer" not in to_transcript(ENGLISH, "txt"), "unlabelled sessions export as before"
