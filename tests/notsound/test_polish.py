"""``notsound polish``: a session's real recording decoded again into the polished layer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.fake_engine import FakeEngine
from library.export import export_session
from library.folder import (
    POLISH_WORK,
    POLISHED,
    Final,
    Journal,
    PolishBusyError,
    new_part_path,
    polish_lock,
    read_finals,
    read_layer,
)
from library.opus import OpusWriter
from models import EngineOptions
from notsound.polish import PolishError, polish_session
from tests import speech
from tests.capture.test_segmenter import tone
from tests.capture.test_speakers import ToneEncoder
from tests.capture.test_speakers import tone as pitched

#: (start, length) of the tone bursts in the recording; each is one live final
BURSTS = [(0.5, 1.0), (3.0, 1.5), (7.0, 1.0), (10.0, 2.0), (15.0, 1.0)]


class CountingEngine(FakeEngine):
    """The fake engine, counting long windows; ``stop_after`` windows then an interrupt (a kill)."""

    def __init__(self, stop_after: int | None = None):
        super().__init__(EngineOptions())
        self.windows = 0
        self.stop_after = stop_after

    def transcribe_long(self, audio, language="auto", hints=None):
        if self.stop_after is not None and self.windows >= self.stop_after:
            raise KeyboardInterrupt
        self.windows += 1
        return super().transcribe_long(audio, language)


def lecture_session(folder: Path, record_s: float = 18.0, extra: list[Final] = ()) -> Path:
    pcm = speech.silence(record_s)
    journal = Journal(folder)
    for utt, (start, length) in enumerate(BURSTS):
        i = round(start * speech.SAMPLE_RATE)
        pcm[i:i + round(length * speech.SAMPLE_RATE)] = tone(length)
        journal.append(Final(utt, start - 0.2, start + length + 0.2, f"live {utt}", "en"))
    for final in extra:
        journal.append(final)
    journal.close()
    writer = OpusWriter(new_part_path(folder, 0.0))
    writer.write(pcm)
    writer.close()
    return folder


def test_a_session_without_a_recording_says_so(tmp_path):
    Journal(tmp_path).close()
    with pytest.raises(PolishError, match="no recording"):
        polish_session(tmp_path, CountingEngine())
    assert not (tmp_path / POLISHED).exists()


def test_a_second_polish_of_the_same_session_at_once_is_refused(tmp_path):
    folder = lecture_session(tmp_path / "s")
    with polish_lock(folder), pytest.raises(PolishBusyError, match="running"):
        polish_session(folder, CountingEngine())
    assert not (folder / POLISHED).exists()


def test_a_killed_polish_continues_where_it_stopped_and_a_second_run_does_nothing(tmp_path):
    whole = lecture_session(tmp_path / "whole")
    result = polish_session(whole, CountingEngine(), window_s=5.0)
    assert result.total == result.windows >= 3
    killed = lecture_session(tmp_path / "killed")
    with pytest.raises(KeyboardInterrupt):
        polish_session(killed, CountingEngine(stop_after=2), window_s=5.0)
    assert not (killed / POLISHED).exists() and (killed / POLISH_WORK).exists(), "no half-written layer"
    again = CountingEngine()
    polish_session(killed, again, window_s=5.0)
    assert again.windows == result.total - 2, "only the windows not done before"
    assert (killed / POLISHED).read_bytes() == (whole / POLISHED).read_bytes()
    assert not (killed / POLISH_WORK).exists()
    third = CountingEngine()
    assert polish_session(killed, third, window_s=5.0).already and third.windows == 0


def test_the_layer_has_the_recording_times_and_the_live_layer_stays(tmp_path):
    folder = lecture_session(tmp_path / "s")
    live_before = (folder / "transcript.jsonl").read_bytes()
    polish_session(folder, CountingEngine(), window_s=5.0)
    polished = read_layer(folder)
    assert all(f.text.startswith("fake ") for f in polished)
    for (start, length) in BURSTS:  # every burst is inside a polished caption
        assert any(f.start <= start + 0.05 and start + length - 0.05 <= f.end for f in polished)
    assert (folder / "transcript.jsonl").read_bytes() == live_before
    assert read_layer(folder, "live") == read_finals(folder)
    assert "fake " in export_session(folder, "srt") and "live 0" in export_session(folder, "srt", layer="live")


def test_captions_past_the_end_of_the_recording_keep_their_live_text(tmp_path):
    late = Final(len(BURSTS), 30.0, 32.0, "said after the recording stopped", "en")
    folder = lecture_session(tmp_path / "s", extra=[late])
    notices: list[str] = []
    polish_session(folder, CountingEngine(), notify=notices.append)
    polished = read_layer(folder)
    assert polished[-1].text == late.text and polished[-1].start == late.start
    assert [f.utt for f in polished] == list(range(len(polished)))
    assert any("recording ends at 00:18" in n for n in notices)


def test_a_corrupt_recording_keeps_every_live_caption(tmp_path):
    folder = lecture_session(tmp_path / "s")
    [part] = list((folder / "recording").iterdir())
    part.write_bytes(b"OggS" + bytes(range(256)) * 4)
    notices: list[str] = []
    polish_session(folder, CountingEngine(), notify=notices.append)
    assert [f.text for f in read_layer(folder)] == [f.text for f in read_finals(folder)]
    assert any("cannot decode" in n or "holds no audio" in n for n in notices)


def voiced_session(folder: Path, plan: str) -> Path:
    """``L`` a 2.5 s lecturer sentence (220 Hz), ``Q`` a 1.5 s question (550 Hz), each a live final 4 s apart."""
    pcm = speech.silence(4.0 * len(plan) + 1.0)
    journal = Journal(folder)
    for utt, who in enumerate(plan):
        start, length = 0.5 + 4.0 * utt, 2.5 if who == "L" else 1.5
        i = round(start * speech.SAMPLE_RATE)
        pcm[i:i + round(length * speech.SAMPLE_RATE)] = pitched(length, 220.0 if who == "L" else 550.0)
        journal.append(Final(utt, start - 0.1, start + length + 0.1, f"live {utt}", "en"))
    journal.close()
    writer = OpusWriter(new_part_path(folder, 0.0))
    writer.write(pcm)
    writer.close()
    return folder


def test_polish_labels_every_line_from_its_voice_over_the_whole_lecture(tmp_path):
    plan = "LLLQLLLQQLL"
    folder = voiced_session(tmp_path / "s", plan)
    polish_session(folder, CountingEngine(), window_s=3.0, speakers=ToneEncoder)
    polished = read_layer(folder)
    assert len(polished) == len(plan)
    assert [f.speaker for f in polished] == ["lecturer" if who == "L" else "audience-1" for who in plan]
    assert '"speaker":"audience-1"' in (folder / POLISHED).read_text()
    assert not any(f.speaker for f in read_finals(folder)), "the live journal stays as it was"


def test_a_one_voice_recording_is_all_lecturer_and_without_an_encoder_nobody_is_labelled(tmp_path):
    folder = voiced_session(tmp_path / "one", "LLLLLL")
    polish_session(folder, CountingEngine(), window_s=3.0, speakers=ToneEncoder)
    assert {f.speaker for f in read_layer(folder)} == {"lecturer"}
    plain = voiced_session(tmp_path / "plain", "LLQLL")
    polish_session(plain, CountingEngine(), window_s=3.0)
    assert {f.speaker for f in read_layer(plain)} == {""}
    result = polish_session(plain, CountingEngine(), window_s=3.0, speakers=ToneEncoder)
    assert not result.already, "labels asked for now: polished again"
    assert [f.speaker for f in read_layer(plain)] == ["lecturer"] * 2 + ["audience-1"] + ["lecturer"] * 2


@pytest.mark.slow
@pytest.mark.skipif(not speech.have_espeak(), reason="espeak-ng and sox are required")
def test_the_speaker_model_hears_one_voice_in_a_lecture_of_one_voice(tmp_path):
    pytest.importorskip("resemblyzer")
    from capture.voices import ResemblyzerEncoder

    pcm = speech.lecture(speech.PARAGRAPH[:4], gap_s=1.2)
    journal, at = Journal(tmp_path), 0.5
    for utt, sentence in enumerate(speech.PARAGRAPH[:4]):
        length = len(speech.synth(sentence)) / speech.SAMPLE_RATE
        journal.append(Final(utt, at, at + length, sentence, "en"))
        at += length + 1.2
    journal.close()
    writer = OpusWriter(new_part_path(tmp_path, 0.0))
    writer.write(pcm)
    writer.close()
    polish_session(tmp_path, CountingEngine(), window_s=5.0, speakers=ResemblyzerEncoder)
    assert {f.speaker for f in read_layer(tmp_path)} == {"lecturer"}


@pytest.mark.slow
@pytest.mark.skipif(not speech.have_espeak(), reason="espeak-ng and sox are required")
async def test_polish_on_whisper_gives_the_lecture_and_export_and_search_use_it(tmp_path):
    pytest.importorskip("faster_whisper")
    from library.index import open_index
    from live.server import WorkerSettings
    from models import create_engine
    from notsound.liverun import LiveSettings, run_live

    pcm = speech.lecture(speech.PARAGRAPH, gap_s=1.2)
    onsets, at = [], 0.5
    for sentence in speech.PARAGRAPH:
        onsets.append(at)
        at += len(speech.synth(sentence)) / speech.SAMPLE_RATE + 1.2
    wav = speech.write_wav(tmp_path / "lecture.wav", pcm)
    settings = LiveSettings(input=wav, fast=True, out=tmp_path, session="s", plain=True, notes=False)
    result = await run_live(settings, WorkerSettings(engine="fake", port=0, warmup=False))
    folder = result.session_dir

    engine = create_engine("whisper", EngineOptions(threads=2))
    polish_session(folder, engine)
    polished = read_layer(folder)
    error = speech.wer(" ".join(speech.PARAGRAPH), " ".join(f.text for f in polished))
    assert error <= 0.25, (error, [f.text for f in polished])
    for onset in onsets:  # each sentence starts where it is in the recording
        assert min(abs(f.start - onset) for f in polished) < 0.5
    words = [json.loads(line)["words"] for line in (folder / POLISHED).read_text().splitlines()]
    assert all(w and f.start <= w[0][1] <= w[-1][2] <= f.end + 0.01 for w, f in zip(words, polished, strict=True))

    srt = export_session(folder, "srt")
    assert "evaporates" in srt.lower() and "fake " not in srt
    assert "fake " in export_session(folder, "srt", layer="live")
    with open_index(tmp_path) as index:
        index.update()
        hits = index.search("evaporates")
    assert hits and hits[0].session == "s" and "fake" not in hits[0].text
