"""The stream core driven directly: frames, engine outcomes and clock steps in, actions out.

The fuzz plays 10,000 random sequences a run against a reference model of the
protocol: hello (first, late or twice), start (next, resent or any number),
audio of random sizes and loudness (over the utterance limit and the audio
rate too), pause and end (right and wrong numbers and sample counts), polish
jobs (opened, fed, ended and answered or failed, right and wrong), bye,
malformed frames, engine outcomes in random order (decoded or failed),
partials, the transport taking what was sent, clock steps, idle timeouts and
shutdown drains; then the engine answers everything and the client says bye.
After every step it checks that each frame got exactly the error the
protocol gives it (or none) and the close that goes with that error; that
nothing follows a close and every close code is documented; that finals go
out once per ended utterance, in the order the utterances ended, for the
audio each had (only the newest of a resent number), never for one not
ended; that a ``bye`` or a drain closes only after the finals it owes; that
no decode is longer than ``max_utterance_s`` and audio never outruns the
rate; and that the backlog is the finals owed plus what the transport has
not taken; that the final whose turn it is goes out as soon as it is decoded,
whatever polish jobs do; and that every polish job accepted is answered exactly
once (its segments, or an error naming it that no close follows), or the
stream closed first.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from common.limits import TokenBucket
from live.actions import (
    CancelFinal,
    CancelPolish,
    Close,
    RequestPartial,
    Send,
    SubmitFinal,
    SubmitPolish,
)
from live.stream import (
    CONTEXT_CHARS,
    EARLY_DECODE_GAP_S,
    MAX_EARLY_DECODES,
    PARTIAL_BACKLOG,
    TRAILING_QUIET_S,
    StreamCore,
    StreamLimits,
)
from models import Segment, Transcript
from wire.protocol import (
    CLOSE_ENGINE_FAILURE,
    CLOSE_FRAME_TOO_LARGE,
    CLOSE_GOING_AWAY,
    CLOSE_IDLE,
    CLOSE_NORMAL,
    CLOSE_OVERLOADED,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_RATE_LIMITED,
    CLOSE_REASONS,
    CLOSE_UTTERANCE_TOO_LONG,
    FEATURE_PAUSE,
    FEATURE_POLISH,
    FEATURE_VOCABULARY,
    MAX_POLISH_FRAMES,
    MAX_POLISH_JOBS,
    MAX_POLISH_S,
    MAX_TEXT_FRAME_BYTES,
    SAMPLE_RATE,
    Bye,
    Caption,
    End,
    Error,
    Hello,
    Partial,
    Pause,
    Polish,
    Polished,
    PolishEnd,
    PolishSegment,
    Ready,
    Start,
    encode,
)

SR = SAMPLE_RATE
#: small limits, so that a short sequence reaches each of them
LIMITS = StreamLimits(max_utterance_s=1.0, audio_rate=2.0, audio_burst_s=2.0,
                      messages_per_s=20.0, message_burst=30.0, idle_timeout_s=5.0)
MAX_SAMPLES = int(LIMITS.max_utterance_s * SR)
VOCABULARY = ("Fourier", "eigenvalue")
#: close code of each error the core sends
CLOSES = {"frame_too_large": CLOSE_FRAME_TOO_LARGE, "utterance_too_long": CLOSE_UTTERANCE_TOO_LONG,
          "window_too_long": CLOSE_UTTERANCE_TOO_LONG, "too_many_jobs": CLOSE_OVERLOADED,
          "rate_limited": CLOSE_RATE_LIMITED, "idle": CLOSE_IDLE, "engine_failure": CLOSE_ENGINE_FAILURE,
          "shutting_down": CLOSE_GOING_AWAY}
#: malformed frames and the error each gets
GARBAGE = (
    ("not json", "bad_message"),
    ('{"type":"start","utt":-1,"t":0}', "bad_field"),
    ('{"type":"final","utt":0,"start":0,"end":1,"text":""}', "unexpected_type"),
    (b"\x00\x00\x00", "odd_audio_frame"),
    (bytes(32_002), "frame_too_large"),
    ("x" * (MAX_TEXT_FRAME_BYTES + 1), "frame_too_large"),
)
LEVELS = (0, 30, 3000)  # silence, -40 dB under speech, speech


def cadence(open_s: float) -> float:
    """Seconds of new audio between partials: longer for a longer utterance, like the scheduler's."""
    return 0.2 + 0.2 * open_s


def heard(samples: int) -> str:
    """The fake engine's text for a clip: it names the clip's length."""
    return f"heard {samples} samples"


def wrong(x: int) -> bool:
    """Whether a step with argument ``x`` breaks its rule (1 in 64)."""
    return x % 64 == 63


def make_core(features: tuple[str, ...] = (FEATURE_PAUSE,), limits: StreamLimits = LIMITS,
              clock=lambda: 0.0) -> StreamCore:
    offer = Ready(engine="fake", model="test", max_utterance_s=limits.max_utterance_s, features=features)
    return StreamCore(limits, offer, cadence, clock=clock)


def audio(samples: int, level: int = 3000) -> bytes:
    return np.full(samples, level, dtype="<i2").tobytes()


class Utterance:
    """The model of the open utterance."""

    def __init__(self, utt: int, start: float):
        self.utt, self.start = utt, start
        self.samples = self.partial_at = self.early = self.early_at = 0
        self.peak, self.quiet = 0.0, False
        self.quiet_from: int | None = None  # where the run of quiet frames began
        self.ticket: int | None = None
        self.speculative: tuple[int, int] | None = None  # (samples, job)


