"""Cleaning of SenseVoice's rich output into a :class:`~models.base.Transcript`.

SenseVoice decodes every clip to a string such as::

    <|en|><|NEUTRAL|><|BGM|><|withitn|>Hello there.

and a clip that was decoded in several pieces carries one tag group per piece::

    <|zh|><|HAPPY|><|Speech|><|withitn|>你好。<|zh|><|NEUTRAL|><|Laughter|><|woitn|>再见

:func:`parse_sensevoice` keeps the words, moves the language, emotion and audio
events into their own fields, and removes tags it does not know and any emoji
(FunASR's ``rich_transcription_postprocess`` writes emotions and events as emoji).
"""

from __future__ import annotations

import re

from common.script import unspaced

from .base import Transcript

__all__ = [
    "LANGUAGES",
    "EMOTIONS",
    "EVENTS",
    "parse_sensevoice",
    "strip_emoji",
    "join_pieces",
]

#: language tags SenseVoice emits (``nospeech`` is reported as no language)
LANGUAGES = frozenset({"zh", "en", "yue", "ja", "ko"})
#: emotion tags (``EMO_UNKNOWN`` is reported as no emotion)
EMOTIONS = frozenset({"HAPPY", "SAD", "ANGRY", "NEUTRAL", "FEARFUL", "DISGUSTED", "SURPRISED"})
#: audio event tags worth reporting (``Speech`` is implied by the text itself)
EVENTS = frozenset(
    {"BGM", "Applause", "Laughter", "Cry", "Sneeze", "Breath", "Cough", "Sing", "Speech_Noise"}
)

_TAG = re.compile(r"<\|([^|<>]*)\|>")
# leftovers of a malformed tag: a cut-off "<|en" at the end, a lone "<|" or "|>"
_TAG_DEBRIS = re.compile(r"<\|[A-Za-z_]*$|<\||\|>")

_EMOJI = re.compile(
    "[0-9#*]\ufe0f?\u20e3"  # keycap sequences such as 1️⃣
    "|["
    "\U0001f000-\U0001faff"  # mahjong .. symbols & pictographs extended-A (incl. skin tones)
    "\U0001fb00-\U0001fbff"  # symbols for legacy computing
    "\U000e0020-\U000e007f"  # tag characters (flag sequences)
    "\u2600-\u27bf"  # miscellaneous symbols, dingbats
    "\u2b00-\u2bff"  # miscellaneous symbols and arrows (⭐ ⬛)
    "\u231a\u231b\u2328\u23cf\u23e9-\u23f3\u23f8-\u23fa"  # emoji in miscellaneous technical
    "\u200d\u20e3\ufe0e\ufe0f"  # zero-width joiner, keycap, variation selectors
    "]+"
)



def strip_emoji(text: str) -> str:
    """``text`` without emoji and emoji modifiers; CJK text and punctuation stay."""
    return _EMOJI.sub("", text)


def join_pieces(pieces: list[str]) -> str:
    """Join decoded pieces: no space between two pieces of CJK text, one space otherwise."""
    joined = ""
    for piece in pieces:
        if not piece:
            continue
        if joined and not (unspaced(joined[-1]) and unspaced(piece[0])):
            joined += " "
        joined += piece
    return joined


def _clean(piece: str) -> str:
    piece = _TAG_DEBRIS.sub("", strip_emoji(piece))
    return " ".join(piece.split())


def parse_sensevoice(raw: str) -> Transcript:
    """Split SenseVoice's raw output into clean text, language, emotion and events.

    The language and the emotion are the first ones tagged (``nospeech`` and
    ``EMO_UNKNOWN`` count as none); events are every tagged event except
    ``Speech``, in order of first appearance, each once.
    """
    lang = emotion = ""
    events: list[str] = []
    pieces: list[str] = []
    pos = 0
    for match in _TAG.finditer(raw):
        pieces.append(_clean(raw[pos : match.start()]))
        pos = match.end()
        tag = match.group(1)
        if tag in LANGUAGES:
            lang = lang or tag
        elif tag in EMOTIONS:
            emotion = emotion or tag
        elif tag in EVENTS and tag not in events:
            events.append(tag)
    pieces.append(_clean(raw[pos:]))
    return Transcript(text=join_pieces(pieces), lang=lang, emotion=emotion, events=tuple(events))
