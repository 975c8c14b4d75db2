"""The terminal caption view, rendered to capture consoles."""

from __future__ import annotations

import asyncio
import io

import pytest
from rich.cells import cell_len
from rich.console import Console

from notsound.view import CaptionView, ViewOptions, count_words, format_speed, format_timestamp
from wire.protocol import Caption, Partial


def tty_console(width: int = 80, height: int = 24) -> Console:
    return Console(record=True, width=width, height=height, force_terminal=True,
                   color_system="truecolor", file=io.StringIO(), legacy_windows=False)


def live_area(view: CaptionView, width: int = 80) -> str:
    """The text of the live area (partial, notice, status) at ``width``."""
    console = tty_console(width)
    console.print(view.render())
    return console.export_text()


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def final(utt: int, start: float, end: float, text: str, events: tuple[str, ...] = ()) -> Caption:
    return Caption(utt=utt, start=start, end=end, text=text, lang="en", emotion="NEUTRAL",
                   events=events)


@pytest.fixture
def clock() -> list[float]:
    return [0.0]


@pytest.fixture
def view(clock: list[float]) -> CaptionView:
    """A terminal-mode view that is not started: what it prints is exactly what
    scrolls above the live area, and the live area is read with live_area()."""
    return CaptionView(tty_console(), options=ViewOptions(auto_refresh=False),
                       clock=lambda: clock[0])


def printed(view: CaptionView) -> str:
    """What the view printed so far (the scrolling part)."""
    return view.console.export_text(clear=False)


def test_format_timestamp_uses_minutes_then_hours():
    assert format_timestamp(0) == "00:00"
    assert format_timestamp(3.9) == "00:03"
    assert format_timestamp(59 * 60 + 59) == "59:59"
    assert format_timestamp(3600) == "1:00:00"
    assert format_timestamp(2 * 3600 + 62) == "2:01:02"
    assert format_timestamp(-1) == "00:00"
    assert format_timestamp(float("nan")) == "00:00"


def test_count_words_counts_each_cjk_character_and_skips_punctuation():
    assert count_words("hello world, again — yes") == 4
    assert count_words("你好世界。") == 4
    assert count_words("GPU 加速 works") == 4


def test_view_is_plain_unless_the_console_is_a_terminal():
    assert CaptionView(Console(file=io.StringIO())).plain
    assert not CaptionView(tty_console()).plain
    assert CaptionView(tty_console(), plain=True).plain


def test_partial_is_replaced_by_newer_partial_then_by_the_final(view: CaptionView):
    view.on_partial(Partial(utt=0, text="hello wor"))
    assert "hello wor" in live_area(view)
    assert "hello wor" not in printed(view)  # partials never scroll

    view.on_partial(Partial(utt=0, text="hello world and"))
    area = live_area(view)
    assert "hello world and" in area
    assert "hello wor\n" not in area and area.count("hello") == 1

    view.on_final(final(0, 3.2, 4.0, "Hello world and welcome."), latency_s=0.4)
    assert "hello world and" not in live_area(view)
    assert "[00:03] Hello world and welcome." in lines(printed(view))


def test_partial_of_an_utterance_already_final_is_ignored(view: CaptionView):
    view.on_final(final(4, 1.0, 2.0, "done"))
    view.on_partial(Partial(utt=3, text="stale older"))
    view.on_partial(Partial(utt=4, text="stale same"))
    area = live_area(view)
    assert "stale" not in area
    view.on_partial(Partial(utt=5, text="fresh"))
    assert "fresh" in live_area(view)


def test_partial_of_a_later_utterance_survives_the_earlier_final(view: CaptionView):
    view.on_partial(Partial(utt=1, text="second utterance so far"))
    view.on_partial(Partial(utt=0, text="older partial"))  # older than the one shown
    assert "older partial" not in live_area(view)
    view.on_final(final(0, 0.0, 1.0, "first"))
    assert "second utterance so far" in live_area(view)


def test_close_finals_share_a_paragraph_and_a_gap_starts_a_new_one(view: CaptionView):
    view.on_final(final(0, 3.0, 5.0, "First sentence."))
    view.on_final(final(1, 6.5, 8.0, "Second sentence."))  # 1.5 s gap: same paragraph
    view.on_final(final(2, 15.0, 17.0, "After a pause."))  # 7 s gap: new paragraph
    view.on_final(final(3, 3725.0, 3727.0, "An hour later."))
    out = lines(printed(view))
    start = out.index("[00:03] First sentence.")
    assert out[start:start + 6] == [
        "[00:03] First sentence.",
        "        Second sentence.",
        "",
        "[00:15] After a pause.",
        "",
        "[1:02:05] An hour later.",
    ]