class Run:
    """One core, driven as the driver drives it, checked against a model after every step."""

    def __init__(self, features: tuple[str, ...]):
        self.now = 0.0
        self.core = make_core(features, clock=lambda: self.now)
        self.features = features
        self.message_bucket = TokenBucket(LIMITS.messages_per_s, LIMITS.message_burst, lambda: self.now)
        self.audio_bucket = TokenBucket(LIMITS.audio_rate, LIMITS.audio_burst_s, lambda: self.now)
        self.hello: Hello | None = None
        self.open: Utterance | None = None
        self.ended: list[tuple[int, float, int, int]] = []  # (utt, start, samples, job) by end
        self.end_tickets: dict[int, int | None] = {}  # end -> the ticket of its partials
        self.newest: dict[int, int] = {}  # utterance number -> its newest end
        self.owed: set[int] = set()  # ends whose final is owed
        self.captioned: set[int] = set()
        self.jobs: dict[int, SubmitFinal] = {}  # decodes under way
        self.failed: set[int] = set()
        self.partials: dict[int, RequestPartial] = {}
        self.untaken = 0
        self.said = ""  # every final's text so far
        self.bye_seen = False
        self.drained: set[int] | None = None  # the ends owed when bye or a drain began
        self.drain_code: int | None = None  # the close the first of them asked for
        self.gave_up = False
        self.closed: Close | None = None
        self.actions: list = []
        self.polish_open: list | None = None  # [job, samples, frames] of the open polish job
        self.polish_jobs: dict[int, tuple[int, int]] = {}  # decode number -> (job, samples)
        self.polish_owed: list[int] = []  # jobs accepted and not yet answered
        self.polish_answered: list[int] = []
        self.polish_drained: set[int] = set()  # polish decodes owed when bye or a drain began
        self.next_job = 0

    @property
    def accepting(self) -> bool:
        return self.closed is None and not self.bye_seen

    # -- frames ------------------------------------------------------------------

    def frame(self, frame: str | bytes, expect) -> str | None:
        """Send ``frame``; ``expect()`` gives the error the model expects for it (None: none).
        Returns that error, "ignored" when the frame is not read at all. A binary frame while
        a polish job is open is not charged to the message rate (the jobs owed bound it)."""
        if not self.accepting:
            self.actions = self.core.receive(frame)
            assert self.actions == [], "nothing is read after bye or the close"
            return "ignored"
        charged = not (isinstance(frame, bytes) and self.polish_open is not None)
        error = "rate_limited" if charged and not self.message_bucket.take() else expect()
        self.actions = self.core.receive(frame)
        sent = [a.message.code for a in self.actions if isinstance(a, Send) and isinstance(a.message, Error)]
        assert sent == ([error] if error else []), (frame[:80], self.actions)
        return error

    def hello_(self, x: int) -> None:
        msg = Hello(session="s", vocabulary=VOCABULARY if x % 2 else ())
        if self.frame(encode(msg), lambda: "duplicate_hello" if self.hello else None) is None:
            self.hello = msg
            assert self.actions == [Send(self.core.offer)]
        self.apply()

    # Each step is well-behaved unless ``wrong(x)`` (or ``x % 64 == 62`` for a pause's
    # sample count): then it breaks the rule it is about.

    def start(self, x: int) -> None:
        if (self.open is not None or self.polish_open is not None) and not wrong(x):
            return
        utt = (max(self.newest, default=-1) + 1, self.ended[-1][0] if self.ended else 0, x % 4)[x % 3]

        def expect():
            if self.hello is None:
                return "no_hello"
            if self.open:
                return "utterance_open"
            return "polish_open" if self.polish_open else "shutting_down" if self.drain_code else None

        if self.frame(encode(Start(utt=utt, t=float(len(self.ended)))), expect) is None:
            self.open = Utterance(utt, float(len(self.ended)))
        self.apply()

    def audio(self, x: int) -> None:
        if self.polish_open is not None:
            self.polish_audio(x)
            return
        if self.open is None and not wrong(x):
            self.start(x)
        u = self.open
        samples, level = (x if x % 16 == 0 else x % 4000), LEVELS[x // 7 % 3]
        if u is not None and not wrong(x):
            samples = min(samples, MAX_SAMPLES - u.samples)

        def expect():
            if self.hello is None or u is None:
                return "audio_outside_utterance"
            if u.samples + samples > MAX_SAMPLES:
                return "utterance_too_long"
            return None if self.audio_bucket.take(samples / SR) else "rate_limited"

        if self.frame(audio(samples, level), expect) is None:
            if samples and u.speculative:
                assert CancelFinal(u.speculative[1]) in self.actions, "audio after a pause drops its decode"
                u.speculative = None
            u.samples += samples
            if samples:
                u.peak = max(u.peak, float(level * level))
                u.quiet = level * level < 0.01 * u.peak
                u.quiet_from = None if not u.quiet else u.samples - samples if u.quiet_from is None else u.quiet_from
            requests = [a for a in self.actions if isinstance(a, RequestPartial)]
            due = u.samples - u.partial_at >= cadence(u.samples / SR) * SR and not u.quiet
            trailing = (u.quiet_from is not None and u.quiet_from > u.partial_at
                        and u.samples - u.quiet_from >= TRAILING_QUIET_S * SR)
            if trailing and not due:
                event("a silence after speech asks for a partial")
            due = due or trailing
            assert len(requests) == due, "a partial is asked for when due or a silence follows speech"
            if due:
                u.partial_at, u.ticket = u.samples, requests[0].ticket
                assert len(requests[0].audio) == u.samples and requests[0].utt == u.utt
        self.apply()

    def pause(self, x: int) -> None:
        u = self.open
        if (u is None or FEATURE_PAUSE not in self.features) and not wrong(x):
            return
        utt = (u.utt if not wrong(x) else u.utt + 1) if u else 0
        samples = (u.samples if x % 64 != 62 else u.samples + 2) if u else x

        def expect():
            if self.hello is None:
                return "no_hello"
            if u is None or utt != u.utt:
                return "not_open"
            if FEATURE_PAUSE not in self.features:
                return "unexpected_type"
            return "bad_pause" if samples != u.samples else None

        if self.frame(encode(Pause(utt=utt, samples=samples)), expect) is None:
            submits = [a for a in self.actions if isinstance(a, SubmitFinal)]
            again = u.speculative is not None and u.speculative[0] == samples
            spent = u.early and (u.early >= MAX_EARLY_DECODES or samples - u.early_at < EARLY_DECODE_GAP_S * SR)
            assert len(submits) == (not again and not spent), "pause rules: once per audio, 8 at most, 0.5 s apart"
            if submits:
                assert len(submits[0].audio) == samples
                u.speculative, u.early, u.early_at = (samples, submits[0].job), u.early + 1, samples
        self.apply()

    def end(self, x: int) -> None:
        u = self.open
        if u is None and not wrong(x):
            return
        utt = (u.utt if not wrong(x) else u.utt + 1) if u else x % 3
        adopts = u is not None and u.speculative is not None and u.speculative[0] == u.samples

        def expect():
            if self.hello is None:
                return "no_hello"
            if u is None or utt != u.utt:
                return "not_open"
            return "engine_failure" if adopts and u.speculative[1] in self.failed else None

        # An end whose final is the failed decode of its pause is accepted, then fails the stream.
        if self.frame(encode(End(utt=utt)), expect) in (None, "engine_failure"):
            submits = [a for a in self.actions if isinstance(a, SubmitFinal)]
            assert len(submits) == (not adopts), "the pause's decode of exactly this audio is the final"
            job = u.speculative[1] if adopts else submits[0].job
            if adopts:
                event("a pause's decode is the final")
            assert adopts or len(submits[0].audio) == u.samples
            previous = self.newest.get(utt)
            if previous in self.owed:  # resent: only the newest counts
                event("a final owed is replaced by a resend")
                self.owed.discard(previous)
                assert CancelFinal(self.ended[previous][3]) in self.actions
            self.newest[utt] = len(self.ended)
            self.end_tickets[len(self.ended)] = u.ticket
            self.owed.add(len(self.ended))
            self.ended.append((utt, u.start, u.samples, job))
            self.open = None
        self.apply()

    def polish(self, x: int) -> None:
        busy = self.open is not None or self.polish_open is not None or FEATURE_POLISH not in self.features
        if busy and not wrong(x):
            return
        job = self.polish_owed[x % len(self.polish_owed)] if wrong(x) and self.polish_owed else self.next_job

        def expect():
            if self.hello is None:
                return "no_hello"
            if FEATURE_POLISH not in self.features:
                return "unexpected_type"
            if self.open:
                return "utterance_open"
            if self.polish_open:
                return "polish_open"
            if self.drain_code:
                return "shutting_down"
            if job in self.polish_owed:
                return "duplicate_job"
            return "too_many_jobs" if len(self.polish_owed) >= MAX_POLISH_JOBS else None

        message = Polish(job=job, offset=float(x), context=f"before {x}", vocabulary=VOCABULARY[:x % 3])
        if self.frame(encode(message), expect) is None:
            self.polish_open = [job, 0, 0, message]
            self.polish_owed.append(job)
            self.next_job += 1
        self.apply()

    def polish_audio(self, x: int) -> None:
        job, samples, frames, _ = self.polish_open
        size = SR if x % 3 == 0 else x % 4000

        def expect():
            too_long = samples + size > MAX_POLISH_S * SR or frames >= MAX_POLISH_FRAMES
            return "window_too_long" if too_long else None

        if self.frame(audio(size), expect) is None:
            self.polish_open[1:3] = [samples + size, frames + 1]
        self.apply()

    def polish_end(self, x: int) -> None:
        if (self.polish_open is None or FEATURE_POLISH not in self.features) and not wrong(x):
            return
        job = self.polish_open[0] if self.polish_open and not wrong(x) else self.next_job + 1

        def expect():
            if self.hello is None:
                return "no_hello"
            if FEATURE_POLISH not in self.features:
                return "unexpected_type"
            return None if self.polish_open and job == self.polish_open[0] else "not_open"

        if self.frame(encode(PolishEnd(job=job)), expect) is None:
            _, samples, _, message = self.polish_open
            self.polish_open = None
            submits = [a for a in self.actions if isinstance(a, SubmitPolish)]
            assert len(submits) == (samples > 0), "a job without audio is answered without the engine"
            if submits:
                assert len(submits[0].audio) == samples and submits[0].language == message.language
                assert submits[0].hints.context == message.context
                assert submits[0].hints.vocabulary == message.vocabulary
                self.polish_jobs[submits[0].job] = (job, samples)
        self.apply()

    def polish_answer(self, x: int) -> None:
        if not self.polish_jobs:
            return
        number = sorted(self.polish_jobs)[x % len(self.polish_jobs)]
        job, samples = self.polish_jobs.pop(number)
        if x % 10 != 9:
            segments = [Segment(0.0, samples / SR, heard(samples), "en", (("heard", 0.0, samples / SR),))]
            self.actions = self.core.polish_decoded(number, segments)
            answers = [a.message for a in self.actions if isinstance(a, Send) and isinstance(a.message, Polished)]
            assert all(a.job == job and a.segments[0].text == heard(samples) for a in answers)
        else:
            self.actions = self.core.polish_failed(number, "told to fail")
            answers = [a.message for a in self.actions if isinstance(a, Send) and isinstance(a.message, Error)]
            assert all(a.job == job and a.code == "polish_failed" for a in answers)
        assert len(answers) == (self.closed is None), "a polish job is answered when its decode is done"
        self.apply()

    def bye(self) -> None:
        if self.frame(encode(Bye()), lambda: None if self.hello else "no_hello") is None:
            self.bye_seen = True
            self.drain_began(CLOSE_NORMAL)
        self.apply()

    def garbage(self, x: int) -> None:
        frame, code = GARBAGE[x % len(GARBAGE)]
        self.frame(frame, lambda: code)
        self.apply()

    # -- everything else --------------------------------------------------------------

    def decode(self, x: int) -> None:
        if self.jobs:
            self.answer(sorted(self.jobs)[x % len(self.jobs)], ok=x % 20 != 19)

    def answer(self, job: int, ok: bool) -> None:
        """The engine's outcome of ``job``: its text names the clip's length, or it failed."""
        submit = self.jobs.pop(job)
        owed = job in {self.ended[i][3] for i in self.owed}
        u = self.open
        early = u is not None and u.speculative is not None and u.speculative[1] == job
        if ok:
            self.actions = self.core.final_decoded(job, Transcript(text=heard(len(submit.audio)), lang="en"))
            shown = [a.message for a in self.actions if isinstance(a, Send) and isinstance(a.message, Partial)]
            assert len(shown) == (early and self.closed is None and self.untaken < PARTIAL_BACKLOG), \
                "a pause's decode is shown at once as a partial"
        else:
            self.failed.add(job)
            self.actions = self.core.final_failed(job)
            codes = [a.message.code for a in self.actions if isinstance(a, Send)]
            assert codes == (["engine_failure"] if owed and self.closed is None else [])
        self.apply()

    def partial(self, x: int) -> None:
        if not self.partials:
            return
        request = self.partials.pop(sorted(self.partials)[x % len(self.partials)])
        u = self.open
        current = self.closed is None and u is not None and u.ticket == request.ticket
        # no news once a pause's decode of the open audio is shown; a partial of an utterance
        # that ended meanwhile is shown until its final is sent
        speculated = current and u.speculative is not None and u.speculative[1] not in self.jobs
        ended = (self.closed is None and not current
                 and any(self.end_tickets[i] == request.ticket for i in self.owed))
        if ended:
            event("a partial of an ended utterance is shown before its final")
        news = (current and not speculated) or ended
        assert self.core.partial_stale(request.ticket) == (not news)
        text = f"so far {len(request.audio)}" if x % 4 else ""
        self.actions = self.core.partial_decoded(request.ticket, text)
        shown = [a.message for a in self.actions if isinstance(a, Send)]
        assert len(shown) == (news and bool(text) and self.untaken < PARTIAL_BACKLOG)
        self.apply()

    def take(self, x: int) -> None:
        for _ in range(min(x % 6, self.untaken)):
            self.core.taken()
            self.untaken -= 1

    def tick(self, x: int) -> None:
        self.now += x / 6000

    def idle(self) -> None:
        self.actions = self.core.idle()
        codes = [a.message.code for a in self.actions if isinstance(a, Send)]
        assert codes == (["idle"] if self.accepting and not self.polish_owed else []), "a polish client waits"
        self.apply()

    def drain(self) -> None:
        if self.closed is None:
            self.drain_began(CLOSE_GOING_AWAY)
        self.actions = self.core.drain(CLOSE_GOING_AWAY)
        self.apply()

    def give_up(self) -> None:
        self.actions = self.core.give_up()
        if self.drained is not None and self.closed is None:
            self.gave_up = True
            for i in self.owed & self.drained:
                assert CancelFinal(self.ended[i][3]) in self.actions
            self.owed -= self.drained
            for number in self.polish_drained & set(self.polish_jobs):
                assert CancelPolish(number) in self.actions
                self.polish_owed.remove(self.polish_jobs.pop(number)[0])
            assert isinstance(self.actions[-1], Close)
        self.apply()

    def drain_began(self, code: int) -> None:
        if self.drained is None:  # the first drain asked for is the one that closes
            self.drained, self.drain_code = set(self.owed), code
            self.polish_drained = set(self.polish_jobs)

    # -- the checks ------------------------------------------------------------------

    def apply(self) -> None:
        """Carry out the actions of the last step as the driver would, checking each."""
        for i, action in enumerate(self.actions):
            assert self.closed is None, f"{action} after {self.closed}"
            if isinstance(action, Send):
                self.sent(action.message, self.actions[i + 1:])
            elif isinstance(action, SubmitFinal):
                assert len(action.audio) <= MAX_SAMPLES and action.job not in self.jobs
                self.check_hints(action)
                self.jobs[action.job] = action
            elif isinstance(action, RequestPartial):
                assert len(action.audio) <= MAX_SAMPLES
                self.check_hints(action)
                self.partials[action.utt] = action
            elif isinstance(action, CancelFinal):
                self.jobs.pop(action.job, None)  # withdrawn: the driver reports nothing for it
            elif isinstance(action, SubmitPolish):
                assert len(action.audio) <= MAX_POLISH_S * SR and action.job not in self.jobs
            elif isinstance(action, CancelPolish):
                assert action.job in self.polish_drained, "only a drain that gave up withdraws a polish"
            else:
                self.close(action, self.actions[i - 1] if i else None)
        self.check()

    def sent(self, message, rest: list) -> None:
        if isinstance(message, Caption):
            end = self.newest.get(message.utt)
            assert end is not None, f"final for {message.utt}, which never ended"
            assert end not in self.captioned, f"second final for the end of {message.utt}"
            assert end == min(self.owed), "finals go out in the order their utterances ended"
            utt, start, samples, _ = self.ended[end]
            assert (message.start, message.end, message.text) == (start, start + samples / SR, heard(samples))
            self.owed.discard(end)
            self.captioned.add(end)
            self.said = f"{self.said} {message.text}".strip()
        elif isinstance(message, Partial):
            showing = {self.ended[i][0] for i in self.owed} | ({self.open.utt} if self.open else set())
            assert message.utt in showing and message.text, "partials of the open utterance or one owed"
            assert self.untaken < PARTIAL_BACKLOG
        elif isinstance(message, Polished) or (isinstance(message, Error) and message.job is not None):
            assert message.job in self.polish_owed, f"answer to polish job {message.job}, which is not owed"
            assert message.job not in self.polish_answered, "a polish job is answered once"
            if rest and isinstance(rest[0], Close):  # only the close of a drain it completed
                assert rest[0].code == self.drain_code and self.drain_code is not None, "no close for a job"
            self.polish_owed.remove(message.job)
            self.polish_answered.append(message.job)
        elif isinstance(message, Error):
            assert rest and isinstance(rest[0], Close), "an error is followed by the close"
        self.untaken += 1

    def close(self, close: Close, before) -> None:
        assert close.code in CLOSE_REASONS, f"undocumented close code {close.code}"
        if isinstance(before, Send) and isinstance(before.message, Error) and before.message.job is None:
            code = before.message.code
            assert (close.code, close.reason) == (CLOSES.get(code, CLOSE_PROTOCOL_ERROR), code)
        else:
            assert close.code == self.drain_code, "a close without an error ends a drain"
            assert close.reason == ("bye" if close.code == CLOSE_NORMAL else "worker shutting down")
            assert self.gave_up or not (self.owed & self.drained), "the drain's finals go out first"
            assert close.code != CLOSE_NORMAL or self.gave_up or not self.owed, "bye: every final first"
            assert self.gave_up or not (self.polish_drained & set(self.polish_jobs)), "and every polish owed"
        self.closed = close
        event(f"close {close.code} {close.reason}")

    def check_hints(self, action: SubmitFinal | RequestPartial) -> None:
        vocabulary = self.hello.vocabulary if FEATURE_VOCABULARY in self.features else ()
        assert action.hints.vocabulary == vocabulary
        assert len(action.hints.context) <= CONTEXT_CHARS and self.said.endswith(action.hints.context)

    def check(self) -> None:
        assert self.core.accepting == self.accepting
        assert self.core.audio_s <= LIMITS.audio_burst_s + LIMITS.audio_rate * self.now + 1e-9
        assert list(self.core.owed) == [self.ended[i][0] for i in sorted(self.owed)]
        assert self.core.backlog == len(self.owed) + self.untaken
        assert self.core.polish_owed == len(self.polish_owed) or self.closed is not None
        if self.owed and self.closed is None:
            job = self.ended[min(self.owed)][3]
            assert job in self.jobs or job in self.failed, "the final whose turn it is goes out once decoded"

    def settle(self) -> None:
        """The engine answers everything, the client reads everything and says bye."""
        while (self.jobs or self.polish_jobs) and self.closed is None:
            self.answer(min(self.jobs), ok=True) if self.jobs else self.polish_answer(0)
        while self.untaken:
            self.take(1)
        self.bye()
        while self.jobs or self.polish_jobs:
            self.answer(min(self.jobs), ok=True) if self.jobs else self.polish_answer(0)
        assert self.closed is not None, "a stream whose decodes are all answered closes after bye"
        event(f"finals sent: {min(len(self.captioned), 5)}{'+' if len(self.captioned) >= 5 else ''}")
        if self.closed.code == CLOSE_NORMAL and not self.gave_up:
            assert all(end in self.captioned for end in self.newest.values()), "one final per ended utterance"
            open_job = [self.polish_open[0]] if self.polish_open else []
            assert self.polish_owed == open_job, "every polish job ended is answered before bye closes"
        if self.polish_answered:
            event("polish jobs answered")


#: how often each step comes, out of 256 (one byte picks it): failing ones are rare, so that
#: most sequences live long enough to owe and send finals
WEIGHTS = {"audio": 66, "end": 30, "start": 10, "pause": 25, "decode": 38, "take": 22, "tick": 18, "partial": 15,
           "polish": 9, "polish_end": 9, "polish_answer": 6,
           "hello": 1, "bye": 1, "idle": 1, "drain": 2, "give_up": 2, "garbage": 1}
KINDS = tuple(kind for kind, weight in WEIGHTS.items() for _ in range(weight))
assert len(KINDS) == 256
FEATURES = [(), (FEATURE_PAUSE,), (FEATURE_PAUSE, FEATURE_VOCABULARY), (FEATURE_VOCABULARY,),
            (FEATURE_POLISH,), (FEATURE_PAUSE, FEATURE_VOCABULARY, FEATURE_POLISH)]
STEPS = {"hello": Run.hello_, "start": Run.start, "audio": Run.audio, "pause": Run.pause, "end": Run.end,
         "garbage": Run.garbage, "decode": Run.decode, "partial": Run.partial, "take": Run.take,
         "tick": Run.tick, "polish": Run.polish, "polish_end": Run.polish_end, "polish_answer": Run.polish_answer,
         "bye": lambda run, x: run.bye(), "idle": lambda run, x: run.idle(),
         "drain": lambda run, x: run.drain(), "give_up": lambda run, x: run.give_up()}


def steps_of(data: bytes) -> list[tuple[str, int]]:
    """Three bytes a step: which step, then its argument (0-9000). Bytes are the cheapest thing
    hypothesis draws, so 10,000 sequences take seconds."""
    return [(KINDS[data[i]], int.from_bytes(data[i + 1:i + 3], "big") % 9001) for i in range(0, len(data) - 2, 3)]


@settings(max_examples=10_000, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.too_slow])
@given(features=st.sampled_from(FEATURES), data=st.binary(min_size=1 + 3 * 20, max_size=1 + 3 * 80))
def test_random_sequences_keep_every_stream_rule(features, data):
    run = Run(features)
    if data[0] >= 16:  # hello first, but not always
        run.hello_(len(data))
    steps = steps_of(data[1:])
    note(f"steps: {steps}")
    for kind, x in steps:
        STEPS[kind](run, x)
    run.settle()
    event(f"steps: {len(steps) // 10 * 10}-{len(steps) // 10 * 10 + 9}")


