"""The summarizer's exceptions: one small hierarchy, messages that say what to do next."""

from __future__ import annotations

from common.errors import EXIT_USAGE, NotSoundError
from library.folder import SessionNotFoundError  # one class for a missing session, the library's

__all__ = [
    "SummarizerError",
    "NoAPIKeyError",
    "SessionNotFoundError",
    "LLMError",
    "LLMFatalError",
    "LLMTransientError",
    "LLMOutputError",
    "SummaryError",
]


class SummarizerError(NotSoundError):
    """Base class of the summarizer's errors."""


class NoAPIKeyError(SummarizerError):
    """No LLM key in the environment or key file."""

    exit_code = EXIT_USAGE


class LLMError(SummarizerError):
    """An LLM call that did not produce an answer."""


class LLMFatalError(LLMError):
    """A failure that repeating will not fix (bad key, no balance, unknown model).

    The notes task stops calling the LLM for the rest of the session after one.

    Attributes:
        status: the HTTP status of the answer (401, 402, 403, 404, ...).
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class LLMTransientError(LLMError):
    """A failure worth retrying later: timeout, deadline, connection, 429/5xx after retries."""


class LLMOutputError(LLMError):
    """The model answered, but the answer failed the sanity check."""


class SummaryError(SummarizerError):
    """The final summary could not be written."""
