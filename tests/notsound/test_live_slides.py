"""``notsound live --slides``: the deck stored, its terms sent as hints, finals tagged with slides."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from library.folder import SLIDES, TRANSCRIPT, read_finals
from live.server import WorkerSettings
from notsound.liverun import LiveSettings, run_live
from notsound.view import CaptionView
from tests import speech

pytestmark = pytest.mark.skipif(not speech.have_espeak(), reason="espeak-ng and sox are required")

DECK = """# The water cycle

Water evaporates from the oceans and rises into the sky as vapour.
Evaporation is driven by the sun.

---

# Clouds and rain

In the cold air the vapour condenses into small drops that form clouds.
When the drops become heavy they fall back to the ground as rain.
"""


@pytest.fixture(scope="module")
def lecture_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lecture") / "lecture.wav"
    return speech.write_wav(path, speech.lecture(speech.PARAGRAPH, gap_s=1.2))


def _view() -> tuple[CaptionView, io.StringIO]:
    out = io.StringIO()
    return CaptionView(console=Console(file=out, width=120), plain=True), out


async def test_live_with_a_deck_stores_it_and_tags_each_final_with_its_slide(lecture_wav, tmp_path):
    deck = tmp_path / "deck.md"
    deck.write_text(DECK, encoding="utf-8")
    settings = LiveSettings(input=lecture_wav, fast=True, out=tmp_path, session="slides", plain=True,
                            notes=False, slides=deck)
    view, _ = _view()
    result = await run_live(settings, WorkerSettings(engine="whisper", port=0, warmup=False), view=view)

    stored = json.loads((result.session_dir / SLIDES).read_text(encoding="utf-8"))
    assert [s["title"] for s in stored["slides"]] == ["The water cycle", "Clouds and rain"]
    finals = read_finals(result.session_dir / TRANSCRIPT)
    assert len(finals) == len(speech.PARAGRAPH)
    slides = [f.slide for f in finals]
    assert all(s in (1, 2) for s in slides), slides
    assert slides[1] == 1 and slides[-1] == 2  # oceans and sky on the first slide, rain on the second
    assert slides == sorted(slides)  # the lecture follows the deck forward

    # A later run of the same session uses the stored deck without the flag.
    again = LiveSettings(input=lecture_wav, fast=True, out=tmp_path, session="slides", plain=True, notes=False)
    view, _ = _view()
    await run_live(again, WorkerSettings(engine="fake", port=0, warmup=False), view=view)
    later = read_finals(result.session_dir / TRANSCRIPT)[len(finals):]
    assert later and all(f.slide in (1, 2) for f in later)


async def test_a_deck_that_cannot_be_read_is_a_notice_and_captions_go_on(lecture_wav, tmp_path, capsys):
    deck = tmp_path / "talk.key"
    deck.write_bytes(b"not a deck we can read")
    settings = LiveSettings(input=lecture_wav, fast=True, out=tmp_path, session="bad", plain=True,
                            notes=False, slides=deck)
    view, out = _view()
    result = await run_live(settings, WorkerSettings(engine="fake", port=0, warmup=False), view=view)
    assert len(read_finals(result.session_dir / TRANSCRIPT)) == len(speech.PARAGRAPH)
    assert not (result.session_dir / SLIDES).exists()
    assert all(f.slide is None and f.raw == "" for f in read_finals(result.session_dir / TRANSCRIPT))
    assert "slides not used" in capsys.readouterr().err + out.getvalue()