# -- rules one at a time ------------------------------------------------------------------

HELLO = Hello(session="s")


def feed(core: StreamCore, *frames) -> list:
    """Every action of a few frames (messages are encoded, bytes are audio)."""
    return [a for frame in frames
            for a in core.receive(frame if isinstance(frame, (str, bytes)) else encode(frame))]


def sent(actions: list, kind: type = object) -> list:
    return [a.message for a in actions if isinstance(a, Send) and isinstance(a.message, kind)]


def submitted(actions: list) -> list[SubmitFinal]:
    return [a for a in actions if isinstance(a, SubmitFinal)]


def requested(actions: list) -> list[RequestPartial]:
    return [a for a in actions if isinstance(a, RequestPartial)]


def test_a_pause_starts_an_early_decode_shown_at_once_that_is_then_the_final():
    core = make_core((FEATURE_PAUSE,))
    feed(core, HELLO, Start(utt=0, t=1.0), audio(8000))
    (early,) = submitted(feed(core, Pause(utt=0, samples=8000)))
    assert len(early.audio) == 8000
    assert sent(core.final_decoded(early.job, Transcript("hello there"))) == [Partial(utt=0, text="hello there")]
    ended = feed(core, End(utt=0))
    assert submitted(ended) == [], "no second decode of the same audio"
    assert sent(ended) == [Caption(utt=0, start=1.0, end=1.5, text="hello there")]


