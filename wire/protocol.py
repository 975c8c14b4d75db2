"""Wire protocol v1 between the capture client and the caption worker.

This module is the only place where the message format exists. Text frames are
JSON objects keyed by ``type``; binary frames are little-endian int16 mono PCM
at 16 kHz for the utterance that is currently open.

Client -> worker: :class:`Hello`, :class:`Start`, audio (``bytes``), :class:`Pause`,
:class:`End`, :class:`Bye`, :class:`Polish`, :class:`PolishEnd`. Worker -> client:
:class:`Ready`, :class:`Partial`, :class:`Commit`, :class:`Caption` (``type: final``),
:class:`Polished`, :class:`Error`.

Optional features are offered by the worker in ``ready.features`` and used by
a client only when offered; a client that uses none gets the plain v1
behaviour, and a worker that offers none never receives them (a v1 worker
without the feature rejects the unknown message type). Features:

- ``"pause"`` (early finals): ``{"type":"pause","utt":N,"samples":K}`` says
  that the speech of the open utterance N has stopped and its ``K`` samples
  sent so far are the whole utterance if the pause holds (the client's VAD
  has scored the padding after the speech but not yet the full pause that
  ends an utterance). The worker starts the final decode of exactly those
  samples at final priority and sends its text as a ``partial`` at once.
  When ``end`` follows with no audio after the pause, that result is the
  final (no second decode); when audio follows instead (speech resumed), the
  speculative decode is dropped. ``K`` must equal the samples the worker has
  for N (error ``bad_pause`` otherwise). Sending ``pause`` again after more
  audio is fine; at most one is outstanding per utterance. The worker may
  ignore a pause (no error): it starts at most 8 early decodes an utterance,
  each after at least 0.5 s of new audio; the final then comes as without it.
- ``"commit"`` (settled words of a long open utterance): the worker may send
  ``{"type":"commit","utt":N,"samples":K,"text":"..."}`` while N is open:
  the first ``K`` samples of N are final as ``text``, and N's ``final`` will
  begin with exactly that text (never taken back; a later commit of N has a
  larger ``K`` and extends the text). The worker decodes only the audio after
  ``K`` from then on. A client keeps the last commit of N with N's audio and,
  when it sends N again after a reconnect, says so in ``start``:
  ``{"type":"start","utt":N,"t":T,"commit_samples":K,"commit_text":"..."}``
  (audio from sample 0 as before), so the final still begins with the text
  shown before. A worker offers it when its engine times its words (whisper),
  and sends commits only to a client that asked with ``"features":["commit"]``
  in ``hello`` (an older client would log every commit as an unknown type). A
  client sends the ``commit_*`` fields only to a worker that offers the
  feature; one that does not decodes the utterance whole.
- ``"vocabulary"`` (recognition hints): ``hello`` may carry
  ``"vocabulary": ["term", ...]`` (at most ``MAX_VOCABULARY`` terms of at
  most ``MAX_TERM`` characters, e.g. from the lecture's slides). A worker
  that offers the feature (it does when its engine takes hints: whisper
  hotwords, not SenseVoice) passes them to the engine; a worker without it
  ignores the field, so a client may always send it and learns from
  ``ready`` whether it is used.
- ``"polish"`` (after-class jobs, ``notsound polish --server``):
  ``{"type":"polish","job":J,"offset":S,"language":"en","context":"...","vocabulary":[...]}``
  opens polish job ``J`` (a window of a recording that begins ``S`` seconds
  into the session; ``context`` at most ``MAX_CONTEXT`` characters of the
  text before it, ``vocabulary`` as in ``hello``); the binary frames that
  follow are the window's PCM, at most ``MAX_POLISH_S`` seconds in at most
  ``MAX_POLISH_FRAMES`` frames; ``{"type":"polish_end","job":J}`` closes it.
  The worker owes exactly one answer for each job it accepted:
  ``{"type":"polished","job":J,"offset":S,"segments":[{"start":s,"end":e,"text":"...",
  "lang":"en","words":[["word",s,e],...]},...]}`` with times in seconds into
  the window (``offset`` echoed), or ``{"type":"error","job":J,"code":...,
  "message":...}`` for that job alone (the connection goes on). Polish is
  the worker's lowest priority: its decodes run only when no final waits,
  no partial is due and no stream has an utterance open. A connection has
  at most ``MAX_POLISH_JOBS`` jobs owed (open or decoding): one more is
  error ``too_many_jobs`` and close 4009; a window over the limits is
  ``window_too_long`` and close 4003. Polish audio is not charged to the
  real-time audio allowance (a polish sends as fast as the worker answers)
  and its audio frames not to the message rate: the jobs owed bound it. A
  polish job is opened only while no utterance is, and the reverse
  (``utterance_open``, ``polish_open``); the idle timeout waits while a job
  is owed, and ``bye`` waits for the jobs owed like for finals.

Close codes (WebSocket close frames sent by the worker):

=====  ==========================  =============================================
code   name                        meaning
=====  ==========================  =============================================
1000   CLOSE_NORMAL                ``bye`` handled, every owed final delivered
1001   CLOSE_GOING_AWAY            worker shutting down; finals owed were sent
1007   (websockets)                a text frame that is not UTF-8
1009   (websockets)                a frame larger than the worker reads at all
4000   CLOSE_PROTOCOL_ERROR        malformed frame or message out of order
4001   CLOSE_UNSUPPORTED_VERSION   ``hello.protocol`` is not 1
4002   CLOSE_FRAME_TOO_LARGE       text or audio frame over its size limit
4003   CLOSE_UTTERANCE_TOO_LONG    utterance audio over ``max_utterance_s``
4004   CLOSE_RATE_LIMITED          audio faster than real time, or too many messages
4005   CLOSE_IDLE                  nothing received for too long
4006   CLOSE_TOO_MANY_STREAMS      concurrent streams per key exceeded
4007   CLOSE_KEY_REVOKED           the key of this stream was revoked
4008   CLOSE_ENGINE_FAILURE        the ASR engine failed; reconnect and resend
4009   CLOSE_OVERLOADED            too much audio queued on this connection
=====  ==========================  =============================================
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from common.audio import BYTES_PER_SAMPLE, SAMPLE_RATE
from common.errors import NotSoundError

__all__ = [
    "PROTOCOL_VERSION",
    "SAMPLE_RATE",
    "MAX_AUDIO_FRAME_BYTES",
    "MAX_TEXT_FRAME_BYTES",
    "MAX_SESSION_NAME",
    "MAX_CODE",
    "CLOSE_NORMAL",
    "CLOSE_GOING_AWAY",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_UNSUPPORTED_VERSION",
    "CLOSE_FRAME_TOO_LARGE",
    "CLOSE_UTTERANCE_TOO_LONG",
    "CLOSE_RATE_LIMITED",
    "CLOSE_IDLE",
    "CLOSE_TOO_MANY_STREAMS",
    "CLOSE_KEY_REVOKED",
    "CLOSE_ENGINE_FAILURE",
    "CLOSE_OVERLOADED",
    "CLOSE_REASONS",
    "ProtocolError",
    "Hello",
    "Ready",
    "Start",
    "End",
    "Pause",
    "Bye",
    "FEATURE_PAUSE",
    "FEATURE_VOCABULARY",
    "MAX_VOCABULARY",
    "MAX_TERM",
    "clean_vocabulary",
    "FEATURE_POLISH",
    "FEATURE_COMMIT",
    "MAX_COMMIT_TEXT",
    "FEATURES",
    "MAX_POLISH_S",
    "MAX_POLISH_FRAMES",
    "MAX_POLISH_JOBS",
    "MAX_CONTEXT",
    "Polish",
    "PolishEnd",
    "Polished",
    "PolishSegment",
    "Partial",
    "Commit",
    "Caption",
    "Error",
    "Message",
    "encode",
    "encode_caption",
    "decode",
    "decode_client",
    "decode_worker",
    "check_audio",
    "caption_from_dict",
]

PROTOCOL_VERSION = 1
#: One second of int16 mono audio at 16 kHz.
MAX_AUDIO_FRAME_BYTES = SAMPLE_RATE * BYTES_PER_SAMPLE
#: Upper bound of any JSON text frame; a final of a 30 s utterance fits easily.
MAX_TEXT_FRAME_BYTES = 64 * 1024
MAX_SESSION_NAME = 128
MAX_LANGUAGE = 16
MAX_CODE = 64
MAX_EVENTS = 16
MAX_FEATURES = 16
MAX_SAMPLES = 3600 * SAMPLE_RATE

#: ``ready.features``: the worker accepts ``pause`` (early finals)
FEATURE_PAUSE = "pause"
#: ``ready.features``: the worker uses ``hello.vocabulary``
FEATURE_VOCABULARY = "vocabulary"
#: ``ready.features``: the worker takes polish jobs (``polish``, ``polish_end``)
FEATURE_POLISH = "polish"
#: ``ready.features`` and ``hello.features``: settled words are committed while an utterance is open
FEATURE_COMMIT = "commit"
#: every optional feature this module knows
FEATURES = (FEATURE_PAUSE, FEATURE_VOCABULARY, FEATURE_POLISH, FEATURE_COMMIT)
#: longest committed text of one utterance (``commit.text``, ``start.commit_text``)
MAX_COMMIT_TEXT = 16 * 1024
#: longest polish window, and the most audio frames it may come in
MAX_POLISH_S = 30.0
MAX_POLISH_FRAMES = 32
#: polish jobs one connection may owe at once (open, or accepted and not yet answered)
MAX_POLISH_JOBS = 2
#: longest ``polish.context``
MAX_CONTEXT = 1000
#: segments of one ``polished`` answer, and words of one segment, at most
MAX_SEGMENTS = 256
MAX_WORDS = 1024
MAX_VOCABULARY = 100
MAX_TERM = 64
#: Utterance numbers and times beyond these are nonsense, not lectures.
MAX_UTT = 2**53
MAX_TIME_S = 10 * 24 * 3600.0

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 4000
CLOSE_UNSUPPORTED_VERSION = 4001
CLOSE_FRAME_TOO_LARGE = 4002
CLOSE_UTTERANCE_TOO_LONG = 4003
CLOSE_RATE_LIMITED = 4004
CLOSE_IDLE = 4005
CLOSE_TOO_MANY_STREAMS = 4006
CLOSE_KEY_REVOKED = 4007
CLOSE_ENGINE_FAILURE = 4008
CLOSE_OVERLOADED = 4009

CLOSE_REASONS = {
    CLOSE_NORMAL: "bye",
    CLOSE_GOING_AWAY: "worker shutting down",
    CLOSE_PROTOCOL_ERROR: "protocol error",
    CLOSE_UNSUPPORTED_VERSION: "unsupported protocol version",
    CLOSE_FRAME_TOO_LARGE: "frame too large",
    CLOSE_UTTERANCE_TOO_LONG: "utterance too long",
    CLOSE_RATE_LIMITED: "rate limited",
    CLOSE_IDLE: "idle timeout",
    CLOSE_TOO_MANY_STREAMS: "too many streams for this key",
    CLOSE_KEY_REVOKED: "key revoked",
    CLOSE_ENGINE_FAILURE: "engine failure",
    CLOSE_OVERLOADED: "overloaded",
}


class ProtocolError(NotSoundError, ValueError):
    """A frame that is not a valid v1 message.

    Attributes:
        code: short machine-readable reason, sent back in an ``error`` message.
        close_code: the WebSocket close code to use when the error is fatal.
    """

    def __init__(self, message: str, code: str = "bad_message", close_code: int = CLOSE_PROTOCOL_ERROR):
        super().__init__(message)
        self.code = code
        self.close_code = close_code


@dataclass(frozen=True)
class Hello:
    """Client greeting: opens (or resumes) a session."""

    session: str
    protocol: int = PROTOCOL_VERSION
    sample_rate: int = SAMPLE_RATE
    language: str = "auto"
    #: terms likely to be said (feature ``vocabulary``); sent only when not empty
    vocabulary: tuple[str, ...] = ()
    #: features the client takes from the worker (``commit``); sent only when not empty
    features: tuple[str, ...] = ()
    type: str = field(default="hello", init=False, repr=False)


@dataclass(frozen=True)
class Ready:
    """Worker answer to :class:`Hello`."""

    engine: str
    model: str
    max_utterance_s: float
    protocol: int = PROTOCOL_VERSION
    #: optional features the worker accepts (see the module doc); unknown ones are ignored
    features: tuple[str, ...] = ()
    type: str = field(default="ready", init=False, repr=False)


@dataclass(frozen=True)
class Start:
    """Opens utterance ``utt``, which began ``t`` seconds after the session began.

    ``commit_samples`` / ``commit_text`` (feature ``commit``, sent only when
    ``commit_samples`` is not 0): an earlier connection committed the first
    ``commit_samples`` samples of this utterance as ``commit_text``.
    """

    utt: int
    t: float
    commit_samples: int = 0
    commit_text: str = ""
    type: str = field(default="start", init=False, repr=False)


@dataclass(frozen=True)
class End:
    """Closes utterance ``utt``; the worker owes exactly one final for it."""

    utt: int
    type: str = field(default="end", init=False, repr=False)


@dataclass(frozen=True)
class Pause:
    """The open utterance ``utt`` may have ended after its first ``samples`` samples
    (feature ``pause``: the worker decodes them as a final at once)."""

    utt: int
    samples: int
    type: str = field(default="pause", init=False, repr=False)


@dataclass(frozen=True)
class Bye:
    """Client is done: the worker sends the finals still owed, then closes 1000."""

    type: str = field(default="bye", init=False, repr=False)


@dataclass(frozen=True)
class Partial:
    """Provisional text of an utterance that is open or queued."""

    utt: int
    text: str
    type: str = field(default="partial", init=False, repr=False)


@dataclass(frozen=True)
class Commit:
    """The first ``samples`` samples of open utterance ``utt`` are final as ``text``
    (feature ``commit``): its final begins with exactly this text."""

    utt: int
    samples: int
    text: str
    type: str = field(default="commit", init=False, repr=False)


@dataclass(frozen=True)
class Caption:
    """The final caption of one utterance (wire ``type: final``).

    The journal's ``library.journal.Final`` is this caption plus the capture
    side's fields; :meth:`to_dict` and :func:`encode` write both, so a journal
    line is this message byte for byte, then those fields.

    Attributes:
        utt: utterance number, increasing within a session.
        start: seconds since the session began when the utterance started.
        end: seconds since the session began when it ended.
        text: clean caption text (no engine tags, no emoji).
        lang: detected or requested language code ("en", "zh", ...).
        emotion: speaker emotion label where the engine gives one ("NEUTRAL", ...).
        events: audio events heard in the utterance ("BGM", "Laughter", ...).
    """

    utt: int
    start: float
    end: float
    text: str
    lang: str = ""
    emotion: str = ""
    events: tuple[str, ...] = ()

    @property
    def type(self) -> str:
        return "final"

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this caption: the one field order and rounding of a final."""
        return {
            "type": "final",
            "utt": self.utt,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "text": self.text,
            "lang": self.lang,
            "emotion": self.emotion,
            "events": list(self.events),
        }


