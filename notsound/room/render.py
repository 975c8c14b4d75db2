"""Notes and summaries as HTML for the lecture page: markdown-it, raw HTML off, times as seek links.

The text of ``notes.md`` and ``summary.md`` is written from the captions by a
model, so it is treated as untrusted: markdown-it-py's ``js-default`` preset
escapes every ``<`` of the text and makes no ``javascript:``/``data:`` link.
Each bracketed time, ``[12:34]``, ``[1:02:03]`` or a range ``[12:34–15:00]``,
outside a link becomes ``<a class="seek" href="#t=SECONDS" data-t="SECONDS">``
(a token rule, not a rewrite of the HTML, so no attribute is ever touched).
"""

from __future__ import annotations

import re
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

__all__ = ["render_markdown", "TIME_BRACKET", "seconds_of"]

_TIME = r"(?:\d{1,2}:)?\d{1,3}:[0-5]\d"
TIME_BRACKET = re.compile(rf"\[({_TIME})(?:\s*[–—-]\s*{_TIME})?\]")


def seconds_of(text: str) -> int:
    """Seconds of ``mm:ss`` or ``h:mm:ss``."""
    total = 0
    for part in text.split(":"):
        total = total * 60 + int(part)
    return total


def _split(token: Token) -> list[Token]:
    """A text token as text and seek-link tokens."""
    out: list[Token] = []
    at = 0
    for match in TIME_BRACKET.finditer(token.content):
        if match.start() > at:
            out.append(_text(token.content[at:match.start()]))
        seconds = str(seconds_of(match.group(1)))
        link = Token("link_open", "a", 1)
        link.attrs = {"class": "seek", "href": f"#t={seconds}", "data-t": seconds}
        out += [link, _text(match.group(0)), Token("link_close", "a", -1)]
        at = match.end()
    if at < len(token.content):
        out.append(_text(token.content[at:]))
    return out


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _seek_links(state) -> None:
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children, depth = [], 0
        for child in block.children:
            depth += child.type == "link_open"
            depth -= child.type == "link_close"
            if child.type == "text" and depth == 0 and TIME_BRACKET.search(child.content):
                children += _split(child)
            else:
                children.append(child)
        block.children = children


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("js-default")
    md.core.ruler.push("seek_links", _seek_links)
    return md


def render_markdown(markdown: str) -> str:
    """``markdown`` as safe HTML with its bracketed times as seek links."""
    return _parser().render(markdown)