def test_speech_after_a_pause_drops_its_decode_and_a_pause_too_soon_after_is_ignored():
    core = make_core()
    feed(core, HELLO, Start(utt=0, t=0.0), audio(8000))
    (early,) = submitted(feed(core, Pause(utt=0, samples=8000)))
    assert CancelFinal(early.job) in feed(core, audio(3200))
    assert feed(core, Pause(utt=0, samples=11200)) == [], "0.2 s after the last early decode: ignored, no error"
    (final,) = submitted(feed(core, End(utt=0)))
    assert len(final.audio) == 11200


def test_an_utterance_gets_at_most_eight_early_decodes():
    core = make_core(limits=StreamLimits(max_utterance_s=30.0, audio_rate=0.0))
    feed(core, HELLO, Start(utt=0, t=0.0))
    early = [submitted(feed(core, audio(8000), Pause(utt=0, samples=8000 * k))) for k in range(1, 13)]
    assert sum(map(len, early)) == MAX_EARLY_DECODES


def test_a_pause_not_offered_or_with_the_wrong_sample_count_is_refused():
    for features, samples, code in (((), 1600, "unexpected_type"), ((FEATURE_PAUSE,), 1602, "bad_pause")):
        actions = feed(make_core(features), HELLO, Start(utt=0, t=0.0), audio(1600), Pause(utt=0, samples=samples))
        assert [e.code for e in sent(actions, Error)] == [code]
        assert actions[-1] == Close(CLOSE_PROTOCOL_ERROR, code)


