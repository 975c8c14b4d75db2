"""``notsound export``: subtitles (SRT, WebVTT) and transcripts (text, Markdown) of a session.

Subtitles follow common conventions (:class:`SubtitleOptions`): at most 42
characters a line for Latin scripts and 16 for Chinese, Japanese and Korean,
at most two lines, 1 to 7 seconds on screen, at most about 17 characters a
second where the gap to the next caption allows, lines and events broken
after punctuation where there is some (Chinese between words, with jieba when
it is installed). A caption too long for one event becomes several, timed in
proportion to their length; events never overlap. The files are written with
pysubs2.

Transcripts put a ``[mm:ss]`` time before each paragraph; a pause or a long
stretch of speech starts a new paragraph.

Speaker labels (``live --speakers``): WebVTT cues carry a voice tag
(``<v Lecturer>``, ``<v Audience 1>``); an SRT cue starts with ``Lecturer:``
where the speaker changes; transcript paragraphs (one speaker each) start with
the speaker's name. :func:`speaker_of_line` reads such a prefix back.

Cues keep the ``utt`` of their caption, so a second text per caption (a
translation, ``notsound live --translate``) is laid out under it
(``bilingual``): a caption shown in several events gets its translation split
over the same events, each part wrapped by the same rules. With
``translations`` alone, the translated text replaces the caption's (captions
without a translation keep theirs).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from common.script import CJK, cjk_share, is_cjk, unspaced

from .folder import Final, fmt_clock, require_finals, speaker_name
from .history import fmt_duration, session_info

__all__ = ["FORMATS", "SubtitleOptions", "Cue", "build_cues", "wrap_lines", "to_subtitles",
           "to_transcript", "export_session", "mostly_cjk", "speaker_of_line"]

FORMATS = ("srt", "vtt", "txt", "md")

_PIECES = re.compile(f"[{CJK}]+|\\s+|[^\\s{CJK}]+")
_STRONG = set(".?!…。？！;；")
_WEAK = set(",:，：、—–")
_CLOSERS = "\"'”’)]}）」』》】"
_TRAILING = set(_CLOSERS) | _STRONG | _WEAK
_PREFIX = re.compile(r"(?:\*\*)?(Lecturer|Audience [1-9][0-9]*):(?:\*\*)? ")


@dataclass(frozen=True)
class SubtitleOptions:
    """Layout and timing rules for subtitle events.

    Attributes:
        max_line: characters per line for Latin scripts.
        max_line_cjk: characters per line for Chinese, Japanese, Korean.
        max_lines: lines per event.
        min_s: shortest time an event stays on screen.
        max_s: longest time an event stays on screen.
        max_cps: reading speed (characters a second) that an event is
            lengthened towards while the next event's start allows.
    """

    max_line: int = 42
    max_line_cjk: int = 16
    max_lines: int = 2
    min_s: float = 1.0
    max_s: float = 7.0
    max_cps: float = 17.0


@dataclass(frozen=True)
class Cue:
    """One subtitle event: times in milliseconds, its lines, the caption it shows."""

    start_ms: int
    end_ms: int
    lines: tuple[str, ...]
    utt: int
    speaker: str = ""

    @property
    def chars(self) -> int:
        return sum(len(line) for line in self.lines)


def mostly_cjk(text: str) -> bool:
    """Whether ``text`` is mostly Chinese, Japanese or Korean (by letters)."""
    share = cjk_share(text)
    return share is not None and share >= 0.3


# -- tokens and lines -------------------------------------------------------------


def _segment(run: str) -> list[str]:
    """A run of CJK characters as words (jieba when installed, else characters)."""
    try:
        import jieba  # optional: breaks Chinese between words rather than inside them
    except ImportError:
        return list(run)
    return [w for w in jieba.lcut(run, HMM=False) if w]


def _tokens(text: str, max_len: int) -> list[str]:
    """Breakable units of ``text``, each with its trailing space; punctuation sticks to the left."""
    out: list[str] = []
    for piece in _PIECES.findall(text):
        if piece.isspace():
            if out and not out[-1].endswith(" "):
                out[-1] += " "
            continue
        words = _segment(piece) if is_cjk(piece[0]) else [piece]
        for word in words:
            if out and not any(ch.isalnum() for ch in word) and not out[-1].endswith(" "):
                out[-1] += word
            else:
                out.append(word)
    short: list[str] = []
    for token in out:  # a token longer than a line (a URL) is cut
        while len(token.rstrip()) > max_len:
            short.append(token[:max_len])
            token = token[max_len:]
        short.append(token)
    return short


def _join(tokens: Sequence[str]) -> str:
    return "".join(tokens).strip()


def _break_penalty(token: str, scale: int) -> float:
    """Cost of breaking after ``token``: none after a sentence end, some after a comma, most elsewhere."""
    tail = token.rstrip().rstrip(_CLOSERS)[-1:]
    if tail in _STRONG:
        return 0.0
    if tail in _WEAK:
        return (0.1 * scale) ** 2
    return (0.5 * scale) ** 2


def wrap_lines(tokens: Sequence[str], max_line: int, max_lines: int = 2) -> list[str] | None:
    """``tokens`` in as few lines as fit (at most ``max_lines``), balanced, broken after punctuation."""
    text = _join(tokens)
    if len(text) <= max_line:
        return [text] if text else []
    if max_lines < 2:
        return None
    best: tuple[float, int] | None = None
    for cut in range(1, len(tokens)):
        first, second = _join(tokens[:cut]), _join(tokens[cut:])
        if len(first) > max_line or len(second) > max_line * (max_lines - 1):
            continue
        cost = (len(first) - len(second)) ** 2 + _break_penalty(tokens[cut - 1], max_line)
        if best is None or cost < best[0]:
            best = (cost, cut)
    if best is None:
        return None
    rest = wrap_lines(tokens[best[1]:], max_line, max_lines - 1)
    return None if rest is None else [_join(tokens[: best[1]]), *rest]


def _split_events(tokens: list[str], events: int, opts: SubtitleOptions, max_line: int) -> list[list[str]] | None:
    """``tokens`` in exactly ``events`` groups that each fit an event, balanced, cut after punctuation."""
    total = len(_join(tokens))
    target = total / events
    limit = max_line * opts.max_lines
    n = len(tokens)
    inf = float("inf")
    # cost[k][i]: best cost of the first i tokens in k groups; back[k][i]: where group k starts
    cost = [[inf] * (n + 1) for _ in range(events + 1)]
    back = [[0] * (n + 1) for _ in range(events + 1)]
    cost[0][0] = 0.0
    for k in range(1, events + 1):
        for i in range(1, n + 1):
            for a in range(i - 1, -1, -1):
                if cost[k - 1][a] == inf:
                    continue
                size = len(_join(tokens[a:i]))
                if size > limit:
                    break
                if wrap_lines(tokens[a:i], max_line, opts.max_lines) is None:
                    continue
                c = cost[k - 1][a] + (size - target) ** 2
                c += _break_penalty(tokens[i - 1], limit) if i < n else 0.0
                if c < cost[k][i]:
                    cost[k][i], back[k][i] = c, a
    if cost[events][n] == inf:
        return None
    groups, i = [], n
    for k in range(events, 0, -1):
        a = back[k][i]
        groups.append(tokens[a:i])
        i = a
    return groups[::-1]


def _caption_pieces(final: Final, opts: SubtitleOptions) -> list[tuple[float, float, list[str]]]:
    """The events of one caption: (start, end, lines), timed in proportion to their length."""
    max_line = opts.max_line_cjk if mostly_cjk(final.text) else opts.max_line
    tokens = _tokens(final.text, max_line)
    total = len(_join(tokens))
    if not total:
        return []
    duration = final.end - final.start
    # a slow caption is split to keep each event under max_s, but not into scraps of a few letters
    by_time = min(math.ceil(duration / opts.max_s), total // max(1, max_line // 2))
    events = min(max(math.ceil(total / (max_line * opts.max_lines)), by_time, 1), len(tokens))
    groups = None
    while groups is None and events <= len(tokens):
        groups = _split_events(tokens, events, opts, max_line)
        events += 1
    if groups is None:  # unreachable: one token per event always fits
        groups = [[t] for t in tokens]
    pieces, done = [], 0
    for group in groups:
        size = len(_join(group))
        start = final.start + duration * done / total
        done += size
        lines = wrap_lines(group, max_line, opts.max_lines) or [_join(group)]
        pieces.append((start, final.start + duration * done / total, lines))
    return pieces


# -- timing -------------------------------------------------------------------------


def build_cues(finals: Sequence[Final], opts: SubtitleOptions | None = None) -> list[Cue]:
    """Subtitle events for ``finals``: laid out, split, then timed without overlap."""
    opts = opts or SubtitleOptions()
    raw: list[tuple[int, int, list[str], Final]] = []
    for final in sorted(finals, key=lambda f: (f.start, f.utt)):
        for start, end, lines in _caption_pieces(final, opts):
            raw.append((round(start * 1000), round(end * 1000), lines, final))
    min_ms, max_ms = round(opts.min_s * 1000), round(opts.max_s * 1000)
    cues: list[Cue] = []
    prev_end = 0
    for i, (start, end, lines, final) in enumerate(raw):
        start = max(start, prev_end)
        chars = sum(len(line) for line in lines)
        want = max(end - start, min_ms, math.ceil(chars / opts.max_cps * 1000))
        end = start + min(want, max_ms)
        if i + 1 < len(raw) and end > raw[i + 1][0]:
            # stop where the next one starts, unless that leaves less than the minimum
            end = max(raw[i + 1][0], start + min_ms)
        cues.append(Cue(start, end, tuple(lines), final.utt, final.speaker))
        prev_end = end
    return cues


# -- writers ------------------------------------------------------------------------


def _subtitle_text(cue: Cue, fmt: str) -> str:
    lines = [re.sub(r"\\([nNh])", "\\\u200b\\1", line) for line in cue.lines]  # no SSA escapes
    if fmt == "vtt":
        lines = [html.escape(line, quote=False) for line in lines]
        if cue.speaker and lines:
            lines[0] = f"<v {speaker_name(cue.speaker)}>{lines[0]}"
    return "\\N".join(lines)


def speaker_of_line(line: str) -> tuple[str, str]:
    """``(speaker name, rest)`` of an exported line that starts with a speaker
    (``Audience 1: ...``, ``**Lecturer:** ...``, ``<v Lecturer>...``); ``("", line)`` otherwise."""
    voice = re.match(r"<v ([^>]+)>", line)
    if voice:
        return voice.group(1), line[voice.end():]
    prefix = _PREFIX.match(line)
    return (prefix.group(1), line[prefix.end():]) if prefix else ("", line)


def _speaker_prefixed(finals: Sequence[Final]) -> list[Final]:
    """Finals whose speaker differs from the one before start with ``Name: `` (SRT)."""
    out, previous = [], ""
    for final in sorted(finals, key=lambda f: (f.start, f.utt)):
        if final.speaker and final.speaker != previous and final.text:
            final = replace(final, text=f"{speaker_name(final.speaker)}: {final.text}")
        previous = final.speaker or previous
        out.append(final)
    return out


def _second_lines(text: str, parts: int, opts: SubtitleOptions) -> list[list[str]]:
    """A translation laid out over the ``parts`` events of its caption (lines per event)."""
    max_line = opts.max_line_cjk if mostly_cjk(text) else opts.max_line
    tokens = _tokens(text, max_line)
    if not tokens:
        return [[] for _ in range(parts)]
    used = min(parts, len(tokens))
    groups = None
    for lines in (opts.max_lines, 2 * opts.max_lines):  # a longer translation may take more lines
        groups = groups or _split_events(tokens, used, replace(opts, max_lines=lines), max_line)
    if groups is None:  # even so too long: one line per event, as many words each
        step = math.ceil(len(tokens) / used)
        groups = [tokens[i:i + step] for i in range(0, len(tokens), step)]
    out = [wrap_lines(g, max_line, 2 * opts.max_lines) or [_join(g)] for g in groups]
    return out + [[] for _ in range(parts - len(out))]


def _bilingual(cues: list[Cue], translations: Mapping[int, str], opts: SubtitleOptions) -> list[Cue]:
    counts: dict[int, int] = {}
    for cue in cues:
        counts[cue.utt] = counts.get(cue.utt, 0) + 1
    laid = {utt: _second_lines(translations[utt], n, opts) for utt, n in counts.items() if translations.get(utt)}
    seen: dict[int, int] = {}
    out = []
    for cue in cues:
        i = seen[cue.utt] = seen.get(cue.utt, -1) + 1
        extra = tuple(laid[cue.utt][i]) if cue.utt in laid else ()
        out.append(replace(cue, lines=cue.lines + extra))
    return out


def _translated(finals: Sequence[Final], translations: Mapping[int, str]) -> list[Final]:
    return [replace(f, text=translations[f.utt]) if translations.get(f.utt) else f for f in finals]


def to_subtitles(finals: Sequence[Final], fmt: str, opts: SubtitleOptions | None = None, *,
                 translations: Mapping[int, str] | None = None, bilingual: bool = False) -> str:
    """An SRT or WebVTT file of ``finals`` (pysubs2 writes it).

    With ``translations`` (``utt`` -> text): both texts in each event when
    ``bilingual``, the translation instead of the caption otherwise.
    """
    import pysubs2

    opts = opts or SubtitleOptions()
    if translations and not bilingual:
        finals = _translated(finals, translations)
    if fmt == "srt":
        finals = _speaker_prefixed(finals)
    cues = build_cues(finals, opts)
    if translations and bilingual:
        cues = _bilingual(cues, translations, opts)
    subs = pysubs2.SSAFile()
    for cue in cues:
        subs.append(pysubs2.SSAEvent(start=cue.start_ms, end=cue.end_ms, text=_subtitle_text(cue, fmt)))
    return subs.to_string(fmt, keep_ssa_tags=True)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&|~#])")


def _glue(left: str, right: str) -> str:
    if not left:
        return right
    return left + right if unspaced(left[-1]) and right and unspaced(right[0]) else f"{left} {right}"


def _md(text: str) -> str:
    """``text`` as Markdown text, never as markup."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def _paragraphs(finals: Sequence[Final], gap_s: float,
                max_s: float) -> list[tuple[float, str, int | None, str]]:
    """``(start, text, slide, speaker)`` per paragraph: a new one after a pause, a long run,
    a slide change or another speaker."""
    paragraphs: list[tuple[float, str, int | None, str]] = []
    start, text, last_end, slide, speaker = 0.0, "", 0.0, None, ""
    for final in sorted(finals, key=lambda f: (f.start, f.utt)):
        if not final.text:
            continue
        moved = final.slide is not None and final.slide != slide
        if text and (final.start - last_end >= gap_s or final.start - start >= max_s or moved
                     or final.speaker != speaker):
            paragraphs.append((start, text, slide, speaker))
            text = ""
        if not text:
            start, speaker = final.start, final.speaker
        if final.slide is not None:
            slide = final.slide
        text = _glue(text, final.text)
        last_end = final.end
    if text:
        paragraphs.append((start, text, slide, speaker))
    return paragraphs