def test_a_question_from_the_room_is_marked_and_has_a_paragraph_of_its_own(view: CaptionView):
    from library.folder import Final

    view.on_final(Final(0, 3.0, 5.0, "First sentence.", speaker="lecturer"))
    view.on_final(Final(1, 5.5, 7.0, "Can you repeat that?", speaker="audience-1"))
    view.on_final(Final(2, 7.2, 8.0, "And why?", speaker="audience-1"))
    view.on_final(Final(3, 8.5, 10.0, "Of course.", speaker="lecturer"))
    out = lines(printed(view))
    start = out.index("[00:03] First sentence.")
    assert out[start:start + 6] == [
        "[00:03] First sentence.",
        "",
        "[00:05] Audience 1: Can you repeat that?",
        "        And why?",
        "",
        "[00:08] Of course.",
    ]
    plain = io.StringIO()
    with CaptionView(Console(file=plain, width=80)) as v:
        v.on_final(Final(0, 3.0, 5.0, "A question?", speaker="audience-2"))
        v.on_final(Final(1, 5.0, 6.0, "An answer.", speaker="lecturer"))
    assert plain.getvalue().splitlines() == ["[00:03] Audience 2: A question?", "[00:05] An answer."]


def test_long_monologue_gets_a_new_timestamp_after_max_paragraph(clock: list[float]):
    console = tty_console()
    v = CaptionView(console, options=ViewOptions(auto_refresh=False, max_paragraph_s=20.0))
    for i in range(4):
        v.on_final(final(i, i * 8.0, i * 8.0 + 7.5, f"part {i}"))
    out = [line for line in lines(console.export_text()) if line]
    assert out == ["[00:00] part 0", "        part 1", "        part 2", "[00:24] part 3"]


def test_duplicate_final_after_resume_is_shown_once(view: CaptionView):
    view.on_final(final(0, 1.0, 2.0, "only once please"), latency_s=0.5)
    view.on_final(final(0, 1.0, 2.0, "only once please"), latency_s=9.0)
    assert printed(view).count("only once please") == 1
    assert view.words == 3
    assert view.latency == (0.5, 0.5)


def test_status_line_shows_state_time_latency_words_and_dropped(view: CaptionView,
                                                                clock: list[float]):
    assert "connecting" in live_area(view)
    view.set_state("live")
    clock[0] = 125.0
    for utt, latency in enumerate([0.5, 2.0, 0.9]):
        view.on_final(final(utt, utt * 2.0, utt * 2.0 + 1.0, "one two three"), latency_s=latency)
    view.set_dropped(2.5)
    status = lines(live_area(view))[-1]
    assert status.startswith("● live")
    assert "02:05" in status
    assert "latency 0.9 s (p50 0.9 s)" in status
    assert "9 words" in status
    assert "dropped 2.5 s" in status

    view.set_state("reconnecting", "attempt 3")
    assert "reconnecting (attempt 3)" in live_area(view)
    view.set_state("closed")
    clock[0] = 999.0
    assert "02:05" in live_area(view)  # session time stops with the session


def test_a_fast_run_shows_its_speed_not_the_latency_of_its_queue(clock: list[float]):
    view = CaptionView(tty_console(), options=ViewOptions(auto_refresh=False), clock=lambda: clock[0],
                       fast=True)
    view.set_state("live")
    assert "–× real time" in lines(live_area(view))[-1]
    clock[0] = 186.0
    view.on_final(final(0, 170.0, 180.0, "one two three"), latency_s=8.84)
    view.set_pace(180.0, 14.5)
    status = lines(live_area(view))[-1]
    assert "12.4× real time" in status and "latency" not in status and "3 words" in status
    view.set_state("closed")
    view.stop()
    assert "12.4× real time" in lines(live_area(view))[-1], "the last status keeps it"


def test_format_speed_is_audio_seconds_per_wall_second():
    assert format_speed(180.0, 14.5) == "12.4× real time"
    assert format_speed(30.0, 60.0) == "0.5× real time"
    assert format_speed(0.0, 3.0) == format_speed(5.0, 0.0) == "–× real time"


def test_status_line_stays_one_line_on_a_narrow_terminal(view: CaptionView):
    view.set_state("reconnecting", "attempt 12")
    view.on_final(final(0, 0.0, 1.0, "word " * 500), latency_s=1.0)
    area = lines(live_area(view, width=30))
    assert len(area) == 1 and cell_len(area[0]) <= 30


