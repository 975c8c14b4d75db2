"""What the room's API says about lectures: the library list and one lecture, as JSON-ready dicts.

Built from the session folders alone (``library.folder``, ``library.history``,
``slides.store``) and kept per folder until one of its files changes (their
sizes and modification times are the key), so listing 200 lectures reads a
few stats per folder, not 200 journals. Shapes: DESIGN.md,
"The lecture room".
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from library.folder import (
    META,
    NOTES,
    POLISHED,
    RECORDING,
    SLIDES,
    SUMMARY,
    TRANSCRIPT,
    TRANSLATIONS,
    Final,
    list_sessions,
    read_layer,
    recording_parts,
    translation_texts,
)
from library.history import session_info
from slides.store import SLIDES_PDF, load_session_deck

from .paths import inside
from .render import render_markdown

__all__ = ["EXPORTS", "LectureCache", "folder_signature", "lecture_row", "lecture_data", "slide_times"]

#: export formats offered to the owner: (format in the URL, label)
EXPORTS = (("srt", "Subtitles (SRT)"), ("vtt", "Subtitles (VTT)"), ("txt", "Transcript (TXT)"),
           ("md", "Transcript (Markdown)"), ("bilingual-srt", "Bilingual subtitles (SRT)"),
           ("bilingual-vtt", "Bilingual subtitles (VTT)"))
#: largest notes.md / summary.md rendered
MAX_MARKDOWN_BYTES = 1 << 20
_WATCHED = (TRANSCRIPT, POLISHED, META, NOTES, SUMMARY, SLIDES, TRANSLATIONS, RECORDING)


def folder_signature(folder: Path) -> tuple:
    """Sizes and modification times of the files a lecture's JSON is made from."""
    sig = []
    for name in _WATCHED:
        try:
            st = (folder / name).stat()
            sig.append((st.st_size, st.st_mtime_ns))
        except OSError:
            sig.append(None)
    return tuple(sig)


def _read_markdown(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_MARKDOWN_BYTES)
    except OSError:
        return None
    return data.decode("utf-8", errors="replace")


def lecture_row(folder: Path, live: bool) -> dict[str, Any]:
    """One lecture of the library list."""
    info = session_info(folder)
    return {
        "name": info.name, "title": info.title or info.name,
        "started": info.started.isoformat(timespec="seconds") if info.started else None,
        "duration_s": round(info.duration_s, 3), "words": info.words, "language": info.language,
        "live": live, "notes": info.notes, "summary": info.summary, "slides": info.slides,
        "recording": bool(recording_parts(folder)), "polished": (folder / POLISHED).is_file(),
        "translation": (folder / TRANSLATIONS).is_file(),
    }


def _caption(final: Final, translations: dict[int, str]) -> dict[str, Any]:
    row: dict[str, Any] = {"utt": final.utt, "start": round(final.start, 3), "end": round(final.end, 3),
                           "text": final.text}
    if final.speaker:
        row["speaker"] = final.speaker
    if final.slide is not None:
        row["slide"] = final.slide
    if final.utt in translations:
        row["translation"] = translations[final.utt]
    return row


def slide_times(finals: Sequence[Final]) -> list[dict[str, Any]]:
    """When each slide came on screen: the first caption of every run of one slide tag, by time."""
    out: list[dict[str, Any]] = []
    for final in sorted(finals, key=lambda f: f.start):
        if final.slide is not None and (not out or out[-1]["n"] != final.slide):
            out.append({"t": round(final.start, 3), "n": final.slide})
    return out


def _slides(folder: Path, name: str, finals: Sequence[Final]) -> dict[str, Any] | None:
    """The deck's slides; PDF pages have an image when the deck is kept whole (``slides.pdf``)."""
    deck = load_session_deck(folder)
    if deck is None:
        return None
    has_pdf = (folder / SLIDES_PDF).is_file()
    first: dict[int, float] = {}
    for final in sorted(finals, key=lambda f: f.start):
        if final.slide is not None:
            first.setdefault(final.slide, round(final.start, 3))
    base = f"/lectures/{quote(name)}/slides"
    items = [{"n": s.number, "title": s.title, "text": s.text,
              "image": f"{base}/{s.number}.png" if has_pdf else None, "first_t": first.get(s.number)}
             for s in deck.slides]
    return {"deck": deck.source_name, "items": items}


def lecture_data(folder: Path, *, live: bool) -> dict[str, Any]:
    """The role-independent part of one lecture's JSON (``can_ask``, ``exports`` are added per request)."""
    name = folder.name
    polished = not live and (folder / POLISHED).is_file()
    finals = [f for f in read_layer(folder, "polished" if polished else "live") if f.text]
    translations = translation_texts(folder)
    info = session_info(folder)
    parts = recording_parts(folder)
    notes, summary = _read_markdown(folder / NOTES), _read_markdown(folder / SUMMARY)
    return {
        "name": name, "title": info.title or name,
        "started": info.started.isoformat(timespec="seconds") if info.started else None,
        "duration_s": round(info.duration_s, 3), "language": info.language, "live": live,
        "layer": "polished" if polished else "live",
        "captions": [_caption(f, translations) for f in finals],
        "recording": {"parts": [{"url": f"/lectures/{quote(name)}/recording/{p.path.name}",
                                 "offset": p.offset} for p in parts]} if parts else None,
        "slides": _slides(folder, name, finals),
        "slide_times": slide_times(finals),
        "notes_html": render_markdown(notes) if notes is not None else None,
        "summary_html": render_markdown(summary) if summary is not None else None,
        "feed": f"/feed?session={quote(name)}" if live else None,
    }


class LectureCache:
    """Lecture rows and lecture JSON per folder, made again when the folder's files change.

    Thread-safe (the app builds them in worker threads); holds at most
    ``max_lectures`` full lectures (least recently used dropped), rows for all.
    """

    def __init__(self, library: Path, live_name: str | None, max_lectures: int = 16):
        self.library = library
        self.live_name = live_name
        self._rows: dict[str, tuple[tuple, dict[str, Any]]] = {}
        self._lectures: OrderedDict[str, tuple[tuple, dict[str, Any]]] = OrderedDict()
        self._max = max_lectures
        self._lock = threading.Lock()

    def rows(self) -> list[dict[str, Any]]:
        """Every lecture of the library, newest first."""
        folders = [f for f in list_sessions(self.library) if inside(f, self.library)]
        rows = []
        for folder in folders:
            sig = folder_signature(folder)
            with self._lock:
                cached = self._rows.get(folder.name)
            if cached is None or cached[0] != sig:
                cached = (sig, lecture_row(folder, folder.name == self.live_name))
                with self._lock:
                    self._rows[folder.name] = cached
            rows.append(cached[1])
        with self._lock:
            for gone in set(self._rows) - {f.name for f in folders}:
                del self._rows[gone]
        return sorted(rows, key=lambda r: (r["started"] or "", r["name"]), reverse=True)

    def lecture(self, folder: Path) -> dict[str, Any]:
        """The JSON of one lecture (a shared dict: copy before changing it)."""
        sig = folder_signature(folder)
        with self._lock:
            cached = self._lectures.get(folder.name)
            if cached is not None and cached[0] == sig:
                self._lectures.move_to_end(folder.name)
                return cached[1]
        data = lecture_data(folder, live=folder.name == self.live_name)
        with self._lock:
            self._lectures[folder.name] = (sig, data)
            while len(self._lectures) > self._max:
                self._lectures.popitem(last=False)
        return data
