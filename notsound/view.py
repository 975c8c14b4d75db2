"""The live caption view in the terminal (rich).

Two modes:

* **terminal** - a :class:`rich.live.Live` area at the bottom of the screen holds
  the current partial (dimmed) and a status line; notices are printed once above it.
  Finals are printed *above* it with ``console.print``, so they scroll into the
  terminal's scrollback and are not limited by the screen height. Finals close
  together in time flow into one paragraph under one ``[mm:ss]`` timestamp
  (each final starts a new line, indented under the paragraph's text); a
  longer pause starts a new paragraph after a blank line.
* **plain** - when stdout is not a terminal (or when asked): one line
  ``[mm:ss] text`` per final, flushed at once, no partials, no status, no ANSI
  codes; notices go to stderr.

All methods are meant to be called from the asyncio event loop thread. Rich's
refresh thread only *reads* the view's state; every update replaces immutable
values, so no lock is needed.
"""

from __future__ import annotations

import math
import re
import statistics
import sys
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.text import Text

from common.script import count_words
from library.folder import speaker_name
from wire.protocol import Caption, Partial

__all__ = ["STATES", "ViewOptions", "CaptionView", "format_timestamp", "format_speed", "count_words"]

#: Connection states :meth:`CaptionView.set_state` accepts.
STATES = ("connecting", "live", "reconnecting", "draining", "closed")

_STATE_STYLE = {
    "connecting": ("◌", "yellow"),
    "live": ("●", "bold green"),
    "reconnecting": ("◌", "bold yellow"),
    "draining": ("◍", "cyan"),
    "closed": ("○", "dim"),
}
#: How audio events are shown; ``None`` hides the event ("Speech" is no event).
_EVENT_LABELS: dict[str, str | None] = {"BGM": "Music", "Speech": None}
_TIMESTAMP_STYLE = "cyan"
_PARTIAL_STYLE = "dim"
_EVENT_STYLE = "dim italic"
_AUDIENCE_STYLE = "bold magenta"
#: longest state detail (engine and model) on the status line, in cells
_MAX_DETAIL = 36
_TRANSLATION_STYLE = "dim"


@dataclass(frozen=True)
class ViewOptions:
    """Options of :class:`CaptionView`.

    Attributes:
        paragraph_gap_s: a final that starts at least this long after the end
            of the previous one begins a new paragraph.
        max_paragraph_s: a paragraph that already spans this long is closed,
            so a long monologue still gets a timestamp now and then.
        refresh_per_second: redraw rate of the live area (terminal mode).
        auto_refresh: redraw from rich's timer thread; when False every update
            redraws at once (deterministic, used by tests).
        partial_lines: at most this many lines of the partial are shown (its
            newest words); older ones are elided.
        latency_window: p50 latency is taken over this many newest finals.
    """

    paragraph_gap_s: float = 3.0
    max_paragraph_s: float = 60.0
    refresh_per_second: float = 8.0
    auto_refresh: bool = True
    partial_lines: int = 3
    latency_window: int = 1000


def format_timestamp(seconds: float) -> str:
    """Session time as ``mm:ss`` below one hour, ``h:mm:ss`` from then on."""
    total = int(seconds) if math.isfinite(seconds) and seconds > 0 else 0
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def format_speed(audio_s: float, wall_s: float) -> str:
    """Audio seconds per wall second, ``12.4× real time`` (``–× real time`` before any)."""
    if not (math.isfinite(audio_s) and math.isfinite(wall_s)) or audio_s <= 0 or wall_s <= 0:
        return "–× real time"
    return f"{audio_s / wall_s:.1f}× real time"


def _one_line(text: str) -> str:
    """Caption text without control characters (no escape codes reach the tty)."""
    cleaned = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text
    )
    return " ".join(cleaned.split())