def test_unknown_state_and_bad_dropped_are_refused(view: CaptionView):
    with pytest.raises(ValueError, match="unknown state"):
        view.set_state("online")
    with pytest.raises(ValueError, match="dropped"):
        view.set_dropped(-1.0)


def test_events_are_shown_apart_from_the_caption_text(view: CaptionView):
    view.on_final(final(0, 3.0, 4.0, "that was funny", events=("Laughter",)))
    view.on_final(final(1, 4.5, 5.0, "", events=("BGM", "Speech")))
    out = lines(printed(view))
    first = next(line for line in out if line.startswith("[00:03]"))
    assert first.startswith("[00:03] that was funny ")
    assert first.endswith("(Laughter)")
    assert "that was funny (Laughter)" not in first
    music = [line for line in out if "(Music)" in line]
    assert music and all(line.strip() == "(Music)" for line in music)
    assert "Speech" not in printed(view)
    assert view.words == 3


def test_long_text_wraps_within_the_width_and_survives_a_resize(view: CaptionView):
    long_text = " ".join(f"word{i}" for i in range(200))
    view.on_final(final(0, 0.0, 30.0, long_text), latency_s=1.0)
    view.console.width = 40  # the terminal got narrower
    view.on_final(final(1, 31.0, 60.0, long_text))
    view.on_partial(Partial(utt=2, text=long_text))
    out = lines(printed(view))
    assert all(cell_len(line) <= 80 for line in out)
    body = [line for line in out if "word" in line]
    assert all(line.startswith(("[00:00] ", "        ")) for line in body)
    assert any(line.rstrip().endswith("word199") for line in body)
    narrow = lines(live_area(view, width=40))
    assert all(cell_len(line) <= 40 for line in narrow)
    assert len(narrow) <= 1 + ViewOptions().partial_lines
    assert narrow[-2].endswith("word199")  # the newest words of the partial are shown
    assert narrow[0].lstrip().startswith("…")


def test_a_very_narrow_terminal_still_shows_everything_within_its_width(view: CaptionView):
    view.console.width = 12
    view.on_final(final(0, 3.0, 4.0, "a rather long caption", events=("Laughter", "Cough")))
    view.on_partial(Partial(utt=1, text="partial words here"))
    out = lines(printed(view))
    assert out[0] == "[00:03]"
    assert all(cell_len(line) <= 12 for line in out + lines(live_area(view, width=12)))
    assert "".join(out).replace(" ", "").startswith("[00:03]arather")
    assert any("(Laughter)" in line for line in out)


def test_cjk_text_wraps_by_cell_width(view: CaptionView):
    sentence = "今天我们讨论信息论的基本概念，包括熵、互信息以及信道容量。"
    text = sentence * 4
    view.on_final(final(0, 62.0, 70.0, text), latency_s=0.3)
    view.on_partial(Partial(utt=1, text="下一句话正在识别"))
    out = [line for line in lines(printed(view)) if "今天" in line or "信" in line]
    assert out[0].startswith("[01:02] 今天我们")
    assert all(cell_len(line) <= 80 for line in out)
    assert "".join(line[8:] for line in out if line.startswith(("[01:02]", "        "))) \
        .startswith(text[:40])
    assert "下一句话正在识别" in live_area(view)
    assert view.words == 4 * (len(sentence) - 3)  # each character but the punctuation


def test_markup_in_captions_is_shown_literally(view: CaptionView):
    view.on_final(final(0, 0.0, 1.0, "array[red] and [bold]x[/bold] \x1b[2J"))
    out = printed(view)
    assert "array[red] and [bold]x[/bold]" in out
    assert "\x1b[2J" not in view.console.file.getvalue()


def test_notice_is_shown_once_above_and_not_again_in_the_live_area(view: CaptionView):
    view.notice("LLM notes off: set DEEPSEEK_API_KEY")
    view.notice("LLM notes off: set DEEPSEEK_API_KEY")
    view.on_final(final(0, 0.0, 1.0, "hi"))
    assert "DEEPSEEK_API_KEY" not in live_area(view)
    scrolled = [line for line in lines(printed(view)) if line == "LLM notes off: set DEEPSEEK_API_KEY"]
    assert len(scrolled) == 1


