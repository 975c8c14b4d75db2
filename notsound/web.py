"""The web side's settings and helpers: ``--web [HOST:]PORT``, token files, links and QR codes.

The server itself is the lecture room (:mod:`notsound.room`): one Starlette
app on uvicorn that serves the library, the lecture pages and, in
``notsound live --web``, the live caption page and its feed
(:mod:`notsound.web_feed`). This module holds what the CLI checks before
anything starts and what the terminal prints.
"""

from __future__ import annotations

import contextlib
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import NotSoundError
from common.limits import is_loopback
from common.secret_file import SecretFileError, read_secret_file

from .web_feed import FeedLimits

__all__ = ["WebError", "WebSettings", "parse_web_address", "read_token_file", "is_loopback",
           "lan_address", "terminal_qr"]

_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")


class WebError(NotSoundError, RuntimeError):
    """The room (or the caption page) cannot be served as asked; the message says what to change."""


@dataclass(frozen=True)
class WebSettings:
    """The web server of ``notsound live --web`` and ``notsound open``.

    Attributes:
        host / port: address to bind; port 0 picks a free one.
        token: the viewer token required off loopback (empty: none, allowed
            only on loopback).
        owner_token: the lecturer's token off loopback (ask, exports); empty:
            nobody off this machine may ask or export.
        limits: per-feed and per-viewer bounds (:class:`FeedLimits`).
        send_buffer_bytes: kernel send buffer of each viewer's socket.
        write_limit: bytes buffered for a viewer before its sender waits.
        max_frame_bytes: largest frame a page may send (it needs to send none).
        incoming_per_s / incoming_burst: frames a page may send; more closes it.
        notes_poll_s: how often ``notes.md`` is checked for changes.
        ping_interval_s: keepalive pings; a page that does not answer is closed.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    token: str = field(default="", repr=False)
    owner_token: str = field(default="", repr=False)
    limits: FeedLimits = FeedLimits()
    send_buffer_bytes: int = 64 * 1024
    write_limit: int = 32 * 1024
    max_frame_bytes: int = 1024
    incoming_per_s: float = 1.0
    incoming_burst: int = 8
    notes_poll_s: float = 2.0
    ping_interval_s: float = 20.0


def parse_web_address(spec: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` as ``(host, port)``; host defaults to loopback."""
    text = str(spec).strip()
    host, port = "127.0.0.1", text
    if text.startswith("["):
        end = text.find("]:")
        if end < 0:
            raise WebError(f"--web {spec!r}: write an IPv6 address as [ADDR]:PORT")
        host, port = text[1:end], text[end + 2:]
    elif ":" in text:
        host, port = text.rsplit(":", 1)
    if not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise WebError(f"--web {spec!r}: expected [HOST:]PORT with a port from 0 to 65535, e.g. 8080 "
                       "or 0.0.0.0:8080")
    return host, int(port)


def read_token_file(path: Path) -> str:
    """A token (viewer or owner): the first line of ``path`` (16-128 of A-Z a-z 0-9 _ -)."""
    try:
        first = read_secret_file(path, "token")
    except SecretFileError as exc:
        raise WebError(str(exc)) from None
    if not _TOKEN.fullmatch(first):
        raise WebError(f"token file {path}: its first line must be 16-128 characters of "
                       "A-Z a-z 0-9 _ - (it goes into the page's URL)")
    return first


def lan_address() -> str:
    """This machine's address on the local network, for the link students open."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        return s.getsockname()[0]
    return socket.gethostname()


def terminal_qr(url: str) -> str:
    """``url`` as a QR code drawn with block characters, for the terminal."""
    import io

    import segno

    out = io.StringIO()
    segno.make(url, error="l").terminal(out=out, compact=True, border=2)
    return out.getvalue()