@dataclass(frozen=True)
class Error:
    """Worker complaint about a message; fatal ones are followed by a close.

    ``job`` is set (feature ``polish``) for the error of one polish job alone, which
    no close follows; it is left out of the frame otherwise.
    """

    code: str
    message: str
    job: int | None = None
    type: str = field(default="error", init=False, repr=False)


@dataclass(frozen=True)
class Polish:
    """Opens polish job ``job`` (feature ``polish``): the window's audio follows, then
    :class:`PolishEnd`. ``offset``: the window's start in session seconds (echoed)."""

    job: int
    offset: float
    language: str = "auto"
    #: the text before the window (the engine's prompt), at most ``MAX_CONTEXT`` characters
    context: str = ""
    vocabulary: tuple[str, ...] = ()
    type: str = field(default="polish", init=False, repr=False)


@dataclass(frozen=True)
class PolishEnd:
    """The audio of polish job ``job`` is complete: the worker owes one answer for it."""

    job: int
    type: str = field(default="polish_end", init=False, repr=False)


@dataclass(frozen=True)
class PolishSegment:
    """One decoded stretch of a polish window; times in seconds into the window."""

    start: float
    end: float
    text: str
    lang: str = ""
    words: tuple[tuple[str, float, float], ...] = ()


@dataclass(frozen=True)
class Polished:
    """The answer to polish job ``job``: its segments, in order."""

    job: int
    offset: float
    segments: tuple[PolishSegment, ...] = ()
    type: str = field(default="polished", init=False, repr=False)


