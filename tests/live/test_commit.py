"""Feature ``commit``: the settled sentences of a long open utterance are final before it ends.

The core is driven directly (frames and engine outcomes in, actions out); the
client's side (keeping the newest commit and telling it again after a
reconnect) against a scripted worker.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from websockets.asyncio.server import serve

from capture.client import ClientOptions, StreamClient
from live.actions import CancelFinal, RequestPartial, Send, SubmitFinal
from live.stream import (
    COMMIT_MARGIN_S,
    MIN_COMMIT_S,
    StreamCore,
    StreamLimits,
    cut_point,
    settled_prefix,
)
from models import Transcript
from wire.protocol import (
    FEATURE_COMMIT,
    FEATURE_PAUSE,
    MAX_COMMIT_TEXT,
    SAMPLE_RATE,
    Caption,
    Commit,
    End,
    Hello,
    Partial,
    Pause,
    Ready,
    Start,
    decode,
    encode,
)

SR = SAMPLE_RATE
LIMITS = StreamLimits(max_utterance_s=30.0, audio_rate=0.0, messages_per_s=1000.0, message_burst=1000.0)
#: a decode of 3 s of audio: two sentences, the cut between them at 1.35 s
WORDS = (("One", 0.0, 0.4), ("two", 0.4, 0.8), ("three.", 0.8, 1.2), ("Four", 1.5, 1.8), ("five", 1.8, 2.2))
DECODED = Transcript(text="One two three. Four five", lang="en", words=WORDS)


class Core(StreamCore):
    """A core whose transport takes every message at once."""

    def _step(self, handle, *args):
        actions = super()._step(handle, *args)
        for _ in of(actions, Send):
            self.taken()
        return actions


def make_core(offer: tuple[str, ...] = (FEATURE_PAUSE, FEATURE_COMMIT),
              asks: tuple[str, ...] = (FEATURE_COMMIT,)) -> StreamCore:
    ready = Ready(engine="whisper", model="test", max_utterance_s=LIMITS.max_utterance_s, features=offer)
    core = Core(LIMITS, ready, lambda open_s: 0.5)
    core.receive(encode(Hello(session="s", features=asks)))
    return core


def speak(core: StreamCore, seconds: float) -> list:
    """``seconds`` of loud audio in frames of at most 1 s; the actions of them all."""
    data = np.full(round(seconds * SR), 3000, dtype="<i2").tobytes()
    return [a for k in range(0, len(data), 2 * SR) for a in core.receive(data[k:k + 2 * SR])]


def of(actions: list, kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


def sent(actions: list, kind: type) -> list:
    return [a.message for a in actions if isinstance(a, Send) and isinstance(a.message, kind)]


def open_with_partials(core: StreamCore, first: str, second: str) -> list:
    """Utterance 0 open with 3 s of audio, and two partials of it; the actions of the second."""
    core.receive(encode(Start(utt=0, t=10.0)))
    actions = speak(core, 2.5)
    request = of(actions, RequestPartial)[-1]
    core.partial_decoded(request.ticket, first, samples=round(2.5 * SR))
    speak(core, 0.5)
    return core.partial_decoded(request.ticket, second, samples=3 * SR)


def test_a_settled_prefix_needs_an_end_both_hypotheses_share_and_an_agreed_word_after_it():
    assert settled_prefix("One two three. Four".split(), "one two three. Four five".split()) == 3
    assert settled_prefix("One two three.".split(), "One two three. Four".split()) == 0  # the end was a guess
    assert settled_prefix("One two three, four".split(), "One two three. Four".split()) == 3  # a clause end
    assert settled_prefix("One two three four".split(), "One two three. Four".split()) == 0  # only one ends there
    assert settled_prefix("A b. C d. E".split(), "A b. C d. E f".split()) == 4  # the last one
    assert settled_prefix("Wait... then".split(), "Wait... then more".split()) == 0  # a trailing-off, no end
    assert settled_prefix([], "One. Two".split()) == 0


def test_the_cut_is_between_the_settled_sentence_end_and_the_next_word_where_the_decode_has_them():
    assert cut_point(WORDS, "One two three. Four".split(), 3.0) == (3, pytest.approx(1.35))
    assert cut_point(WORDS, "Won too three. Four".split(), 3.0) == (3, pytest.approx(1.35))  # worded otherwise
    assert cut_point(WORDS, "One two three. Five".split(), 3.0) is None  # another word after the end
    assert cut_point(WORDS, "One two tree. Four".split(), 3.0) is None  # the decode heard another end
    comma = WORDS[:2] + (("three,", 0.8, 1.2),) + WORDS[3:]
    assert cut_point(comma, "One two three. Four".split(), 3.0) == (3, pytest.approx(1.35))  # a clause end
    flat = WORDS[:2] + (("three", 0.8, 1.2),) + WORDS[3:]
    assert cut_point(flat, "One two three. Four".split(), 3.0) is None  # the decode runs on
    assert cut_point(WORDS[:3], "One two three. Four".split(), 3.0) is None  # no word after the end
    far = "a b c d e f g h i j k three. Four".split()  # the same words, but far from where they were
    assert cut_point(WORDS, far, 3.0) is None
    early = (("Hi.", 0.0, 0.3), ("There", 0.5, 0.9))
    assert cut_point(early, ["Hi.", "There"], 3.0) is None  # a piece shorter than MIN_COMMIT_S
    assert MIN_COMMIT_S > 0.4
    assert cut_point(WORDS, "One two three. Four".split(), 1.35 + COMMIT_MARGIN_S / 2) is None  # too near the end


def test_a_settled_sentence_is_decoded_as_a_final_committed_and_never_decoded_again():
    core = make_core()
    actions = open_with_partials(core, "One two three. Four", "One two three. Four five")
    assert sent(actions, Partial) == [Partial(utt=0, text="One two three. Four five")]
    (job,) = of(actions, SubmitFinal)  # the commit decode: the audio the second partial had
    assert len(job.audio) == 3 * SR

    actions = core.final_decoded(job.job, DECODED)
    cut = round(1.35 * SR)
    assert sent(actions, Commit) == [Commit(utt=0, samples=cut, text="One two three.")]

    actions = speak(core, 1.0)  # partials now decode only what follows the cut
    request = of(actions, RequestPartial)[-1]
    assert len(request.audio) == 4 * SR - cut
    assert "One two three." in request.hints.context  # the committed text is the context
    actions = core.partial_decoded(request.ticket, "Four five six", samples=4 * SR)
    assert sent(actions, Partial) == [Partial(utt=0, text="One two three. Four five six")]

    (final_job,) = of(core.receive(encode(End(utt=0))), SubmitFinal)
    assert len(final_job.audio) == 4 * SR - cut
    (caption,) = sent(core.final_decoded(final_job.job, Transcript("Four five six.", "en")), Caption)
    assert caption.text == "One two three. Four five six."
    assert (caption.start, caption.end) == (10.0, 14.0)  # the whole utterance
    assert core.context.endswith("One two three. Four five six.")


def test_nothing_is_committed_for_a_client_that_did_not_ask_or_a_worker_that_does_not_offer():
    for core in (make_core(asks=()), make_core(offer=(FEATURE_PAUSE,))):
        actions = open_with_partials(core, "One two three. Four", "One two three. Four five")
        assert of(actions, SubmitFinal) == []


def test_a_decode_that_disagrees_commits_nothing_and_is_not_tried_again_until_more_settles():
    core = make_core()
    actions = open_with_partials(core, "One two three. Four", "One two three. Four five")
    (job,) = of(actions, SubmitFinal)
    other = Transcript(text="One two tree. Four five", words=WORDS[:2] + (("tree.", 0.8, 1.2),) + WORDS[3:])
    assert sent(core.final_decoded(job.job, other), Commit) == []

    request = of(speak(core, 0.5), RequestPartial)[-1]
    assert of(core.partial_decoded(request.ticket, "One two three. Four five six", samples=round(3.5 * SR)),
              SubmitFinal) == []  # the same sentence settled: no second decode for it
    request = of(speak(core, 0.5), RequestPartial)[-1]
    actions = core.partial_decoded(request.ticket, "One two three. Four five six. Seven",
                                   samples=4 * SR)
    assert of(actions, SubmitFinal) == []  # the sentence after it has not settled yet (one hypothesis)
    request = of(speak(core, 0.5), RequestPartial)[-1]
    actions = core.partial_decoded(request.ticket, "One two three. Four five six. Seven eight",
                                   samples=round(4.5 * SR))
    assert len(of(actions, SubmitFinal)) == 1  # a later sentence settled: tried again


def test_the_end_withdraws_a_commit_decode_and_the_final_decodes_the_whole_utterance():
    core = make_core()
    (job,) = of(open_with_partials(core, "One two three. Four", "One two three. Four five"), SubmitFinal)
    actions = core.receive(encode(End(utt=0)))
    assert CancelFinal(job.job) in actions
    (final_job,) = of(actions, SubmitFinal)
    assert len(final_job.audio) == 3 * SR
    assert core.final_decoded(job.job, DECODED) == []  # withdrawn: nothing comes of it
    (caption,) = sent(core.final_decoded(final_job.job, DECODED), Caption)
    assert caption.text == "One two three. Four five"


def test_a_pause_keeps_its_decode_as_the_final_and_a_commit_decode_then_commits_nothing():
    core = make_core()
    (job,) = of(open_with_partials(core, "One two three. Four", "One two three. Four five"), SubmitFinal)
    (early,) = of(core.receive(encode(Pause(utt=0, samples=3 * SR))), SubmitFinal)
    assert sent(core.final_decoded(job.job, DECODED), Commit) == []
    core.final_decoded(early.job, DECODED)
    (caption,) = sent(core.receive(encode(End(utt=0))), Caption)
    assert caption.text == "One two three. Four five"


def test_nothing_more_is_committed_once_the_text_would_be_longer_than_a_commit_may_be():
    core = make_core()
    long = "word " * (MAX_COMMIT_TEXT // 5)
    core.receive(encode(Start(utt=0, t=0.0, commit_samples=SR // 2, commit_text=long.strip())))
    speak(core, 2.5)
    request = of(speak(core, 0.5), RequestPartial)[-1]
    core.partial_decoded(request.ticket, "One two three. Four", samples=3 * SR - SR // 2)
    request = of(speak(core, 0.5), RequestPartial)[-1]
    (job,) = of(core.partial_decoded(request.ticket, "One two three. Four five", samples=3 * SR), SubmitFinal)
    assert sent(core.final_decoded(job.job, DECODED), Commit) == []
    (final_job,) = of(core.receive(encode(End(utt=0))), SubmitFinal)
    assert len(final_job.audio) == 3 * SR  # all that follows the commit it began with


def test_a_failed_commit_decode_only_means_no_commit():
    core = make_core()
    (job,) = of(open_with_partials(core, "One two three. Four", "One two three. Four five"), SubmitFinal)
    assert core.final_failed(job.job) == []
    (final_job,) = of(core.receive(encode(End(utt=0))), SubmitFinal)
    (caption,) = sent(core.final_decoded(final_job.job, DECODED), Caption)
    assert caption.text == "One two three. Four five" and not core.closed


def test_an_utterance_sent_again_with_its_commit_is_decoded_after_it_and_its_final_begins_with_it():
    core = make_core()
    cut = round(1.35 * SR)
    core.receive(encode(Start(utt=4, t=2.0, commit_samples=cut, commit_text="One two three.")))
    speak(core, 3.0)
    (job,) = of(core.receive(encode(End(utt=4))), SubmitFinal)
    assert len(job.audio) == 3 * SR - cut
    (caption,) = sent(core.final_decoded(job.job, Transcript("Four five.", "en")), Caption)
    assert caption.text == "One two three. Four five."

    plain = make_core(offer=(FEATURE_PAUSE,))  # a worker without the feature decodes it whole
    plain.receive(encode(Start(utt=4, t=2.0, commit_samples=cut, commit_text="One two three.")))
    speak(plain, 3.0)
    (job,) = of(plain.receive(encode(End(utt=4))), SubmitFinal)
    assert len(job.audio) == 3 * SR


def test_the_commit_fields_travel_only_when_set_and_are_bounded():
    assert "commit_samples" not in encode(Start(utt=1, t=0.0))
    start = Start(utt=1, t=0.0, commit_samples=16000, commit_text="Hi.")
    assert decode(encode(start)) == start
    assert decode(encode(Commit(utt=3, samples=5, text="x"))) == Commit(utt=3, samples=5, text="x")
    assert decode(encode(Hello(session="s", features=("commit",)))).features == ("commit",)
    with pytest.raises(ValueError):
        decode(json.dumps({"type": "commit", "utt": 1, "samples": 0, "text": "x"}))
    with pytest.raises(ValueError):
        decode(json.dumps({"type": "start", "utt": 1, "t": 0, "commit_samples": 5, "commit_text": "x" * 20000}))


async def test_the_client_tells_a_new_connection_what_the_last_one_committed():
    """A scripted worker commits part of utterance 0 and drops the connection; the
    resend opens with that commit, and the final then ends the utterance."""
    starts: list[dict] = []
    resent = asyncio.Event()
    connections = 0

    async def worker(ws):
        nonlocal connections
        connections += 1
        hello = json.loads(await ws.recv())
        assert hello["features"] == ["commit"]
        await ws.send(encode(Ready(engine="whisper", model="m", max_utterance_s=30.0, features=(FEATURE_COMMIT,))))
        async for frame in ws:
            if isinstance(frame, str) and json.loads(frame)["type"] == "start":
                starts.append(json.loads(frame))
                if connections == 1:
                    await ws.send(encode(Commit(utt=0, samples=8000, text="One two three.")))
                    await ws.send(encode(Commit(utt=0, samples=4000, text="One.")))  # stale: ignored
                    await ws.close(1011)
                    return
                resent.set()
            if isinstance(frame, str) and json.loads(frame)["type"] == "end":
                await ws.send(encode(Caption(utt=0, start=0.0, end=1.0, text="One two three. Four.")))
            if isinstance(frame, str) and json.loads(frame)["type"] == "bye":
                await ws.close(1000)
                return

    finals: list[Caption] = []
    commits: list[Commit] = []
    async with serve(worker, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = StreamClient(ClientOptions(url=f"ws://127.0.0.1:{port}", session="s", backoff_initial_s=0.01),
                              on_final=lambda c, owed: finals.append(c), on_commit=commits.append)
        client.start_utterance(0, 0.0)
        client.add_audio(0, np.zeros(SR, dtype=np.int16))
        stop = asyncio.Event()
        runner = asyncio.create_task(client.run(stop))
        await asyncio.wait_for(resent.wait(), 10)
        client.end_utterance(0)
        stop.set()
        await asyncio.wait_for(runner, 10)

    assert commits == [Commit(utt=0, samples=8000, text="One two three.")]
    assert "commit_samples" not in starts[0]
    assert (starts[1]["commit_samples"], starts[1]["commit_text"]) == (8000, "One two three.")
    assert [f.text for f in finals] == ["One two three. Four."]
