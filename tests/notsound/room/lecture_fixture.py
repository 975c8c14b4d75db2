"""A lecture folder with a real recording, for the lecture room's browser tests.

Each sentence is spoken by espeak-ng and encoded to Ogg Opus with
:class:`library.opus.OpusWriter`; its journal caption starts and ends where its
speech does in the recording, so a caption's ``start`` is the second at which
it is heard. The deck is a small PDF (fpdf2) attached to the session; each
caption carries the slide on screen while it was said. The notes cite their
sections with ``[mm:ss]`` times.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from library.folder import (
    TRANSLATIONS,
    Final,
    Journal,
    Translation,
    append_translations,
    new_part_path,
    write_atomic,
    write_meta,
)
from library.opus import OpusWriter
from slides.store import attach_deck
from tests.speech import SAMPLE_RATE, silence, synth

__all__ = ["LECTURE_NAME", "SENTENCES", "SLIDES", "FixtureLecture", "write_lecture", "write_plain_lecture"]

LECTURE_NAME = "2026-11-30_1000"
GAP_S = 0.8
LEAD_S = 0.5
#: (sentence, slide on screen while it is said)
SENTENCES = [
    ("Good morning everyone, today we talk about the water cycle.", 1),
    ("Water evaporates from the oceans and rises into the sky.", 1),
    ("In the cold air it condenses into small drops and forms clouds.", 2),
    ("When the drops become heavy they fall back to the ground as rain.", 2),
    ("Rivers carry the rain back to the sea, and the cycle starts again.", 3),
    ("Next week we measure how much rain falls on the campus.", 3),
]
#: (title, body) of each page of the deck
SLIDES = [
    ("The water cycle", "Evaporation, condensation, precipitation"),
    ("Clouds and rain", "Cold air condenses vapour into drops"),
    ("Back to the sea", "Rivers close the cycle"),
]
TRANSLATED = {0: "早上好，今天我们讨论水循环。"}


@dataclass(frozen=True)
class FixtureLecture:
    """What the tests need to know about the written lecture."""

    folder: Path
    captions: tuple[Final, ...]
    deck: Path

    @property
    def name(self) -> str:
        return self.folder.name


def write_deck(path: Path) -> Path:
    """A PDF of the SLIDES: one page each, the title on top and the body under it."""
    from fpdf import FPDF

    pdf = FPDF(orientation="L", format="A4")
    pdf.set_auto_page_break(False)
    for title, body in SLIDES:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 44)
        pdf.cell(0, 40, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 28)
        pdf.multi_cell(0, 14, body)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def _record(folder: Path) -> list[tuple[float, float]]:
    """Speaks the sentences into the session's first recording part; (start, end) of each."""
    writer = OpusWriter(new_part_path(folder, 0.0))
    lead = silence(LEAD_S)
    times, at = [], len(lead)
    try:
        writer.write(lead)
        for sentence, _ in SENTENCES:
            speech = synth(sentence)
            times.append((at / SAMPLE_RATE, (at + len(speech)) / SAMPLE_RATE))
            for block in (speech, silence(GAP_S)):
                writer.write(block)
                at += len(block)
    finally:
        writer.close()
    return times


def _notes(captions: list[Final]) -> str:
    def clock(t: float) -> str:
        return f"{int(t) // 60:02d}:{int(t) % 60:02d}"

    return "\n".join([
        "# The water cycle", "",
        f"## Evaporation [{clock(captions[1].start)}]",
        "- The sun heats the oceans; water **evaporates** and rises.", "",
        f"## Clouds and rain [{clock(captions[2].start)}]",
        f"- Cold air condenses vapour into drops [{clock(captions[3].start)}].", "",
        f"## Back to the sea [{clock(captions[4].start)}]",
        "- Rivers close the cycle.", "",
    ])


def write_lecture(library: Path, name: str = LECTURE_NAME, deck_dir: Path | None = None) -> FixtureLecture:
    """The lecture folder ``library/name``: recording, journal, notes, summary, PDF deck."""
    folder = library / name
    folder.mkdir(parents=True)
    times = _record(folder)
    captions = [Final(utt=i, start=round(start, 3), end=round(end, 3), text=text, lang="en", slide=slide)
                for i, ((text, slide), (start, end)) in enumerate(zip(SENTENCES, times, strict=True))]
    journal = Journal(folder)
    for caption in captions:
        journal.append(caption)
    journal.close()
    deck = write_deck((deck_dir or library.parent / "decks") / "water-cycle.pdf")
    attach_deck(folder, deck)
    append_translations(folder / TRANSLATIONS, [Translation(utt, "zh", text) for utt, text in TRANSLATED.items()])
    write_atomic(folder / "notes.md", _notes(captions))
    write_atomic(folder / "summary.md", "# The water cycle\n\nEvaporation, condensation and rain "
                 f"[{int(captions[0].start) // 60:02d}:{int(captions[0].start) % 60:02d}].\n")
    write_meta(folder, session=name, language="en", started="2026-11-30T10:00:00+00:00", ended="2026-11-30T10:01:00+00:00")
    return FixtureLecture(folder, tuple(captions), deck)


def write_plain_lecture(library: Path, name: str, sentences: list[str], started: str) -> Path:
    """A lecture with a journal only (no recording, deck or notes), for the library list and search."""
    folder = library / name
    journal = Journal(folder)
    for i, text in enumerate(sentences):
        journal.append(Final(utt=i, start=i * 4.0, end=i * 4.0 + 3.5, text=text, lang="en"))
    journal.close()
    write_meta(folder, session=name, language="en", started=started, ended=started)
    return folder