Message = (Hello | Ready | Start | End | Pause | Bye | Polish | PolishEnd | Partial | Commit | Caption | Polished
           | Error)

_CLIENT_TYPES = frozenset({"hello", "start", "end", "pause", "bye", "polish", "polish_end"})
_WORKER_TYPES = frozenset({"ready", "partial", "commit", "final", "polished", "error"})


def encode(message: Message | bytes) -> str | bytes:
    """Encode a message as a text frame (JSON) or pass audio through as bytes."""
    if isinstance(message, (bytes, bytearray, memoryview)):
        data = bytes(message)
        check_audio(data)
        return data
    if isinstance(message, Caption):
        return encode_caption(message)
    payload = asdict(message)
    payload = {"type": payload.pop("type"), **payload}
    if isinstance(message, Ready):
        payload["features"] = list(message.features)
    if isinstance(message, Hello):
        for key in ("vocabulary", "features"):
            if getattr(message, key):
                payload[key] = list(getattr(message, key))
            else:
                del payload[key]
    if isinstance(message, Start) and not message.commit_samples:
        del payload["commit_samples"], payload["commit_text"]
    if isinstance(message, Error) and message.job is None:
        del payload["job"]
    if isinstance(message, Polish):
        payload["vocabulary"] = list(message.vocabulary)
    if isinstance(message, Polished):
        payload["segments"] = [{"start": seg.start, "end": seg.end, "text": seg.text, "lang": seg.lang,
                                "words": [list(w) for w in seg.words]} for seg in message.segments]
    return _dumps(payload)


