"""The root of every error a user can meet, and the exit codes the ``notsound`` command uses.

Each package keeps its own small hierarchy (``FolderError``, ``EngineError``,
``SummarizerError`` ...); each of their roots derives from
:class:`NotSoundError`, so the command catches one class and prints its
message as one line. ``exit_code`` is a class attribute, overridable for one
error with ``exit_code=`` at construction.
"""

from __future__ import annotations

__all__ = ["EXIT_ERROR", "EXIT_USAGE", "NotSoundError"]

#: the run failed (worker unreachable, engine broken, disk full ...)
EXIT_ERROR = 1
#: it cannot run as asked or configured (bad flag or setting, no such session, no API key)
EXIT_USAGE = 2


class NotSoundError(Exception):
    """A failure to report as one line with an exit code, no traceback; the message says what to do."""

    exit_code: int = EXIT_ERROR

    def __init__(self, *args: object, exit_code: int | None = None):
        super().__init__(*args)
        if exit_code is not None:
            self.exit_code = exit_code
