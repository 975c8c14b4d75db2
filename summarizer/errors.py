"""The summarizer's exceptions: one small hierarchy, messages that say what to do next."""

from __future__ import annotations

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

#: exit code for "cannot run as configured" (no key, bad session): same as a usage error
EXIT_CONFIG = 2


class SummarizerError(Exception):
    """Base class; ``exit_code`` is what the ``notsound`` command should exit with."""

    exit_code = 1


class NoAPIKeyError(SummarizerError):
    """No LLM key in the environment or key file."""

    exit_code = EXIT_CONFIG


class SessionNotFoundError(SummarizerError):
    """SESSION is neither a session folder nor the name of one under the output folder."""

    exit_code = EXIT_CONFIG


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