def encode_caption(caption: Caption) -> str:
    """The text frame of a final; a subclass's :meth:`~Caption.to_dict` adds its fields after them."""
    return _dumps(caption.to_dict())


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def check_audio(data: bytes) -> None:
    """Raise :class:`ProtocolError` unless ``data`` is a valid audio frame."""
    if len(data) > MAX_AUDIO_FRAME_BYTES:
        raise ProtocolError(
            f"audio frame of {len(data)} bytes is over the limit of {MAX_AUDIO_FRAME_BYTES} (1 s)",
            code="frame_too_large",
            close_code=CLOSE_FRAME_TOO_LARGE,
        )
    if len(data) % 2:
        raise ProtocolError(
            f"audio frame of {len(data)} bytes is not whole int16 samples",
            code="odd_audio_frame",
        )


def decode(frame: str | bytes, *, allowed: frozenset[str] | None = None) -> Message | bytes:
    """Decode one frame. Binary frames come back as ``bytes`` after validation.

    Raises:
        ProtocolError: for anything that is not a valid v1 message.
    """
    if isinstance(frame, (bytes, bytearray, memoryview)):
        data = bytes(frame)
        check_audio(data)
        return data
    if not isinstance(frame, str):
        raise ProtocolError(f"frame of type {type(frame).__name__} is neither text nor bytes")
    # A character is 1-4 bytes in UTF-8: encode only when the length is in doubt.
    if len(frame) > MAX_TEXT_FRAME_BYTES or (
        len(frame) * 4 > MAX_TEXT_FRAME_BYTES and len(frame.encode("utf-8", "surrogatepass")) > MAX_TEXT_FRAME_BYTES
    ):
        raise ProtocolError(
            f"text frame is over the limit of {MAX_TEXT_FRAME_BYTES} bytes",
            code="frame_too_large",
            close_code=CLOSE_FRAME_TOO_LARGE,
        )
    try:
        obj = json.loads(frame)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"text frame is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("text frame must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("message has no string field 'type'")
    if allowed is not None and kind not in allowed:
        raise ProtocolError(f"unexpected message type {kind!r}", code="unexpected_type")
    parser = _PARSERS.get(kind)
    if parser is None:
        raise ProtocolError(f"unknown message type {kind!r}", code="unknown_type")
    return parser(obj)


