"""What a stream's core asks of its driver: the actions :class:`live.stream.StreamCore` returns.

Each is a frozen value; the driver carries them out in the order given. Jobs and
tickets are the core's names for a final decode and for the open utterance a
partial is for; the driver reports outcomes under them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models import NO_HINTS, DecodeHints
from wire.protocol import Message

__all__ = ["Send", "SubmitFinal", "CancelFinal", "RequestPartial", "SubmitPolish", "CancelPolish", "Close",
           "Action"]


@dataclass(frozen=True)
class Send:
    """Queue ``message`` for the client, behind everything queued before it."""

    message: Message


@dataclass(frozen=True)
class SubmitFinal:
    """Decode ``audio`` (utterance ``utt``) at final priority and report the outcome as ``job``
    (:meth:`StreamCore.final_decoded`, :meth:`StreamCore.final_failed`)."""

    job: int
    utt: int
    audio: np.ndarray = field(compare=False, repr=False)
    language: str = "auto"
    hints: DecodeHints = NO_HINTS


@dataclass(frozen=True)
class CancelFinal:
    """Withdraw decode ``job``: its outcome no longer matters and is not to be reported."""

    job: int


@dataclass(frozen=True)
class RequestPartial:
    """Ask for a partial of the open utterance ``utt`` (it replaces an older request of the
    same number); ``ticket`` names that utterance in :meth:`StreamCore.partial_decoded`
    and :meth:`StreamCore.partial_stale`; ``samples``: the utterance's samples the audio
    ends at, reported back with the partial."""

    utt: int
    ticket: int
    audio: np.ndarray = field(compare=False, repr=False)
    language: str = "auto"
    hints: DecodeHints = NO_HINTS
    samples: int = 0


@dataclass(frozen=True)
class SubmitPolish:
    """Decode the polish window ``audio`` at the lowest priority (``Engine.transcribe_long``) and
    report the outcome as ``job`` (:meth:`StreamCore.polish_decoded`, :meth:`StreamCore.polish_failed`)."""

    job: int
    audio: np.ndarray = field(compare=False, repr=False)
    language: str = "auto"
    hints: DecodeHints = NO_HINTS


@dataclass(frozen=True)
class CancelPolish:
    """Withdraw polish decode ``job``: its outcome is not to be reported."""

    job: int


@dataclass(frozen=True)
class Close:
    """Close the connection with ``code`` and ``reason`` once everything queued before it is
    sent. It is the last action of a stream."""

    code: int
    reason: str


Action = Send | SubmitFinal | CancelFinal | RequestPartial | SubmitPolish | CancelPolish | Close