def to_transcript(finals: Sequence[Final], fmt: str, *, title: str = "", subtitle: str = "",
                  gap_s: float = 3.0, max_paragraph_s: float = 90.0,
                  slide_labels: Mapping[int, str] | None = None) -> str:
    """A plain-text (``txt``) or Markdown (``md``) transcript with ``[mm:ss]`` paragraph times.

    With ``slide_labels`` (slide number -> "Slide 7 · Backpropagation") the
    Markdown transcript has a ``##`` heading wherever the lecture moves to
    another slide (the slide each final was said on, from the journal).
    """
    paragraphs = _paragraphs(finals, gap_s, max_paragraph_s)
    if fmt == "txt":
        head = [title, ""] if title else []
        body = [f"[{fmt_clock(t)}] {_who(who)}{text}" for t, text, _, who in paragraphs]
        return "\n".join(head + ["\n\n".join(body)]).strip() + "\n"
    head = [f"# {_md(title)}", ""] if title else []
    if subtitle:
        head += [f"_{_md(subtitle)}_", ""]
    body, shown = [], None
    for t, text, slide, who in paragraphs:
        if slide_labels and slide is not None and slide != shown and slide in slide_labels:
            body.append(f"## {_md(slide_labels[slide])}")
            shown = slide
        name = f"**{_who(who).rstrip()}** " if who else ""
        body.append(f"**[{fmt_clock(t)}]** {name}{_md(text)}")
    return "\n".join(head + ["\n\n".join(body)]).strip() + "\n"