def decode_client(frame: str | bytes) -> Message | bytes:
    """Decode a frame the worker received: only client messages and audio are valid."""
    return decode(frame, allowed=_CLIENT_TYPES)


def decode_worker(frame: str | bytes) -> Message:
    """Decode a frame the client received: only worker messages are valid."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        raise ProtocolError("the worker never sends binary frames")
    msg = decode(frame, allowed=_WORKER_TYPES)
    assert not isinstance(msg, bytes)
    return msg


# -- field readers ---------------------------------------------------------


def _int(obj: dict, key: str, lo: int = 0, hi: int = MAX_UTT, default: Any = ...) -> int:
    if key not in obj:
        if default is ...:
            raise ProtocolError(f"{obj.get('type')} message lacks field {key!r}", code="missing_field")
        return default
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"field {key!r} must be an integer", code="bad_field")
    if not lo <= value <= hi:
        raise ProtocolError(f"field {key!r}={value} is outside {lo}..{hi}", code="bad_field")
    return value


def _float(obj: dict, key: str, lo: float = 0.0, hi: float = MAX_TIME_S) -> float:
    if key not in obj:
        raise ProtocolError(f"{obj.get('type')} message lacks field {key!r}", code="missing_field")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"field {key!r} must be a number", code="bad_field")
    try:
        value = float(value)
    except OverflowError:  # an integer too large for a float
        raise ProtocolError(f"field {key!r} is outside {lo}..{hi}", code="bad_field") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ProtocolError(f"field {key!r}={value} is outside {lo}..{hi}", code="bad_field")
    return value


def _str(obj: dict, key: str, max_len: int = MAX_TEXT_FRAME_BYTES, default: Any = ...) -> str:
    if key not in obj:
        if default is ...:
            raise ProtocolError(f"{obj.get('type')} message lacks field {key!r}", code="missing_field")
        return default
    value = obj[key]
    if not isinstance(value, str):
        raise ProtocolError(f"field {key!r} must be a string", code="bad_field")
    if len(value) > max_len:
        raise ProtocolError(f"field {key!r} is longer than {max_len} characters", code="bad_field")
    return value


def _session_name(obj: dict) -> str:
    name = _str(obj, "session", MAX_SESSION_NAME)
    if not name or not all(c.isalnum() or c in "-_.:" for c in name) or name.startswith("."):
        raise ProtocolError(
            "field 'session' must be 1-128 letters, digits, '-', '_', '.', ':' (not starting with '.')",
            code="bad_field",
        )
    return name


def _parse_hello(obj: dict) -> Hello:
    version = _int(obj, "protocol", 0, 1_000_000)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol {version} is not supported; this worker speaks {PROTOCOL_VERSION}",
            code="unsupported_version",
            close_code=CLOSE_UNSUPPORTED_VERSION,
        )
    rate = _int(obj, "sample_rate", 1, 1_000_000, default=SAMPLE_RATE)
    if rate != SAMPLE_RATE:
        raise ProtocolError(f"sample_rate must be {SAMPLE_RATE}, got {rate}", code="bad_field")
    language = _str(obj, "language", MAX_LANGUAGE, default="auto") or "auto"
    return Hello(session=_session_name(obj), protocol=version, sample_rate=rate, language=language,
                 vocabulary=_vocabulary(obj), features=_short_strings(obj, "features", MAX_FEATURES))


def _parse_ready(obj: dict) -> Ready:
    version = _int(obj, "protocol", 0, 1_000_000)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"worker speaks protocol {version}, this client speaks {PROTOCOL_VERSION}",
            code="unsupported_version",
            close_code=CLOSE_UNSUPPORTED_VERSION,
        )
    return Ready(
        engine=_str(obj, "engine", 256),
        model=_str(obj, "model", 4096),
        max_utterance_s=_float(obj, "max_utterance_s", 0.0, 3600.0),
        protocol=version,
        features=_short_strings(obj, "features", MAX_FEATURES),
    )


def _short_strings(obj: dict, key: str, max_items: int, max_len: int = MAX_CODE) -> tuple[str, ...]:
    items = obj.get(key, [])
    if not isinstance(items, list) or len(items) > max_items:
        raise ProtocolError(f"field {key!r} must be a list of at most {max_items} strings", code="bad_field")
    if not all(isinstance(e, str) and len(e) <= max_len for e in items):
        raise ProtocolError(f"field {key!r} must hold strings of at most {max_len} characters", code="bad_field")
    return tuple(items)


def clean_vocabulary(terms: Iterable[object]) -> tuple[str, ...]:
    """The terms a worker accepts in ``hello.vocabulary``, in order: stripped, printable,
    non-blank, at most ``MAX_TERM`` characters, no repeats, at most ``MAX_VOCABULARY``."""
    out: list[str] = []
    seen: set[str] = set()
    for term in terms:
        if not isinstance(term, str):
            continue
        term = term.strip()
        if term and len(term) <= MAX_TERM and term.isprintable() and term not in seen:
            seen.add(term)
            out.append(term)
            if len(out) == MAX_VOCABULARY:
                break
    return tuple(out)


def _vocabulary(obj: dict) -> tuple[str, ...]:
    terms = _short_strings(obj, "vocabulary", MAX_VOCABULARY, MAX_TERM)
    if not all(t.strip() and t.isprintable() for t in terms):
        raise ProtocolError("field 'vocabulary' must hold printable, non-blank terms", code="bad_field")
    return tuple(t.strip() for t in terms)


def _parse_events(obj: dict) -> tuple[str, ...]:
    return _short_strings(obj, "events", MAX_EVENTS)


def _parse_final(obj: dict) -> Caption:
    start = _float(obj, "start")
    end = _float(obj, "end")
    if end < start:
        raise ProtocolError(f"final ends ({end}) before it starts ({start})", code="bad_field")
    return Caption(
        utt=_int(obj, "utt"),
        start=start,
        end=end,
        text=_str(obj, "text"),
        lang=_str(obj, "lang", MAX_LANGUAGE, default=""),
        emotion=_str(obj, "emotion", MAX_CODE, default=""),
        events=_parse_events(obj),
    )


def _parse_polish(obj: dict) -> Polish:
    return Polish(job=_int(obj, "job"), offset=_float(obj, "offset"),
                  language=_str(obj, "language", MAX_LANGUAGE, default="auto") or "auto",
                  context=_str(obj, "context", MAX_CONTEXT, default=""), vocabulary=_vocabulary(obj))


def _list(obj: dict, key: str, max_items: int) -> list:
    items = obj.get(key, [])
    if not isinstance(items, list) or len(items) > max_items:
        raise ProtocolError(f"field {key!r} must be a list of at most {max_items} items", code="bad_field")
    return items


def _parse_word(item: object) -> tuple[str, float, float]:
    if not (isinstance(item, list) and len(item) == 3):
        raise ProtocolError("a word must be [text, start, end]", code="bad_field")
    word = _str({"w": item[0]}, "w", 256)
    start, end = (_float({"t": t}, "t") for t in item[1:])
    return word, start, end


def _parse_segment(item: object) -> PolishSegment:
    if not isinstance(item, dict):
        raise ProtocolError("a segment must be a JSON object", code="bad_field")
    return PolishSegment(start=_float(item, "start"), end=_float(item, "end"), text=_str(item, "text"),
                         lang=_str(item, "lang", MAX_LANGUAGE, default=""),
                         words=tuple(_parse_word(w) for w in _list(item, "words", MAX_WORDS)))


def _parse_polished(obj: dict) -> Polished:
    return Polished(job=_int(obj, "job"), offset=_float(obj, "offset"),
                    segments=tuple(_parse_segment(s) for s in _list(obj, "segments", MAX_SEGMENTS)))


def _parse_error(obj: dict) -> Error:
    return Error(code=_str(obj, "code", MAX_CODE), message=_str(obj, "message", 4096),
                 job=_int(obj, "job", default=None))


_PARSERS = {
    "hello": _parse_hello,
    "ready": _parse_ready,
    "start": lambda o: Start(utt=_int(o, "utt"), t=_float(o, "t"),
                             commit_samples=_int(o, "commit_samples", 0, MAX_SAMPLES, default=0),
                             commit_text=_str(o, "commit_text", MAX_COMMIT_TEXT, default="")),
    "end": lambda o: End(utt=_int(o, "utt")),
    "pause": lambda o: Pause(utt=_int(o, "utt"), samples=_int(o, "samples", 0, MAX_SAMPLES)),
    "bye": lambda o: Bye(),
    "partial": lambda o: Partial(utt=_int(o, "utt"), text=_str(o, "text")),
    "commit": lambda o: Commit(utt=_int(o, "utt"), samples=_int(o, "samples", 1, MAX_SAMPLES),
                               text=_str(o, "text", MAX_COMMIT_TEXT)),
    "final": _parse_final,
    "polish": _parse_polish,
    "polish_end": lambda o: PolishEnd(job=_int(o, "job")),
    "polished": _parse_polished,
    "error": _parse_error,
}


def caption_from_dict(obj: dict) -> Caption:
    """Read a journal line's object (``type`` optional) as a :class:`Caption`."""
    if not isinstance(obj, dict):
        raise ProtocolError("caption must be a JSON object")
    return _parse_final({"type": "final", **obj})