def _short_detail(detail: str) -> str:
    """A state's detail for the status line: paths named by their last part
    (``sensevoice /models/SenseVoiceSmall`` -> ``sensevoice SenseVoiceSmall``),
    at most :data:`_MAX_DETAIL` cells, so the latency and word count still fit."""
    words = (re.split(r"[\\/]", w.rstrip("/\\"))[-1] or w for w in _one_line(detail).split(" "))
    text = " ".join(words)
    if cell_len(text) > _MAX_DETAIL:
        text = set_cell_size(text, _MAX_DETAIL - 1) + "…"
    return text


def _audience_mark(caption: Caption) -> str:
    """``"Audience 2: "`` before a caption said by someone in the room; empty for the lecturer."""
    speaker = str(getattr(caption, "speaker", "") or "")
    return f"{speaker_name(speaker)}: " if speaker.startswith("audience-") else ""


def _event_labels(events: Iterable[str]) -> str:
    labels = []
    for event in events:
        label = _EVENT_LABELS.get(event, _one_line(event))
        if label and f"({label})" not in labels:
            labels.append(f"({label})")
    return " ".join(labels)


class _Hanging:
    """``label body`` with the body wrapped in a hanging indent and an aside
    (the audio events) right-aligned after its last line, never inside the body.

    With ``max_lines``, only the last lines of the body are kept (newest words
    of a partial), with an ellipsis in the margin.
    """

    def __init__(self, label: Text, body: Text, indent: int, aside: Text | None = None,
                 max_lines: int | None = None):
        self.label = label
        self.body = body
        self.indent = indent
        self.aside = aside
        self.max_lines = max_lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(1, options.max_width)
        indent = self.indent if width - self.indent >= 16 else 0
        lines: list[Text] = []
        if indent == 0 and self.label.plain:
            lines.append(self.label.copy())
        body_lines = list(self.body.wrap(console, width - indent, overflow="fold")) if self.body else []
        first_lead: Text | str = self.label if indent and self.label.plain else ""
        if self.max_lines is not None and len(body_lines) > self.max_lines:
            # Older words are elided; a mark in the margin says so.
            body_lines = body_lines[-max(1, self.max_lines):]
            first_lead = Text("…".rjust(indent - 1), style=self.body.style) if indent else ""
        for i, line in enumerate(body_lines):
            line.end = ""
            lead = first_lead if i == 0 else ""
            lines.append(Text.assemble(lead, " " * (indent - len(lead)), line))
        if self.aside:
            self._place_aside(lines, width, indent)
        for line in lines:
            line.rstrip()
            yield line

    def _place_aside(self, lines: list[Text], width: int, indent: int) -> None:
        aside = self.aside.copy()
        aside.truncate(max(1, width - indent), overflow="ellipsis")
        if not lines:
            lead = self.label if indent and self.label.plain else ""
            lines.append(Text.assemble(lead))
        last = lines[-1]
        last.rstrip()
        room = width - last.cell_len - aside.cell_len
        if room >= 2:
            lines[-1] = Text.assemble(last, " " * room, aside)
        else:
            lines.append(Text.assemble(" " * (width - aside.cell_len), aside))