def _who(speaker: str) -> str:
    return f"{speaker_name(speaker)}: " if speaker else ""


def export_session(session_dir: Path | str, fmt: str, opts: SubtitleOptions | None = None, *,
                   translations: Mapping[int, str] | None = None, bilingual: bool = False,
                   slide_labels: Mapping[int, str] | None = None, layer: str = "best") -> str:
    """The export of one session folder in ``fmt`` (one of :data:`FORMATS`).

    ``layer``: the transcript exported, ``best`` (the polished layer when there is one) or ``live``.

    ``translations`` (``utt`` -> text, from ``translations.jsonl``): subtitles
    carry both texts when ``bilingual``; otherwise the export is translated.
    ``slide_labels`` (slide number -> label, from the session's deck) head the
    Markdown transcript's sections.

    Raises:
        EmptySessionError: the journal holds no readable caption.
        ValueError: an unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    folder = Path(session_dir)
    finals = require_finals(folder, "export", layer)
    if fmt in ("srt", "vtt"):
        return to_subtitles(finals, fmt, opts, translations=translations, bilingual=bilingual)
    if translations:
        finals = _translated(finals, translations)
    info = session_info(folder)
    when = info.started.strftime("%Y-%m-%d %H:%M") if info.started else ""
    facts = " · ".join(x for x in (when, fmt_duration(info.duration_s), f"{info.words} words") if x)
    title = f"Transcript — {folder.name}"
    if fmt == "txt":
        return to_transcript(finals, fmt, title=f"{title} ({facts})")
    return to_transcript(finals, fmt, title=title, subtitle=facts, slide_labels=slide_labels)
