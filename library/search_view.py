"""``notsound search`` and ``notsound index``: bring the index up to date, print hits or what was done.

Output of ``search``: one hit a line, best first — session, ``[mm:ss]``, the
kind when it is not a caption, and the snippet. To a terminal the matched
words are highlighted with rich; otherwise (a pipe, a file) they are put in
``[brackets]``, and ``--json`` prints a list of hit objects (snippets with
brackets, ``text`` as said). Exit status: 0 with hits, 1 without (like grep),
2 for bad input.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from common.errors import EXIT_USAGE

from .folder import DEFAULT_OUT, FolderError, fmt_clock, resolve_session
from .index import INDEX_NAME, UpdateStats, open_index
from .search import Hit, parse_since

__all__ = ["SearchUsageError", "clock", "search_command", "index_command", "format_plain", "format_json",
           "render_hits", "describe_update"]

#: highlight of matched words on a terminal (rich markup)
RICH_MARK = ("[bold yellow]", "[/]")
PLAIN_MARK = ("[", "]")
MAX_LIMIT = 1000


class SearchUsageError(FolderError):
    """A bad argument of ``search`` (date, limit, session outside the lectures folder)."""

    exit_code = EXIT_USAGE


def clock(seconds: float | None) -> str:
    """``mm:ss`` (``h:mm:ss`` from an hour on); ``--:--`` when there is no time."""
    return "--:--" if seconds is None else fmt_clock(seconds)


def _label(hit: Hit) -> str:
    return "" if hit.kind == "caption" else f"({hit.kind}) "


def format_plain(hits: Sequence[Hit]) -> str:
    """One line per hit: ``SESSION  [mm:ss]  (kind) snippet``."""
    return "".join(f"{h.session}  [{clock(h.start)}]  {_label(h)}{h.snippet}\n" for h in hits)


def format_json(hits: Sequence[Hit]) -> str:
    rows = [{**asdict(h), "time": clock(h.start) if h.start is not None else None} for h in hits]
    return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"


def render_hits(hits: Sequence[Hit], console: Any) -> None:
    """Print hits on a rich console (snippets must carry :data:`RICH_MARK` markup, text escaped)."""
    from rich.markup import escape

    for h in hits:
        console.print(f"[cyan]{escape(h.session)}[/]  [dim]\\[{clock(h.start)}][/]  "
                      f"[magenta]{escape(_label(h))}[/]{h.snippet}", highlight=False, soft_wrap=True)


def _session_name(session: str, out: Path) -> str:
    folder = resolve_session(session, out)
    if folder.resolve().parent != out.resolve():
        raise SearchUsageError(f"session {session!r} is not in the lectures folder {out}: "
                               f"pass --out {folder.parent}")
    return folder.name


def search_command(
    query: str,
    *,
    out: Path | None = None,
    session: str | None = None,
    since: str | None = None,
    as_json: bool = False,
    limit: int = 20,
    stdout: TextIO | None = None,
    console: Any = None,
) -> int:
    """Run ``notsound search``; returns the exit status. Errors are :class:`FolderError`\\ s."""
    stdout = stdout or sys.stdout
    out = Path(out).expanduser() if out else DEFAULT_OUT
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchUsageError(f"--limit must be between 1 and {MAX_LIMIT}, not {limit}")
    try:
        since_day: date | None = parse_since(since)
    except ValueError as exc:
        raise SearchUsageError(str(exc)) from None
    if not query.strip():
        raise SearchUsageError("the query is empty: give a word or two to search for")
    if not out.is_dir():
        print(f"no sessions in {out} yet: `notsound live` records one (or pass --out DIR)", file=sys.stderr)
        return 1
    name = _session_name(session, out) if session is not None else None
    rich = console is not None or (not as_json and stdout.isatty())
    mark = RICH_MARK if rich else PLAIN_MARK
    with open_index(out) as index:
        index.update()
        escape = _rich_escape() if rich else None
        hits = index.search(query, session=name, since=since_day, limit=limit, mark=mark, escape=escape)
    if as_json:
        stdout.write(format_json(hits))
    elif rich:
        render_hits(hits, console or _console(stdout))
    else:
        stdout.write(format_plain(hits))
    if not hits and not as_json:
        print(f"no matches for {query!r}", file=sys.stderr)
    return 0 if hits else 1


def _rich_escape():
    from rich.markup import escape

    return escape


def _console(stdout: TextIO) -> Any:
    from rich.console import Console

    return Console(file=stdout)


def describe_update(stats: UpdateStats, path: Path, rows: int) -> str:
    """What ``notsound index`` did, in one line."""
    why = {"missing": "created", "corrupt": "rebuilt (the old file was damaged)",
           "schema": "rebuilt (older format)", "rebuild": "rebuilt"}.get(stats.rebuilt, "updated")
    try:
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if ".broken" not in p.name)
    except OSError:
        size = 0
    return (f"{path}: {why} in {stats.seconds:.1f} s: {stats.sessions} sessions, {stats.changed} changed, "
            f"{stats.removed} removed; +{stats.captions} captions, +{stats.sections} notes/summary sections; "
            f"{rows} rows, {size / 1e6:.1f} MB")


def index_command(*, out: Path | None = None, rebuild: bool = False, stdout: TextIO | None = None) -> int:
    """Run ``notsound index [--rebuild]``; returns the exit status."""
    stdout = stdout or sys.stdout
    out = Path(out).expanduser() if out else DEFAULT_OUT
    if not out.is_dir():
        raise SearchUsageError(f"no lectures folder {out}: `notsound live` makes one (or pass --out DIR)")
    with open_index(out) as index:
        stats = index.rebuild() if rebuild else index.update()
        stdout.write(describe_update(stats, out / INDEX_NAME, index.count()) + "\n")
    return 0