class CaptionView:
    """Shows live captions; see the module docstring.

    Use it as a context manager (``with CaptionView() as view:``) or call
    :meth:`start` and :meth:`stop`. Updates before :meth:`start` are kept;
    finals print at once in either case.

    Args:
        console: where to draw; a new :class:`rich.console.Console` by default.
        plain: force plain (True) or terminal (False) mode; by default plain
            when the console is not an interactive terminal.
        options: see :class:`ViewOptions`.
        clock: returns the session time in seconds (shown in the status line);
            by default the seconds since :meth:`start`.
        fast: a run faster than real time (``live --fast``): the status line
            shows its speed (:meth:`set_pace`) instead of the caption latency,
            which there measures only the time queued behind the worker.
    """

    def __init__(self, console: Console | None = None, plain: bool | None = None, *,
                 options: ViewOptions | None = None,
                 clock: Callable[[], float] | None = None, fast: bool = False):
        self.console = console if console is not None else Console()
        self.plain = (
            plain if plain is not None
            else not self.console.is_terminal or self.console.is_dumb_terminal
        )
        self.options = options or ViewOptions()
        self._clock = clock
        self._started_at = time.monotonic()
        self._live: Live | None = None
        # State read by the renderer: immutable values, replaced on update.
        self._state = ("connecting", "")
        self._frozen_time: float | None = None
        self._partial: tuple[int, str] | None = None
        self._words = 0
        self._dropped_s = 0.0
        self._latency: tuple[float, float] | None = None  # (last, p50)
        self.fast = fast
        self._pace = (0.0, 0.0)  # (audio seconds captioned, wall seconds taken) of a fast run
        # Bookkeeping of finals.
        self._latencies: deque[float] = deque(maxlen=max(1, self.options.latency_window))
        self._final_utts: set[int] = set()
        self._max_final_utt = -1
        self._notices: set[str] = set()
        self._para: tuple[float, float, int, int] | None = None  # (start, last end, last utt, indent)
        self._para_mark = ""  # the audience mark of the paragraph's captions
        # Translation (``notsound live --translate``): the one streaming in, the queue's lag.
        self._translation: tuple[int, str] | None = None
        self._translation_lag: tuple[int, float, float] | None = None  # (waiting, oldest's wait, when)
        self._starts: dict[int, float] = {}  # start of the newest finals, to label a late translation

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> CaptionView:
        """Open the live area (terminal mode); plain mode has nothing to open."""
        if self._live is None and not self.plain:
            if self._clock is None:
                self._started_at = time.monotonic()
            self._live = Live(
                self,
                console=self.console,
                refresh_per_second=self.options.refresh_per_second,
                auto_refresh=self.options.auto_refresh,
                transient=True,
            )
            self._live.start(refresh=True)
        return self

    def stop(self) -> None:
        """Close the live area and print the last status line, which stays."""
        live, self._live = self._live, None
        if live is not None:
            live.stop()
            self.console.print(self._status())

    def __enter__(self) -> CaptionView:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- updates -------------------------------------------------------------

    def on_partial(self, partial: Partial) -> None:
        """Show ``partial`` in place of the previous one.

        Ignored when a final for its utterance (or a later one) has arrived,
        or when the partial shown belongs to a later utterance.
        """
        if self.plain or partial.utt <= self._max_final_utt:
            return
        if self._partial is not None and partial.utt < self._partial[0]:
            return
        text = _one_line(partial.text)
        self._partial = (partial.utt, text) if text else None
        self._changed()

    def on_final(self, caption: Caption, latency_s: float | None = None) -> None:
        """Print ``caption`` and drop its partial.

        Args:
            caption: the final.
            latency_s: seconds from the end of the utterance's speech to the
                arrival of this final, measured by the caller; None if unknown.
                A second final for the same ``utt`` (after a resume) is ignored.
        """
        if self._partial is not None and self._partial[0] <= caption.utt:
            self._partial = None
        if caption.utt in self._final_utts:
            self._changed()
            return
        self._final_utts.add(caption.utt)
        self._max_final_utt = max(self._max_final_utt, caption.utt)
        self._starts[caption.utt] = caption.start  # the newest last: a translation of another is late
        if len(self._starts) > 256:
            del self._starts[next(iter(self._starts))]
        if latency_s is not None and math.isfinite(latency_s):
            self._latencies.append(max(0.0, latency_s))
            self._latency = (self._latencies[-1], statistics.median(self._latencies))
        text = _one_line(caption.text)
        self._words += count_words(text)
        if self.plain:
            self._print_plain(caption, text)
            return
        events = _event_labels(caption.events)
        if text or events:
            self._print_final(caption, text, events)
        else:
            self._changed()

    def set_state(self, state: str, detail: str = "") -> None:
        """Set the connection state, one of :data:`STATES`.

        ``detail`` is shown in parentheses, e.g.
        ``set_state("reconnecting", "attempt 3")``.
        """
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}: use one of {', '.join(STATES)}")
        self._frozen_time = self.session_time() if state == "closed" else None
        self._state = (state, _short_detail(detail))
        self._changed()

    def set_pace(self, audio_s: float, wall_s: float) -> None:
        """A fast run has captioned ``audio_s`` seconds of audio in ``wall_s`` seconds (its status)."""
        self._pace = (float(audio_s), float(wall_s))
        self._changed()

    def set_dropped(self, seconds: float) -> None:
        """Set the total seconds of audio dropped so far (shown in the status)."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"dropped seconds must be a finite number >= 0, got {seconds!r}")
        self._dropped_s = float(seconds)
        self._changed()

    def notice(self, text: str) -> None:
        """Show a notice (e.g. "LLM notes off: set DEEPSEEK_API_KEY") once.

        Terminal mode prints it above the live area (it stays in the
        scrollback); plain mode writes it to stderr. The same text again is
        ignored.
        """
        text = _one_line(text)
        if not text or text in self._notices:
            return
        self._notices.add(text)
        if self.plain:
            print(text, file=sys.stderr, flush=True)
            return
        self.console.print(Text(text, style="yellow"))
        self._changed()

    def on_translation(self, utt: int, text: str | None) -> None:
        """Print the translation of final ``utt`` under it, dimmed (``None``: it has none).

        When later finals are printed already, the line is labelled with the
        time of its caption.
        """
        if self._translation is not None and self._translation[0] == utt:
            self._translation = None
        line = _one_line(text or "")
        if not line:
            self._changed()
            return
        late = utt != next(reversed(self._starts), None)
        if self.plain:  # "        ↳ text", or "        ↳ [mm:ss] text" under a later caption
            stamp = f"[{format_timestamp(self._starts.get(utt, 0.0))}] " if late else ""
            self.console.file.write(f"{' ' * len('[00:00]')} ↳ {stamp}{line}\n")
            self.console.file.flush()
            return
        indent = self._para[3] if self._para else len("[00:00] ")
        label = Text()
        if late or self._para is None:
            label = Text(f"↳ {format_timestamp(self._starts.get(utt, 0.0))}", style=_TRANSLATION_STYLE)
        self.console.print(_Hanging(label, Text(line, style=_TRANSLATION_STYLE), indent))

    def on_translation_partial(self, utt: int, text: str) -> None:
        """Show the translation of ``utt`` as it streams in (terminal mode, in the live area)."""
        if not self.plain:
            self._translation = (utt, _one_line(text))
            self._changed()

    def set_translation_lag(self, captions: int, seconds: float = 0.0, *, off: bool = False) -> None:
        """Captions waiting for translation and the oldest one's wait (shown in the status);
        ``off``: translation stopped for the session."""
        seconds = seconds if math.isfinite(seconds) else 0.0
        self._translation_lag = (-1 if off else max(0, int(captions)), seconds, time.monotonic())
        self._changed()

    # -- reading -------------------------------------------------------------

    @property
    def words(self) -> int:
        """Words in the finals shown so far."""
        return self._words

    @property
    def latency(self) -> tuple[float, float] | None:
        """``(last, p50)`` caption latency in seconds, None before the first."""
        return self._latency

    def session_time(self) -> float:
        """Seconds of session time now (frozen once the state is closed)."""
        if self._frozen_time is not None:
            return self._frozen_time
        if self._clock is not None:
            return self._clock()
        return time.monotonic() - self._started_at

    def render(self) -> RenderableType:
        """The live area: partial (if any), notice (if any), status line."""
        parts: list[RenderableType] = []
        partial = self._partial
        if partial is not None:
            indent = self._para[3] if self._para else len("[00:00] ")
            parts.append(_Hanging(Text(), Text(partial[1], style=_PARTIAL_STYLE), indent,
                                  max_lines=self._partial_lines()))
        translation = self._translation
        if translation is not None and translation[1]:
            indent = self._para[3] if self._para else len("[00:00] ")
            parts.append(_Hanging(Text(), Text(translation[1], style=_TRANSLATION_STYLE), indent, max_lines=2))
        parts.append(self._status())
        return Group(*parts)

    def __rich__(self) -> RenderableType:
        return self.render()

    # -- internals -----------------------------------------------------------

    def _changed(self) -> None:
        if self._live is not None and not self.options.auto_refresh:
            self._live.refresh()

    def _partial_lines(self) -> int:
        spare = self.console.size.height - 2
        return max(1, min(self.options.partial_lines, spare))

    def _print_plain(self, caption: Caption, text: str) -> None:
        if not text:
            return
        stream = self.console.file
        stream.write(f"[{format_timestamp(caption.start)}] {_audience_mark(caption)}{text}\n")
        stream.flush()

    def _print_final(self, caption: Caption, text: str, events: str) -> None:
        opts, para = self.options, self._para
        mark = _audience_mark(caption)
        new_paragraph = (
            para is None
            or mark != self._para_mark  # another speaker: a paragraph of their own
            or caption.utt < para[2]
            or caption.start - para[1] >= opts.paragraph_gap_s
            or caption.start - para[0] >= opts.max_paragraph_s
        )
        if new_paragraph:
            stamp = f"[{format_timestamp(caption.start)}]"
            indent = len(stamp) + 1
            self._para = (caption.start, caption.end, caption.utt, indent)
            label = Text(stamp, style=_TIMESTAMP_STYLE)
        else:
            assert para is not None
            indent = para[3]
            self._para = (para[0], max(para[1], caption.end), caption.utt, indent)
            label = Text()
        self._para_mark = mark
        body = Text.assemble((mark, _AUDIENCE_STYLE), text) if mark and new_paragraph else Text(text)
        block = _Hanging(label, body, indent,
                         aside=Text(events, style=_EVENT_STYLE) if events else None)
        # A print while Live runs also redraws the live area (the view itself).
        self.console.print(Group(Text(), block) if new_paragraph and para is not None else block)

    def _timing(self) -> Text:
        """How the captions keep up: a fast run's speed, else the caption latency."""
        if self.fast:
            speed = format_speed(*self._pace)
            return Text(speed, style="dim" if speed.startswith("–") else "")
        latency = self._latency
        if latency is None:
            return Text("latency –", style="dim")
        return Text(f"latency {latency[0]:.1f} s (p50 {latency[1]:.1f} s)")

    def _status(self) -> Text:
        state, detail = self._state
        mark, style = _STATE_STYLE[state]
        status = Text(no_wrap=True, overflow="ellipsis", end="\n")
        status.append(f"{mark} {state}", style=style)
        if detail:
            status.append(f" ({detail})", style=style)
        sep = (" │ ", "dim")
        status.append_text(Text.assemble(sep, format_timestamp(self.session_time())))
        dropped = Text(f"dropped {self._dropped_s:.1f} s")
        if self._dropped_s > 0:  # news: shown early, before it can be cropped
            dropped.stylize("bold red")
            status.append_text(Text.assemble(sep, dropped))
        status.append_text(Text.assemble(sep, self._timing()))
        behind, waited, since = self._translation_lag or (0, 0.0, 0.0)
        if behind > 0:  # news, like dropped audio: before the words; the oldest keeps waiting
            waited += time.monotonic() - since
            status.append_text(Text.assemble(sep, (f"translation {behind} behind ({waited:.0f} s)", "yellow")))
        status.append(*sep)
        status.append(f"{self._words:,} word{'' if self._words == 1 else 's'}")
        if self._dropped_s == 0:
            dropped.stylize("dim")
            status.append_text(Text.assemble(sep, dropped))
        if self._translation_lag is not None and behind <= 0:
            status.append_text(Text.assemble(sep, ("translation off" if behind else "translation up to date", "dim")))
        return status
