"""The rules of one stream, without I/O: frames and engine outcomes in, actions out.

:class:`StreamCore` decides everything one connection needs decided: the
protocol's order (hello first, one open utterance, ``end`` and ``pause`` of
the open one only), the limits (utterance length, audio and message rate,
frame sizes through :func:`wire.protocol.decode_client`), when to ask for a
partial and when silence holds it back, the early decodes a ``pause`` starts,
the context tail given to the engine, the words of a long open utterance
committed as they settle (feature ``commit``), finals in the order their
utterances ended, the resend rule, the drain on ``bye`` or shutdown, and the backlog that
backpressure reads; polish jobs (feature ``polish``) by the rules of
:mod:`live.polish_jobs`. It never awaits, sends, logs or reads a clock of its own:
each input returns the :mod:`live.actions` to carry out, in order
(:class:`live.session.StreamSession` does, over a WebSocket), so it can be
driven and fuzzed without sockets.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from common.limits import TokenBucket
from models import DecodeHints, Segment, Transcript
from models.text import join_pieces
from wire.protocol import (
    CLOSE_ENGINE_FAILURE,
    CLOSE_GOING_AWAY,
    CLOSE_IDLE,
    CLOSE_NORMAL,
    CLOSE_RATE_LIMITED,
    CLOSE_UTTERANCE_TOO_LONG,
    FEATURE_COMMIT,
    FEATURE_PAUSE,
    FEATURE_POLISH,
    FEATURE_VOCABULARY,
    MAX_COMMIT_TEXT,
    MAX_TEXT_FRAME_BYTES,
    SAMPLE_RATE,
    Bye,
    Caption,
    Commit,
    End,
    Error,
    Hello,
    Message,
    Partial,
    Pause,
    Polish,
    PolishEnd,
    ProtocolError,
    Ready,
    Start,
    decode_client,
)

from .actions import Action, CancelFinal, Close, RequestPartial, Send, SubmitFinal, SubmitPolish
from .polish_jobs import PolishJobs

__all__ = ["PARTIAL_BACKLOG", "CONTEXT_CHARS", "QUIET_RATIO", "MAX_EARLY_DECODES", "EARLY_DECODE_GAP_S",
           "TRAILING_QUIET_S", "MIN_COMMIT_S", "COMMIT_MARGIN_S", "StreamLimits", "StreamCore", "settled_prefix",
           "cut_point"]

#: messages waiting to be sent beyond which new partials are dropped
PARTIAL_BACKLOG = 4
#: characters of a stream's recent finals given to the engine as context
CONTEXT_CHARS = 200
#: a frame this far (power ratio) under the utterance's loudest is silence: -20 dB
QUIET_RATIO = 0.01
#: early decodes of one utterance at most, and the new audio each needs after the last:
#: a pause costs a final-priority decode, so a client cannot buy them with 2-byte frames
MAX_EARLY_DECODES = 8
EARLY_DECODE_GAP_S = 0.5
#: a run of silence this long after speech that no partial has shown asks for one at once:
#: the words before it are whole now (the end of a sentence, even in a short pause). Longer
#: than the closure of a stop consonant inside a word, shorter than a pause between sentences
TRAILING_QUIET_S = 0.1
#: a committed piece is at least this long, and ends at least this far before the audio decoded
MIN_COMMIT_S = 0.8
COMMIT_MARGIN_S = 0.3
#: the last character of a word that ends a sentence or a clause (closing quotes and brackets
#: aside; not "..."): greedy whisper often ends a sentence followed at once by the next with a
#: comma, so a clause end is a place to cut as well
_BOUNDARY = re.compile(r"(?<!\.)[.?!,;:。？！，；：][\"'”’)\]]*$")
_NOT_WORD = re.compile(r"[^\w']+")


def _norm(word: str) -> str:
    return _NOT_WORD.sub("", word.lower())


def settled_prefix(previous: list[str], newest: list[str]) -> int:
    """Words of ``newest`` up to the last sentence or clause end both hypotheses agree
    on, with at least one agreed word after it (0: none). Hypotheses are words of
    consecutive decodes of the same growing audio: what two of them agree on has settled
    (the LocalAgreement policy), and an end followed by more agreed words was not the
    decode's guess at where the audio stops."""
    agreed = 0
    for a, b in zip(previous, newest, strict=False):
        if _norm(a) != _norm(b) or not _norm(a):
            break
        agreed += 1
    for i in range(agreed - 2, -1, -1):
        if _BOUNDARY.search(newest[i]) and _BOUNDARY.search(previous[i]):
            return i + 1
    return 0