def test_a_resent_utterance_replaces_the_final_owed_for_it():
    core = make_core()
    (old,) = submitted(feed(core, HELLO, Start(utt=0, t=0.0), audio(1600), End(utt=0)))
    resent = feed(core, Start(utt=0, t=5.0), audio(3200), End(utt=0))
    (new,) = submitted(resent)
    assert CancelFinal(old.job) in resent and core.owed == (0,)
    assert core.final_decoded(old.job, Transcript("stale")) == [], "a late answer for the old one is dropped"
    assert sent(core.final_decoded(new.job, Transcript("fresh"))) == [Caption(utt=0, start=5.0, end=5.2, text="fresh")]


def test_finals_go_out_in_the_order_their_utterances_ended_whatever_order_they_are_decoded_in():
    core = make_core()
    feed(core, HELLO)
    jobs = [submitted(feed(core, Start(utt=u, t=float(u)), audio(1600), End(utt=u)))[0].job for u in range(3)]
    assert core.final_decoded(jobs[2], Transcript("two")) == []
    assert core.final_decoded(jobs[1], Transcript("one")) == []
    assert [c.text for c in sent(core.final_decoded(jobs[0], Transcript("zero")))] == ["zero", "one", "two"]
    assert core.owed == () and core.backlog == 4, "ready and three finals are not taken yet"
    for _ in range(4):
        core.taken()
    assert core.backlog == 0


