"""Libraries of lectures made on the spot, and the room's app over them (HTTP-level tests)."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from library.folder import (
    NOTES,
    POLISHED,
    SUMMARY,
    TRANSLATIONS,
    Final,
    Journal,
    Translation,
    append_translations,
    encode_final,
    write_meta,
)
from notsound.room import AskConfig, LiveSession, create_app, live_feed, room_for
from notsound.web import WebSettings
from notsound.web_feed import CaptionFeed

VIEWER = "viewer-token-0123456789abcdef"
OWNER = "owner-token-0123456789abcdefgh"
LOCAL = "http://127.0.0.1"

#: (text, slide, speaker) of the demo lecture, 4 s apart
LINES = [
    ("Good morning everyone, today we study gradient descent.", 1, "lecturer"),
    ("The learning rate decides how far each step goes.", 1, ""),
    ("学习率太大会发散，太小会很慢。", 2, "lecturer"),
    ("Can you repeat the part about momentum?", 2, "audience-1"),
    ("Momentum keeps a running average of the gradients.", 3, "lecturer"),
    ("下次课我们讲反向传播。", 3, ""),
]
NOTES_MD = ("# Gradient descent\n\n- [00:04] the learning rate <script>alert(1)</script>\n"
            "- [00:16–00:20] momentum, see [a link](javascript:alert(1))\n")
SUMMARY_MD = "# Summary\n\nStep size matters [0:08]; momentum [1:00:05].\n"
PART_BYTES = [bytes(range(256)) * 40, b"OggS" + bytes(7000)]


def finals(lines=LINES, first_utt: int = 0) -> list[Final]:
    return [Final(utt=first_utt + i, start=i * 4.0, end=i * 4.0 + 3.0, text=text, lang="en",
                  emotion="NEUTRAL", events=(), slide=slide, speaker=speaker)
            for i, (text, slide, speaker) in enumerate(lines)]


def write_lecture(library: Path, name: str, *, started: str | None = "2026-11-02T09:00:00+00:00",
                  lines=LINES, extras: bool = True, pdf: Path | None = None) -> Path:
    """A session folder: journal, session.json; with ``extras`` notes, summary, translations and a
    recording of two parts; with ``pdf`` that deck attached (slides.json and slides.pdf)."""
    folder = library / name
    journal = Journal(folder)
    for final in finals(lines):
        journal.append(final)
    journal.close()
    write_meta(folder, session=name, language="auto", started=started, ended="2026-11-02T10:00:00+00:00")
    if extras:
        (folder / NOTES).write_text(NOTES_MD, encoding="utf-8")
        (folder / SUMMARY).write_text(SUMMARY_MD, encoding="utf-8")
        append_translations(folder / TRANSLATIONS, [Translation(0, "zh", "大家早上好"), Translation(2, "zh", None, "x")])
        (folder / "recording").mkdir()
        (folder / "recording" / "000-0.000.opus").write_bytes(PART_BYTES[0])
        (folder / "recording" / "001-12.000.opus").write_bytes(PART_BYTES[1])
    if pdf is not None:
        from slides.store import attach_deck

        attach_deck(folder, pdf)
    return folder


def write_polished(folder: Path, texts: list[str]) -> None:
    rows = [encode_final(f) for f in finals([(t, None, "") for t in texts])]
    (folder / POLISHED).write_bytes(b"".join(rows))


def write_deck(path: Path) -> Path:
    from tests.slides.decks import write_pdf

    return write_pdf(path, [["Gradient descent", "step by step"], ["Learning rate", "too large, too small"],
                            ["Momentum", "a running average"]])


def settings(*, remote: bool = False, **kw) -> WebSettings:
    if remote:
        return WebSettings(host="0.0.0.0", port=0, token=VIEWER, owner_token=OWNER, **kw)
    return WebSettings(host="127.0.0.1", port=0, **kw)


def client(library: Path, *, remote: bool = False, ask: AskConfig | None = None,
           live: Path | None = None, feed: CaptionFeed | None = None) -> TestClient:
    """A test client of the room over ``library`` (off loopback with ``remote``: tokens needed)."""
    session = LiveSession(live, feed or live_feed(live)) if live is not None else None
    app = create_app(room_for(library, settings(remote=remote), session, ask))
    return TestClient(app, base_url=LOCAL)