def cut_point(words: tuple[tuple[str, float, float], ...], settled: list[str],
              duration_s: float) -> tuple[int, float] | None:
    """Where a final decode of the open audio (``words`` with times, ``duration_s`` long)
    may be cut at the end the partials settled on: ``settled`` is their words up to that
    end and the one word after it. The decode must have the same two words around a
    sentence or clause end, about as many words in (a beam search may word the text a
    little otherwise; that is what its accuracy is for). Returns the decode's words
    before the cut and the cut's time, halfway between the last word and the next; None
    when the decode has no such end or the cut would be too close to either end."""
    if len(settled) < 2:
        return None
    last, after, n = _norm(settled[-2]), _norm(settled[-1]), len(settled) - 1
    slack = max(3, n // 4)
    found = [j + 1 for j in range(len(words) - 1)
             if _norm(words[j][0]) == last and _norm(words[j + 1][0]) == after
             and _BOUNDARY.search(words[j][0].strip()) and abs(j + 1 - n) <= slack]
    if not found:
        return None
    k = min(found, key=lambda j: abs(j - n))
    cut = (words[k - 1][2] + words[k][1]) / 2
    if not MIN_COMMIT_S <= cut <= duration_s - COMMIT_MARGIN_S:
        return None
    return k, cut


@dataclass(frozen=True)
class StreamLimits:
    """Per-connection limits.

    Attributes:
        max_utterance_s: longest utterance accepted; longer closes with 4003.
        max_frame_bytes: largest frame websockets reads at all (beyond it the
            connection closes with 1009); frames under it but over the
            protocol's limits (64 KiB text, 32,000 bytes audio) get an error
            and close 4002.
        max_queue_frames: frames buffered before the reader stops reading.
        audio_rate: audio accepted per second of wall time, as a multiple of
            real time (0: no limit); beyond it the stream closes with 4004.
        audio_burst_s: seconds of audio that may arrive at once (a resend
            after a reconnect), on top of ``audio_rate``.
        messages_per_s / message_burst: frames of any kind per second; 4004.
        idle_timeout_s: close with 4005 after this long without a frame (0: never).
        max_owed: finals a stream may owe before the worker stops reading
            from it until some are delivered (TCP backpressure, no error).
    """

    max_utterance_s: float = 30.0
    max_frame_bytes: int = 2 * MAX_TEXT_FRAME_BYTES
    max_queue_frames: int = 16
    audio_rate: float = 2.0
    audio_burst_s: float = 60.0
    messages_per_s: float = 50.0
    message_burst: float = 200.0
    idle_timeout_s: float = 300.0
    max_owed: int = 32


# -- state -----------------------------------------------------------------------


class _Open:
    """The open utterance: its audio so far, partial cadence, silence gate, early decodes."""

    def __init__(self, utt: int, start: float, ticket: int):
        self.utt = utt
        self.start = start
        self.ticket = ticket
        self.chunks: list[np.ndarray] = []
        self.samples = 0
        self.partial_at = 0
        self.peak = 0.0  # mean power of the loudest frame so far
        self.quiet = False  # the newest frame is silence next to the loudest
        self.quiet_from: int | None = None  # samples where the run of quiet frames began
        self.speculative: tuple[int, int] | None = None  # (samples, job) of a pause's decode
        self.early_decodes = 0
        self.early_at = 0  # samples when the last early decode started
        self.base = 0  # samples committed: decodes start here (feature commit)
        self.committed = ""  # their text
        self.hypothesis: list[str] = []  # words of the newest partial of the audio after base
        # (job, settled words and the one after them, samples) of a commit decode
        self.committing: tuple[int, list[str], int] | None = None
        self.commit_tried = 0  # settled words of the last commit decode that did not agree

    def add(self, pcm: np.ndarray) -> None:
        self.chunks.append(pcm)
        self.samples += len(pcm)
        if len(pcm):
            power = float(np.mean(np.square(pcm, dtype=np.float64)))
            self.peak = max(self.peak, power)
            self.quiet = power < QUIET_RATIO * self.peak
            if not self.quiet:
                self.quiet_from = None
            elif self.quiet_from is None:
                self.quiet_from = self.samples - len(pcm)

    def audio(self) -> np.ndarray:
        """The audio after what is committed (all of it without commits)."""
        if not self.chunks:
            return np.zeros(0, dtype=np.int16)
        if len(self.chunks) > 1:
            self.chunks = [np.concatenate(self.chunks)]
        return self.chunks[0][self.base:]


@dataclass(frozen=True)
class _Owed:
    """The final owed for one ended utterance."""

    job: int
    start: float
    end: float
    committed: str = ""  # text committed before the decode's audio
    ticket: int = -1  # of the utterance's partials: one decoding as it ended is still shown


class StreamCore:
    """The state machine of one stream. Every input returns the actions it calls for.

    Args:
        limits: the connection's limits.
        offer: the ``ready`` that answers ``hello``; its features are the ones accepted.
        partial_interval_s: seconds of new audio between partials of an utterance
            that is so many seconds long (the scheduler's cadence).
        clock: seconds, monotonic; the rate limits read it.
    """

    def __init__(self, limits: StreamLimits, offer: Ready,
                 partial_interval_s: Callable[[float], float],
                 clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self.offer = offer
        self.hello: Hello | None = None
        self.context = ""  # tail of this stream's recent finals
        self.audio_s = 0.0
        self.failure: Error | None = None  # the error that ended the stream
        self.closed = False  # the close is out: nothing follows
        self._partial_interval_s = partial_interval_s
        self._open: _Open | None = None
        self._owed: dict[int, _Owed] = {}  # by utterance number, in the order they ended
        self._outcomes: dict[int, Transcript | None] = {}  # by job; None: the engine failed
        self._queued = 0  # messages sent out and not yet taken to be written
        self._bye = False
        self._drain_code: int | None = None
        self._awaited: set[int] = set()  # jobs the drain waits for
        self._jobs = itertools.count()
        self._polish = PolishJobs(self._jobs)  # decode numbers shared with finals: one namespace
        self._tickets = itertools.count()
        self._actions: list[Action] = []
        self._audio_bucket = TokenBucket(limits.audio_rate, limits.audio_burst_s, clock)
        self._message_bucket = TokenBucket(limits.messages_per_s, limits.message_burst, clock)

    # -- what the driver reads ---------------------------------------------

    @property
    def name(self) -> str:
        return self.hello.session if self.hello else "?"

    @property
    def language(self) -> str:
        return self.hello.language if self.hello else "auto"

    @property
    def accepting(self) -> bool:
        """Whether frames are still read: not after ``bye`` or the close."""
        return not (self.closed or self._bye)

    @property
    def idle_timeout_s(self) -> float | None:
        """How long to wait for a frame before :meth:`idle` (None: for ever)."""
        return self.limits.idle_timeout_s or None

    @property
    def owed(self) -> tuple[int, ...]:
        """Utterances whose final is owed (decoding, or decoded and waiting its turn)."""
        return tuple(self._owed)

    @property
    def backlog(self) -> int:
        """Finals owed plus messages not yet taken to be written."""
        return len(self._owed) + self._queued

    @property
    def utterance_open(self) -> bool:
        """Whether an utterance is open (a final may be asked for at any moment)."""
        return self._open is not None

    @property
    def commits(self) -> bool:
        """Whether this stream gets commits: offered, and asked for in ``hello``."""
        return (self.hello is not None and FEATURE_COMMIT in self.offer.features
                and FEATURE_COMMIT in self.hello.features)

    @property
    def polish_owed(self) -> int:
        """Polish jobs owed an answer (open, or decoding)."""
        return self._polish.owed

    def partial_stale(self, ticket: int) -> bool:
        """Whether a partial of ``ticket`` is no news: its utterance's final is sent, or a
        pause's decode of the open audio is shown. (A partial of an utterance that ended
        meanwhile is still worth showing until its final comes.)"""
        utt = self._open
        if self.closed:
            return True
        if utt is not None and utt.ticket == ticket:
            return self._speculated(utt)
        return self._ended(ticket) is None

    # -- inputs --------------------------------------------------------------

    def receive(self, frame: str | bytes) -> list[Action]:
        """One frame from the client."""
        return self._step(self._receive, frame)

    def idle(self) -> list[Action]:
        """Nothing arrived for :attr:`idle_timeout_s`."""
        return self._step(self._on_idle)

    def taken(self) -> None:
        """The driver took the oldest message it was sent, to write it."""
        self._queued -= 1

    def final_decoded(self, job: int, result: Transcript) -> list[Action]:
        return self._step(self._on_decoded, job, result)

    def final_failed(self, job: int) -> list[Action]:
        """The engine failed on ``job``; the stream fails too if that was an owed final."""
        return self._step(self._on_failed, job)

    def partial_decoded(self, ticket: int, text: str, samples: int | None = None) -> list[Action]:
        """The partial of ``ticket``'s audio up to sample ``samples`` of the utterance."""
        return self._step(self._on_partial, ticket, text, samples)

    def polish_decoded(self, job: int, segments: list[Segment]) -> list[Action]:
        return self._step(self._on_polished, job, segments)

    def polish_failed(self, job: int, reason: str) -> list[Action]:
        """The engine failed on polish decode ``job``: an error for that job alone."""
        return self._step(self._on_polish_failed, job, reason)

    def drain(self, code: int = CLOSE_GOING_AWAY) -> list[Action]:
        """Close with ``code`` once the finals owed now are sent (shutdown)."""
        return self._step(self._start_drain, code)

    def give_up(self) -> list[Action]:
        """The drain took too long: withdraw what it waits for and close now."""
        return self._step(self._give_up)

    def refuse(self, code: str, message: str, close_code: int) -> list[Action]:
        """Fail the stream from outside (a limit on the key, a revoked key)."""
        return self._step(self._fail, code, message, close_code)

    def _step(self, handle: Callable[..., None], *args: object) -> list[Action]:
        if not self.closed:
            try:
                handle(*args)
            except ProtocolError as exc:
                self._fail(exc.code, str(exc), exc.close_code)
            if self._drain_code is not None and not self._awaited and not self.closed:
                self._close(self._drain_code, "bye" if self._drain_code == CLOSE_NORMAL
                            else "worker shutting down")
        actions, self._actions = self._actions, []
        return actions

    # -- messages ------------------------------------------------------------

    def _receive(self, frame: str | bytes) -> None:
        if self._bye:
            return  # not read after bye
        polish_audio = isinstance(frame, (bytes, bytearray, memoryview)) and self._polish.open is not None
        if not polish_audio and not self._message_bucket.take():  # polish audio: the jobs owed bound it
            raise ProtocolError(f"more than {self.limits.messages_per_s:g} messages per second",
                                code="rate_limited", close_code=CLOSE_RATE_LIMITED)
        msg = decode_client(frame)
        if isinstance(msg, bytes):
            self._on_audio(msg)
        elif isinstance(msg, Hello):
            self._on_hello(msg)
        elif self.hello is None:
            raise ProtocolError(f"{msg.type} before hello", code="no_hello")
        elif isinstance(msg, Start):
            self._on_start(msg)
        elif isinstance(msg, End):
            self._on_end(msg)
        elif isinstance(msg, Pause):
            self._on_pause(msg)
        elif isinstance(msg, Bye):
            self._bye = True
            self._start_drain(CLOSE_NORMAL)
        elif isinstance(msg, (Polish, PolishEnd)):
            self._on_polish(msg)

    def _on_idle(self) -> None:
        if not self._bye and not self._polish.owed:  # after bye nothing is awaited; a polish client waits
            self._fail("idle", f"nothing received for {self.limits.idle_timeout_s:g} s", CLOSE_IDLE)

    def _on_hello(self, msg: Hello) -> None:
        if self.hello is not None:
            raise ProtocolError("second hello on one connection", code="duplicate_hello")
        self.hello = msg
        self._send(self.offer)

    def _on_start(self, msg: Start) -> None:
        if self._open is not None:
            raise ProtocolError(f"start of {msg.utt} while {self._open.utt} is open", code="utterance_open")
        if self._polish.open is not None:
            raise ProtocolError(f"start of {msg.utt} while a polish job is open", code="polish_open")
        if self._drain_code is not None:
            raise ProtocolError("worker is shutting down", code="shutting_down", close_code=CLOSE_GOING_AWAY)
        utt = self._open = _Open(msg.utt, msg.t, next(self._tickets))
        if msg.commit_samples and FEATURE_COMMIT in self.offer.features:
            if msg.commit_samples > self.limits.max_utterance_s * SAMPLE_RATE:
                raise ProtocolError(f"start of {msg.utt} commits more than {self.limits.max_utterance_s:g} s",
                                    code="bad_field")
            utt.base, utt.committed = msg.commit_samples, msg.commit_text.strip()

    def _on_audio(self, data: bytes) -> None:
        if self._polish.open is not None:
            self._polish.audio(np.frombuffer(data, dtype="<i2"))
            return
        utt = self._open
        if self.hello is None or utt is None:
            raise ProtocolError("audio outside an utterance", code="audio_outside_utterance")
        pcm = np.frombuffer(data, dtype="<i2")
        if utt.samples + len(pcm) > self.limits.max_utterance_s * SAMPLE_RATE:
            raise ProtocolError(f"utterance {utt.utt} is longer than {self.limits.max_utterance_s:g} s",
                                code="utterance_too_long", close_code=CLOSE_UTTERANCE_TOO_LONG)
        if not self._audio_bucket.take(len(pcm) / SAMPLE_RATE):
            raise ProtocolError(f"audio arrives faster than {self.limits.audio_rate:g}x real time",
                                code="rate_limited", close_code=CLOSE_RATE_LIMITED)
        if len(pcm):
            self._drop_speculative(utt)  # speech went on after the pause
        utt.add(pcm)
        self.audio_s += len(pcm) / SAMPLE_RATE
        interval = self._partial_interval_s((utt.samples - utt.base) / SAMPLE_RATE)
        # A partial waits while the newest audio is silence (it could show no new word), but
        # once a silence has lasted TRAILING_QUIET_S after speech that no partial had, one
        # shows the words before it, whole now, without waiting for the cadence.
        due = utt.samples - utt.partial_at >= interval * SAMPLE_RATE and not utt.quiet
        trailing = (utt.quiet_from is not None and utt.quiet_from > utt.partial_at
                    and utt.samples - utt.quiet_from >= TRAILING_QUIET_S * SAMPLE_RATE)
        if (due or trailing) and utt.samples > utt.base:
            utt.partial_at = utt.samples
            self._actions.append(RequestPartial(utt.utt, utt.ticket, utt.audio(), self.language,
                                                self._hints(utt), samples=utt.samples))

    def _on_end(self, msg: End) -> None:
        utt = self._open
        if utt is None or utt.utt != msg.utt:
            raise ProtocolError(f"end of {msg.utt}, which is not the open utterance", code="not_open")
        self._open = None
        if utt.committing is not None:  # the final decodes the same audio and more
            self._withdraw(utt.committing[0])
        if utt.speculative is not None and utt.speculative[0] == utt.samples:
            job = utt.speculative[1]  # decoded (or decoding) exactly this audio already
        else:
            self._drop_speculative(utt)
            job = self._submit(utt)
        previous = self._owed.pop(utt.utt, None)
        if previous is not None:  # the same number resent: only the newest counts
            self._withdraw(previous.job)
        self._owed[utt.utt] = _Owed(job, utt.start, utt.start + utt.samples / SAMPLE_RATE, utt.committed,
                                    utt.ticket)
        if job in self._outcomes and self._outcomes[job] is None:
            self._engine_failed(utt.utt)  # the pause's decode this final is had failed
        else:
            self._release()

    def _on_pause(self, msg: Pause) -> None:
        utt = self._open
        if utt is None or utt.utt != msg.utt:
            raise ProtocolError(f"pause of {msg.utt}, which is not the open utterance", code="not_open")
        if FEATURE_PAUSE not in self.offer.features:
            raise ProtocolError("pause was not offered in ready", code="unexpected_type")
        if msg.samples != utt.samples:
            raise ProtocolError(f"pause of {msg.utt} at {msg.samples} samples, but {utt.samples} arrived",
                                code="bad_pause")
        if utt.speculative is not None and utt.speculative[0] == utt.samples:
            return  # already decoding exactly this audio
        if utt.early_decodes and (utt.early_decodes >= MAX_EARLY_DECODES
                                  or utt.samples - utt.early_at < EARLY_DECODE_GAP_S * SAMPLE_RATE):
            return  # too many or too soon: the final is decoded at the end as without the feature
        utt.early_decodes += 1
        utt.early_at = utt.samples
        self._drop_speculative(utt)
        utt.speculative = (utt.samples, self._submit(utt))

    def _on_polish(self, msg: Polish | PolishEnd) -> None:
        if FEATURE_POLISH not in self.offer.features:
            raise ProtocolError(f"{msg.type} was not offered in ready", code="unexpected_type")
        if isinstance(msg, Polish):
            self._polish.begin(msg, utterance_open=self._open is not None, draining=self._drain_code is not None)
            return
        outcome = self._polish.end(msg)
        if isinstance(outcome, SubmitPolish):
            self._actions.append(outcome)
        else:
            self._send(outcome)

    # -- engine outcomes -------------------------------------------------------

    def _on_decoded(self, job: int, result: Transcript) -> None:
        utt = self._open
        if utt is not None and utt.committing is not None and utt.committing[0] == job:
            self._on_commit_decoded(utt, result)
        elif utt is not None and utt.speculative is not None and utt.speculative[1] == job:
            self._outcomes[job] = result  # the final, should end come with no more audio
            self._send_partial(utt.utt, join_pieces([utt.committed, result.text]))  # shown while the pause holds
        elif self._owed_utt(job) is not None:
            self._outcomes[job] = result
            self._release()

    def _on_failed(self, job: int) -> None:
        utt = self._open
        if utt is not None and utt.committing is not None and utt.committing[0] == job:
            utt.committing = None  # nothing is committed; the final decodes the audio as without it
            return
        if utt is not None and utt.speculative is not None and utt.speculative[1] == job:
            self._outcomes[job] = None  # fails the stream only if it becomes the final
            return
        owed = self._owed_utt(job)
        if owed is not None:
            self._engine_failed(owed)

    def _on_polished(self, job: int, segments: list[Segment]) -> None:
        answer = self._polish.answer(job, segments)
        if answer is not None:
            self._awaited.discard(job)
            self._send(answer)

    def _on_polish_failed(self, job: int, reason: str) -> None:
        answer = self._polish.failed(job, reason)
        if answer is not None:
            self._awaited.discard(job)
            self._send(answer)

    def _on_partial(self, ticket: int, text: str, samples: int | None) -> None:
        utt = self._open
        if utt is None or utt.ticket != ticket:
            ended = self._ended(ticket)
            if ended is not None:  # decoded while the utterance ended: shown until its final comes
                self._send_partial(ended[0], join_pieces([ended[1].committed, text]))
            return
        if self._speculated(utt):
            return  # the pause's decode of all the audio is shown already
        self._send_partial(utt.utt, join_pieces([utt.committed, text]))
        if not self.commits or samples is None:
            return
        previous, utt.hypothesis = utt.hypothesis, text.split()
        settled = settled_prefix(previous, utt.hypothesis)
        if settled > utt.commit_tried and utt.committing is None and utt.speculative is None and samples > utt.base:
            # A final decode of the audio the partial had, for the words and their times: the
            # piece before the cut gets a final's accuracy, and the times say where to cut.
            job = next(self._jobs)
            audio = utt.audio()[:samples - utt.base]
            self._actions.append(SubmitFinal(job, utt.utt, audio, self.language, self._hints(utt)))
            utt.committing = (job, utt.hypothesis[:settled + 1], samples)

    def _on_commit_decoded(self, utt: _Open, result: Transcript) -> None:
        """The final decode of the audio a partial agreed on: commit its settled sentences."""
        assert utt.committing is not None
        _, settled, samples = utt.committing
        utt.committing = None
        if utt.speculative is not None:
            return  # the speech paused: the pause's decode is about to be the final
        found = cut_point(result.words, settled, (samples - utt.base) / SAMPLE_RATE)
        if found is None:
            utt.commit_tried = len(settled) - 1  # try again once more has settled
            return
        words, cut = found
        committed = join_pieces([utt.committed] + [w for w, _, _ in result.words[:words]])
        if len(committed) > MAX_COMMIT_TEXT:
            return  # more than a client reads in one commit: the final carries the rest
        utt.committed = committed
        utt.base += round(cut * SAMPLE_RATE)
        utt.hypothesis, utt.commit_tried = [], 0
        utt.ticket = next(self._tickets)  # partials of the audio before the cut are stale
        utt.partial_at = utt.base
        self._send(Commit(utt=utt.utt, samples=utt.base, text=utt.committed))

    def _send_partial(self, utt: int, text: str) -> None:
        # A partial is only worth sending to a client that keeps up with what it is sent.
        if text and self._queued < PARTIAL_BACKLOG:
            self._send(Partial(utt=utt, text=text))

    def _release(self) -> None:
        """Send the finals that are decoded and whose turn it is (the order they ended in)."""
        while self._owed:
            utt, owed = next(iter(self._owed.items()))
            result = self._outcomes.pop(owed.job, None)
            if result is None:
                return
            del self._owed[utt]
            self._awaited.discard(owed.job)
            text = join_pieces([owed.committed, result.text])
            self._send(Caption(utt=utt, start=owed.start, end=owed.end, text=text, lang=result.lang,
                               emotion=result.emotion, events=tuple(result.events)))
            self._remember(text)

    def _engine_failed(self, utt: int) -> None:
        self._fail("engine_failure", f"engine failed on utterance {utt}; reconnect and resend",
                   CLOSE_ENGINE_FAILURE)

    # -- endings -----------------------------------------------------------------

    def _start_drain(self, code: int) -> None:
        if self._drain_code is None:
            self._drain_code = code
            self._awaited = {owed.job for owed in self._owed.values()} | set(self._polish.decoding)

    def _give_up(self) -> None:
        if self._drain_code is None:
            return
        for utt, owed in list(self._owed.items()):
            if owed.job in self._awaited:
                del self._owed[utt]
                self._withdraw(owed.job)
        self._actions += self._polish.withdraw(self._awaited)
        self._awaited.clear()

    def _fail(self, code: str, message: str, close_code: int) -> None:
        self.failure = Error(code=code, message=message)
        self._send(self.failure)
        self._close(close_code, code[:100])

    def _close(self, code: int, reason: str) -> None:
        self._actions.append(Close(code, reason))
        self.closed = True

    # -- helpers -------------------------------------------------------------------

    def _send(self, message: Message) -> None:
        self._actions.append(Send(message))
        self._queued += 1

    def _submit(self, utt: _Open) -> int:
        job = next(self._jobs)
        self._actions.append(SubmitFinal(job, utt.utt, utt.audio(), self.language, self._hints(utt)))
        return job

    def _withdraw(self, job: int) -> None:
        self._actions.append(CancelFinal(job))
        self._outcomes.pop(job, None)
        self._awaited.discard(job)

    def _drop_speculative(self, utt: _Open) -> None:
        if utt.speculative is not None:
            self._withdraw(utt.speculative[1])
            utt.speculative = None

    def _speculated(self, utt: _Open) -> bool:
        """Whether a pause's decode of the open audio has its text (a partial is no news)."""
        return utt.speculative is not None and utt.speculative[1] in self._outcomes

    def _ended(self, ticket: int) -> tuple[int, _Owed] | None:
        """The ended utterance whose final is owed and whose partials had ``ticket``."""
        return next(((utt, owed) for utt, owed in self._owed.items() if owed.ticket == ticket), None)

    def _owed_utt(self, job: int) -> int | None:
        return next((utt for utt, owed in self._owed.items() if owed.job == job), None)

    def _hints(self, utt: _Open) -> DecodeHints:
        """The stream's context, with the open utterance's committed text after it."""
        offered = self.hello is not None and FEATURE_VOCABULARY in self.offer.features
        return DecodeHints(context=_tail(join_pieces([self.context, utt.committed])),
                           vocabulary=self.hello.vocabulary if offered else ())

    def _remember(self, text: str) -> None:
        """Keep the tail of the stream's finals."""
        self.context = _tail(join_pieces([self.context, text]))


def _tail(text: str) -> str:
    """The last ``CONTEXT_CHARS`` of ``text`` (whole words where there are spaces)."""
    if len(text) <= CONTEXT_CHARS:
        return text
    cut = text[-CONTEXT_CHARS:]
    space = cut.find(" ")
    return cut[space + 1:] if 0 <= space < CONTEXT_CHARS // 4 else cut