def test_bye_closes_1000_once_the_finals_owed_are_sent():
    core = make_core()
    (final,) = submitted(feed(core, HELLO, Start(utt=0, t=0.0), audio(1600), End(utt=0)))
    assert feed(core, Bye()) == [] and not core.accepting
    actions = core.final_decoded(final.job, Transcript("done"))
    assert sent(actions, Caption) == [Caption(utt=0, start=0.0, end=0.1, text="done")]
    assert actions[-1] == Close(CLOSE_NORMAL, "bye")


def test_a_drain_closes_1001_after_the_finals_owed_and_refuses_new_utterances_meanwhile():
    core = make_core()
    (final,) = submitted(feed(core, HELLO, Start(utt=0, t=0.0), audio(1600), End(utt=0)))
    assert core.drain() == [] and core.accepting
    assert core.final_decoded(final.job, Transcript("done"))[-1] == Close(CLOSE_GOING_AWAY, "worker shutting down")
    core = make_core()
    feed(core, HELLO, Start(utt=0, t=0.0), audio(1600), End(utt=0))
    core.drain()
    actions = feed(core, Start(utt=1, t=1.0))
    assert [e.code for e in sent(actions, Error)] == ["shutting_down"]
    assert actions[-1] == Close(CLOSE_GOING_AWAY, "shutting_down")


