"""One notice per kind per session: to the live view's callback, or to the log without one."""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["Notices"]

log = logging.getLogger(__name__)


class Notices:
    """Says each kind of notice once ("LLM notes off: ...", "translation stopped: ...").

    With a ``notify`` callback (the terminal view) the notice goes there and
    to the log at INFO; without one it is logged as a warning. A failing
    callback is logged, never raised: notices never stop the work they report on.
    """

    def __init__(self, notify: Callable[[str], None] | None = None):
        self._notify = notify
        self._told: set[str] = set()

    def tell(self, kind: str, message: str) -> None:
        if kind in self._told:
            return
        self._told.add(kind)
        if self._notify is None:
            log.warning("%s", message)
            return
        log.info("%s", message)
        try:
            self._notify(message)
        except Exception:
            log.exception("notice callback failed")
