"""The terminal side of ``notsound ask``: one answer, or an interactive prompt.

Answers stream into a rich ``Live`` view (Markdown) when the output is a
terminal; when the answer is complete the view is replaced by the checked
answer (bad citations as plain text, anything secret withheld). Elsewhere the
checked answer is printed once, as plain text. The prompt reads lines on the
main thread between answers, so Ctrl-C and Ctrl-D behave as in any shell;
one event loop serves the whole conversation.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .ask import Answer, AskError, LectureChat, check_question, require_key
from .ask_cite import withhold
from .ask_library import ask_library
from .ask_prompts import ALL_SYSTEM, ASK_SYSTEM
from .errors import LLMFatalError, LLMTransientError
from .settings import AskSettings, LLMSettings

__all__ = ["run_ask", "run_ask_all", "AnswerView"]

log = logging.getLogger(__name__)

QUIT = ("/quit", "/exit", "/q")
#: control characters (terminal escape sequences) never written from an answer; tab and newline stay
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: seconds between re-renders of a streaming answer
REFRESH_S = 0.1


class AnswerView:
    """Shows one answer: streamed into a rich Live view, or printed plainly at the end.

    Args:
        console: a rich console (the terminal, or a capture console in tests).
        stream: stream the answer while it arrives (only sensible on a terminal).
        plain: where plain output goes when not streaming (default: the console).
    """

    def __init__(self, console, *, stream: bool, system: str, key: str, plain: TextIO | None = None):
        self.console, self.stream, self.plain = console, stream, plain
        self._system, self._key = system, key
        self._text = ""
        self._shown = 0.0
        self._live = None

    def __enter__(self) -> AnswerView:
        if self.stream:
            from rich.live import Live

            self._live = Live(console=self.console, auto_refresh=False, vertical_overflow="visible")
            self._live.start()
        return self

    def delta(self, piece: str) -> None:
        self._text += piece
        now = time.monotonic()
        if self._live is not None and now - self._shown >= REFRESH_S:  # re-render a few times a second
            self._shown = now
            self._live.update(self._render(withhold(self._text, key=self._key, system=self._system)), refresh=True)

    @staticmethod
    def _render(text: str):
        from rich.markdown import Markdown

        return Markdown(text)

    def done(self, answer: Answer) -> None:
        if self._live is not None:
            self._live.update(self._render(answer.text), refresh=True)
            self._live.stop()  # the checked answer stays; notes go below it
            self._live = None
        elif self.plain is not None:
            self.plain.write(_CONTROL.sub("", answer.text) + "\n")  # no escape sequences from the model
            self.plain.flush()
        else:
            self.console.print(answer.text, markup=False, highlight=False)
        if answer.dropped:
            times = ", ".join(answer.dropped)
            self.notice(f"{times} {'matches' if len(answer.dropped) == 1 else 'match'} no caption of the "
                        "transcript: shown as plain text, not as a citation")

    def notice(self, text: str) -> None:
        if self.plain is None:
            self.console.print(f"[dim]note: {text}[/dim]", highlight=False, soft_wrap=True)
        else:
            print(f"notsound: note: {text}", file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()


def _console(file: TextIO | None = None):
    from rich.console import Console

    return Console(file=file) if file is not None else Console()


def _cancel_pending(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what an interrupted answer (Ctrl-C) left running on ``loop``."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def _close(loop: asyncio.AbstractEventLoop) -> None:
    _cancel_pending(loop)
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def _streams(settings: AskSettings, stdout: TextIO) -> bool:
    return settings.stream and stdout.isatty()


def _one(loop, chat_ask, console, stdout: TextIO, settings, system: str, key: str) -> Answer:
    stream = _streams(settings, stdout)
    with AnswerView(console, stream=stream, system=system, key=key, plain=None if stream else stdout) as view:
        answer = loop.run_until_complete(chat_ask(view.delta if stream else None))
        view.done(answer)
    return answer


def run_ask(
    session_dir: Path,
    llm: LLMSettings,
    settings: AskSettings,
    api_key: str | None,
    question: str | None = None,
    *,
    new: bool = False,
    stdout: TextIO | None = None,
    console=None,
    read_line: Callable[[str], str] | None = None,
) -> int:
    """``notsound ask SESSION [QUESTION]``: one answer, or a conversation until EOF or ``/quit``.

    Returns the number of questions answered.

    Raises:
        NoAPIKeyError, QuestionError (one-shot), NothingToAskError, AskBusyError, LLMError.
    """
    key = require_key(api_key)
    if question is not None:
        question = check_question(question, settings)
    stdout = stdout or sys.stdout
    loop = asyncio.new_event_loop()
    chat = LectureChat(session_dir, llm, settings, key, new=new)
    try:
        loop.run_until_complete(chat.__aenter__())
        try:
            chat.finals()  # nothing to ask about: say so before any prompt
            if question is not None:
                console = console or _console(stdout)
                _one(loop, lambda d: chat.ask(question, d), console, stdout, settings, ASK_SYSTEM, key)
                return 1
            return _repl(loop, chat, console or _console(stdout), stdout, settings, key, read_line)
        finally:
            _cancel_pending(loop)
            loop.run_until_complete(chat.__aexit__(None, None, None))
    finally:
        _close(loop)


def _repl(loop, chat: LectureChat, console, stdout, settings: AskSettings, key: str, read_line) -> int:
    read_line = read_line or console.input
    earlier = chat.conversation.questions
    if chat.backup is not None:
        console.print(f"[dim]the earlier conversation is kept in {chat.backup.name}[/dim]", highlight=False)
    resumed = f"continuing after {earlier} earlier question{'s' * (earlier != 1)} (--new starts over); " \
        if earlier else ""
    console.print(f"[bold]Ask about {chat.folder.name}[/bold] [dim]{resumed}/quit or Ctrl-D to leave[/dim]",
                  highlight=False)
    answered = 0
    while True:
        try:
            line = read_line("[bold cyan]ask>[/bold cyan] ")
        except EOFError:
            console.print()
            return answered
        if line.strip().lower() in QUIT:
            return answered
        if not line.strip():
            continue
        try:
            _one(loop, lambda d, q=line: chat.ask(q, d), console, stdout, settings, ASK_SYSTEM, key)
            answered += 1
        except (AskError, LLMTransientError) as exc:  # this question failed; the next may work
            console.print(f"[red]{exc}[/red]", highlight=False)
        except LLMFatalError as exc:
            if exc.status not in (400, 422):  # the key or the model: no later question can work
                raise
            console.print(f"[red]the LLM refused this question ({exc.status}): {exc}[/red]", highlight=False)


def run_ask_all(
    out: Path | None,
    question: str,
    llm: LLMSettings,
    settings: AskSettings,
    api_key: str | None,
    *,
    stdout: TextIO | None = None,
    console=None,
) -> Answer:
    """``notsound ask --all QUESTION``: one answer across the lectures under ``out``."""
    key = require_key(api_key)
    question = check_question(question, settings)
    stdout = stdout or sys.stdout
    console = console or _console(stdout)
    loop = asyncio.new_event_loop()
    try:
        return _one(loop, lambda d: ask_library(out, question, llm, settings, key, d),
                    console, stdout, settings, ALL_SYSTEM, key)
    finally:
        _close(loop)