def test_a_drain_that_gives_up_withdraws_what_it_waited_for_and_closes():
    core = make_core()
    (final,) = submitted(feed(core, HELLO, Start(utt=0, t=0.0), audio(1600), End(utt=0)))
    core.drain()
    assert core.give_up() == [CancelFinal(final.job), Close(CLOSE_GOING_AWAY, "worker shutting down")]


def test_audio_beyond_the_rate_closes_4004_and_the_allowance_refills_with_time():
    now = [0.0]
    core = make_core(limits=StreamLimits(max_utterance_s=30.0, audio_rate=1.0, audio_burst_s=1.0),
                     clock=lambda: now[0])
    feed(core, HELLO, Start(utt=0, t=0.0))
    assert sent(feed(core, audio(16000)), Error) == [], "the burst"
    now[0] += 0.5
    assert sent(feed(core, audio(8000)), Error) == [], "what half a second gave back"
    actions = feed(core, audio(160))
    assert [e.code for e in sent(actions, Error)] == ["rate_limited"] and actions[-1].code == CLOSE_RATE_LIMITED


def test_an_utterance_over_max_utterance_s_closes_4003():
    actions = feed(make_core(), HELLO, Start(utt=0, t=0.0), audio(MAX_SAMPLES), audio(2))
    assert [e.code for e in sent(actions, Error)] == ["utterance_too_long"]
    assert actions[-1] == Close(CLOSE_UTTERANCE_TOO_LONG, "utterance_too_long")


def test_after_an_error_nothing_more_is_accepted_or_sent():
    core = make_core()
    (final,) = submitted(feed(core, HELLO, Start(utt=0, t=0.0), audio(1600), End(utt=0)))
    assert feed(core, End(utt=7))[-1] == Close(CLOSE_PROTOCOL_ERROR, "not_open")
    assert feed(core, Start(utt=1, t=1.0), audio(1600), End(utt=1), Bye(), "not json") == []
    assert core.final_decoded(final.job, Transcript("late")) == []
    assert core.idle() == [] and core.drain() == [] and core.refuse("key_revoked", "revoked", 4007) == []


def test_a_failed_final_closes_4008_and_a_failed_early_decode_only_once_it_is_the_final():
    core = make_core()
    feed(core, HELLO, Start(utt=0, t=0.0), audio(8000))
    (early,) = submitted(feed(core, Pause(utt=0, samples=8000)))
    assert core.final_failed(early.job) == [], "the pause may not hold"
    actions = feed(core, End(utt=0))
    assert sent(actions) == [Error("engine_failure", "engine failed on utterance 0; reconnect and resend")]
    assert actions[-1] == Close(CLOSE_ENGINE_FAILURE, "engine_failure")


def test_idle_closes_4005():
    core = make_core()
    feed(core, HELLO)
    assert core.idle_timeout_s == LIMITS.idle_timeout_s
    assert core.idle() == [Send(Error("idle", "nothing received for 5 s")), Close(CLOSE_IDLE, "idle")]