@pytest.mark.parametrize("model", [
    "/home/someone/.cache/modelscope/hub/models/iic/SenseVoiceSmall/",
    "iic/SenseVoiceSmall",
    "C:\\Users\\someone\\models\\SenseVoiceSmall",
])
def test_status_line_names_the_model_not_its_path_and_keeps_latency_and_words(view: CaptionView,
                                                                              model: str):
    view.set_state("live", f"sensevoice {model}")
    for utt in range(300):
        view.on_final(final(utt, utt * 2.0, utt * 2.0 + 1.0, "one two three four"), latency_s=1.25)
    status = lines(live_area(view, width=110))[-1]
    assert status.startswith("● live (sensevoice SenseVoiceSmall) │")
    assert "latency 1.2 s (p50 1.2 s)" in status
    assert "1,200 words" in status
    assert "dropped 0.0 s" in status and cell_len(status) <= 110


def test_a_long_state_detail_is_shortened_on_the_status_line(view: CaptionView):
    view.set_state("live", "whisper " + "large-model-name-" * 10)
    status = lines(live_area(view, width=110))[-1]
    assert "…)" in status and "words" in status


def test_live_draws_partials_and_prints_finals_above_with_manual_refresh(clock: list[float]):
    console = tty_console()
    with CaptionView(console, options=ViewOptions(auto_refresh=False),
                     clock=lambda: clock[0]) as v:
        v.set_state("live")
        v.on_partial(Partial(utt=0, text="helo wor"))
        frame = console.export_text()  # and clear the record
        assert "helo wor" in frame and "● live" in frame
        v.on_final(final(0, 3.0, 4.0, "hello world"), latency_s=0.2)
        after = console.export_text()
        assert "[00:03] hello world" in after
        assert "helo wor" not in after  # the redrawn live area lost the partial
        assert "latency 0.2 s" in after
    raw = console.file.getvalue()
    assert "\x1b[2K" in raw  # the transient area was erased on stop


def test_stop_removes_the_live_area_and_leaves_the_last_status(clock: list[float]):
    console = tty_console()
    clock[0] = 61.0
    v = CaptionView(console, options=ViewOptions(auto_refresh=False), clock=lambda: clock[0])
    with v:
        v.set_state("draining")
        v.on_partial(Partial(utt=0, text="unfinished"))
        v.on_final(final(0, 0.0, 1.0, "finished words"))
        v.set_state("closed")
    out = lines(console.export_text())
    assert out[-1].startswith("○ closed │ 01:01")
    assert "2 words" in out[-1]


def test_plain_mode_prints_one_line_per_final_and_nothing_else(capsys):
    out = io.StringIO()
    console = Console(file=out, width=80)
    with CaptionView(console) as v:
        v.set_state("live")
        v.on_partial(Partial(utt=0, text="hello wo"))
        v.on_final(final(0, 3.4, 4.0, "hello world"), latency_s=0.3)
        v.on_final(final(1, 4.5, 5.0, ""))  # nothing heard: no line
        v.on_final(final(2, 5.0, 6.0, "applause", events=("Applause",)))
        v.on_final(final(3, 3723.0, 3724.0, "x " * 100 + "\nend"))
        v.set_dropped(1.0)
        v.notice("LLM notes off: set DEEPSEEK_API_KEY")
        v.notice("LLM notes off: set DEEPSEEK_API_KEY")
    text = out.getvalue()
    assert text.splitlines() == [
        "[00:03] hello world",
        "[00:05] applause",
        "[1:02:03] " + "x " * 100 + "end",
    ]
    assert "\x1b" not in text
    assert "hello wo\n" not in text
    assert capsys.readouterr().err == "LLM notes off: set DEEPSEEK_API_KEY\n"


def test_plain_mode_flushes_each_final_immediately():
    class Recorder(io.StringIO):
        flushed: list[str] = []

        def flush(self) -> None:
            self.flushed.append(self.getvalue())

    out = Recorder()
    v = CaptionView(Console(file=out), plain=True)
    v.on_final(final(0, 3.0, 4.0, "hello world"))
    assert out.flushed[-1] == "[00:03] hello world\n"


async def test_view_refreshes_on_its_own_while_the_event_loop_feeds_it():
    console = tty_console()
    with CaptionView(console, options=ViewOptions(refresh_per_second=50)) as v:
        v.set_state("live")
        for i in range(20):
            v.on_partial(Partial(utt=i, text=f"partial {i} " * 5))
            await asyncio.sleep(0.005)
            v.on_final(final(i, i * 1.0, i + 0.8, f"final {i}"), latency_s=0.1 * i)
        await asyncio.sleep(0.1)
    out = console.export_text()
    assert all(f"final {i}" in out for i in range(20))
    assert "40 words" in lines(out)[-1]