def test_partials_come_at_the_cadence_and_wait_while_the_newest_audio_is_silence():
    core = make_core()
    feed(core, HELLO, Start(utt=0, t=0.0))
    (first,) = requested(feed(core, audio(4800)))  # 0.3 s: past cadence(0.3 s) = 0.26 s
    assert len(first.audio) == 4800
    assert requested(feed(core, audio(6400, level=0))) == [], "due, but the newest audio is silence"
    (second,) = requested(feed(core, audio(160)))
    assert len(second.audio) == 11360 and second.ticket == first.ticket
    assert sent(core.partial_decoded(first.ticket, "so far")) == [Partial(utt=0, text="so far")]
    (final,) = submitted(feed(core, End(utt=0)))
    assert not core.partial_stale(second.ticket), "decoding as the utterance ended: still news"
    assert sent(core.partial_decoded(second.ticket, "so far on")) == [Partial(utt=0, text="so far on")]
    core.final_decoded(final.job, Transcript("all of it"))
    assert core.partial_stale(second.ticket) and core.partial_decoded(second.ticket, "late") == []


def test_a_silence_after_speech_asks_for_a_partial_of_the_words_before_it_at_once():
    core = make_core()
    feed(core, HELLO, Start(utt=0, t=0.0))
    (first,) = requested(feed(core, audio(4800)))  # at the cadence
    assert requested(feed(core, audio(1600))) == [], "0.1 s of speech after it: not due yet"
    quiet = round(TRAILING_QUIET_S * SAMPLE_RATE)
    assert requested(feed(core, audio(quiet - 160, level=0))) == [], "a silence shorter than a pause"
    (trailing,) = requested(feed(core, audio(160, level=0)))
    assert len(trailing.audio) == 4800 + 1600 + quiet
    assert requested(feed(core, audio(1600, level=0))) == [], "once a silence: no new speech since"
    (due,) = requested(feed(core, audio(4800)))  # speech again, at the cadence
    assert requested(feed(core, audio(quiet, level=0))) == [], "its words are in that partial already"


def test_the_engine_gets_the_tail_of_the_finals_in_whole_words_and_the_vocabulary_only_if_offered():
    words = " ".join(f"word{i}" for i in range(60))
    for features, vocabulary in (((FEATURE_VOCABULARY,), VOCABULARY), ((), ())):
        core = make_core(features)
        feed(core, Hello(session="s", vocabulary=VOCABULARY))
        (first,) = submitted(feed(core, Start(utt=0, t=0.0), audio(1600), End(utt=0)))
        core.final_decoded(first.job, Transcript(words))
        (second,) = submitted(feed(core, Start(utt=1, t=1.0), audio(1600), End(utt=1)))
        context = second.hints.context
        assert 0 < len(context) <= CONTEXT_CHARS and words.endswith(" " + context)
        assert (first.hints.vocabulary, second.hints.vocabulary) == (vocabulary, vocabulary)


POLISH = (FEATURE_POLISH,)


def polish_job(core: StreamCore, job: int, samples: int) -> list:
    frames = [audio(min(SR, samples - i)) for i in range(0, samples, SR)]
    return feed(core, Polish(job=job, offset=60.0, context="before"), *frames, PolishEnd(job=job))


def test_a_polish_window_goes_at_once_whatever_the_real_time_allowance_and_is_answered_under_its_job():
    core = make_core(POLISH, limits=StreamLimits(audio_rate=1.0, audio_burst_s=1.0, max_utterance_s=1.0))
    feed(core, HELLO)
    [submit] = [a for a in polish_job(core, 7, 20 * SR) if isinstance(a, SubmitPolish)]
    assert len(submit.audio) == 20 * SR and submit.hints.context == "before" and core.polish_owed == 1
    assert core.idle() == [], "a client waiting for its answer is not idle"
    segment = Segment(0.5, 2.0, "polished text", "en", (("polished", 0.5, 1.0), ("text", 1.0, 2.0)))
    words = (("polished", 0.5, 1.0), ("text", 1.0, 2.0))
    assert sent(core.polish_decoded(submit.job, [segment])) == [
        Polished(job=7, offset=60.0, segments=(PolishSegment(0.5, 2.0, "polished text", "en", words),))]
    assert core.polish_owed == 0 and core.polish_decoded(submit.job, [segment]) == [], "answered once"


def test_polish_limits_too_many_jobs_closes_4009_and_a_window_too_long_4003():
    core = make_core(POLISH)
    feed(core, HELLO)
    for job in range(MAX_POLISH_JOBS):
        polish_job(core, job, SR)
    actions = feed(core, Polish(job=9, offset=0.0))
    assert [e.code for e in sent(actions, Error)] == ["too_many_jobs"] and actions[-1].code == CLOSE_OVERLOADED
    core = make_core(POLISH)
    actions = feed(core, HELLO, Polish(job=0, offset=0.0), *[audio(SR)] * int(MAX_POLISH_S), audio(2))
    assert [e.code for e in sent(actions, Error)] == ["window_too_long"]
    assert actions[-1] == Close(CLOSE_UTTERANCE_TOO_LONG, "window_too_long")


def test_an_answer_too_long_for_a_frame_goes_without_its_words_and_a_failure_names_the_job():
    core = make_core(POLISH)
    feed(core, HELLO)
    [first] = [a for a in polish_job(core, 0, SR) if isinstance(a, SubmitPolish)]
    [second] = [a for a in polish_job(core, 1, SR) if isinstance(a, SubmitPolish)]
    words = tuple((f"w{i}", i / 2000, (i + 1) / 2000) for i in range(2000))  # more than a client reads
    [answer] = sent(core.polish_decoded(first.job, [Segment(0.0, 1.0, "long", "en", words)]))
    assert answer.segments == (PolishSegment(0.0, 1.0, "long", "en"),)
    assert sent(core.polish_failed(second.job, "out of memory")) == [
        Error("polish_failed", "engine failed on polish job 1: out of memory", job=1)]
    assert core.accepting, "the connection goes on"
