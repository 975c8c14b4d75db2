"""Hypothesis-generated frames against one live worker process.

Each example opens a connection, sends a few frames (garbage, JSON with wrong
types, valid prefixes followed by garbage, odd and even binary frames, frames
around every size limit), says ``bye`` if it still can, and reads until the
worker closes. Whatever came in, the worker answers only with valid v1
messages, an ``error`` only right before a 4000-4999 close, and closes with a
code from the table in ``live/protocol.py`` (or 1009/1007 from websockets
itself). Meanwhile a well-behaved client on another thread gets every final,
and ``/health`` still answers at the end.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.fake_engine import fake_text
from live.stream import StreamLimits
from wire.protocol import (
    CLOSE_NORMAL,
    CLOSE_REASONS,
    MAX_AUDIO_FRAME_BYTES,
    MAX_TEXT_FRAME_BYTES,
    Bye,
    Caption,
    End,
    Error,
    Hello,
    Ready,
    Start,
    decode_worker,
    encode,
)

from .conftest import RawClient, noise
from .processes import start_serve, stop

EXAMPLES = 150
MAX_FRAME = StreamLimits().max_frame_bytes  # what websockets reads at all (worker default)
#: close codes a fuzzed connection may end with: the protocol's table, plus websockets' own
#: 1009 (frame over max_size) and 1007 (text frame that is not UTF-8, RFC 6455)
ALLOWED_CLOSES = set(CLOSE_REASONS) | {1007, 1009}


# -- the worker process and a well-behaved neighbour -----------------------------------


@dataclass
class LiveWorker:
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"


def _health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def live_worker(tmp_path_factory) -> Iterator[LiveWorker]:
    folder = tmp_path_factory.mktemp("fuzz-worker")
    log = folder / "worker.log"
    proc, port = start_serve(["--no-auth", "--engine", "fake", "--model", "per_call=0.002", "--no-warmup"], log)
    try:
        yield LiveWorker(proc, port, log)
    finally:
        stop(proc)


class Neighbour(threading.Thread):
    """A well-behaved client on its own event loop: a 0.3 s utterance every ~0.4 s until stopped."""

    def __init__(self, url: str):
        super().__init__(name="neighbour", daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.sent: dict[int, str] = {}
        self.finals: list[Caption] = []
        self.errors: list[Error] = []
        self.close_code: int | None = None
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by the test, on the test's thread
            self.failure = exc

    async def _run(self) -> None:
        client = await RawClient.open(self.url, session="neighbour")
        reader = asyncio.create_task(self._read(client))
        utt = 0
        while not self.stop.is_set():
            pcm = noise(0.3, 5000 + utt)
            self.sent[utt] = fake_text(pcm)
            await client.send_utterance(utt, pcm, t=utt * 0.4, pace=0.05)
            utt += 1
            await asyncio.sleep(0.1)
        await client.ws.send(encode(Bye()))
        await asyncio.wait_for(reader, 15)

    async def _read(self, client: RawClient) -> None:
        try:
            async for frame in client.ws:
                msg = decode_worker(frame)
                if isinstance(msg, Caption):
                    self.finals.append(msg)
                elif isinstance(msg, Error):
                    self.errors.append(msg)
        except ConnectionClosed:
            pass
        self.close_code = client.ws.close_code


# -- strategies ----------------------------------------------------------------------

json_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=24))
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=8,
)
message_types = st.sampled_from(["hello", "start", "end", "bye", "ready", "partial", "final", "error",
                                 "HELLO", "", "nope"])
# Objects shaped like messages, with any field of any type.
message_like = st.fixed_dictionaries(
    {"type": message_types | json_values},
    optional={name: json_values | st.integers(-5, 5) for name in
              ("utt", "t", "protocol", "session", "sample_rate", "language", "text", "start", "end")},
).map(lambda obj: json.dumps(obj))
TEMPLATES = [
    {"type": "hello", "protocol": 1, "session": "fuzz", "sample_rate": 16000, "language": "auto"},
    {"type": "start", "utt": 1, "t": 0.5},
    {"type": "end", "utt": 0},
]


@st.composite
def mistyped(draw) -> str:
    """A valid client message with one field dropped or replaced by a value of any type."""
    obj = dict(draw(st.sampled_from(TEMPLATES)))
    key = draw(st.sampled_from(sorted(k for k in obj if k != "type")))
    if draw(st.booleans()):
        del obj[key]
    else:
        obj[key] = draw(json_values)
    return json.dumps(obj)


valid_messages = st.one_of(
    st.builds(lambda s: encode(Hello(session=s)), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True)),
    st.builds(lambda u, t: encode(Start(utt=u, t=t)), st.integers(0, 5), st.floats(0, 100)),
    st.builds(lambda u: encode(End(utt=u)), st.integers(0, 5)),
    st.just(encode(Bye())),
)
audio = st.integers(0, 3200).flatmap(lambda n: st.binary(min_size=n, max_size=n))  # odd and even
random_text = st.text(max_size=200)
not_utf8 = st.sampled_from([b"\xff\xfe", b'{"type": "hello\xc3"}', b"\xed\xa0\x80"])
# Frames right around every size limit (mostly zeros: the size is the point).
SIZES = [MAX_AUDIO_FRAME_BYTES - 1, MAX_AUDIO_FRAME_BYTES, MAX_AUDIO_FRAME_BYTES + 1,
         MAX_AUDIO_FRAME_BYTES + 2, MAX_TEXT_FRAME_BYTES, MAX_TEXT_FRAME_BYTES + 1, MAX_FRAME,
         MAX_FRAME + 1]
huge_binary = st.sampled_from(SIZES).map(bytes)
huge_text = st.sampled_from(SIZES).map(lambda n: json.dumps({"type": "end", "utt": 0, "pad": "x" * max(0, n - 40)}))


@dataclass(frozen=True)
class NotUtf8:
    """A text frame whose payload is not UTF-8 (websockets sends bytes as text when told)."""

    data: bytes


frames = st.one_of(
    valid_messages, message_like, mistyped(), audio, random_text, st.binary(max_size=64),
    huge_binary, huge_text, not_utf8.map(NotUtf8),
)
PREFIXES = {
    "none": [],
    "hello": [encode(Hello(session="fuzz"))],
    "hello+start": [encode(Hello(session="fuzz")), encode(Start(utt=0, t=0.0))],
    "hello+start+audio": [encode(Hello(session="fuzz")), encode(Start(utt=0, t=0.0)), bytes(3200)],
}


# -- one example -----------------------------------------------------------------------


@dataclass
class Outcome:
    received: list = field(default_factory=list)
    close_code: int | None = None
    ended: set[int] = field(default_factory=set)  # utts we sent an `end` for


async def _exchange(url: str, to_send: list) -> Outcome:
    outcome = Outcome()
    async with connect(url, compression=None, max_size=2**21, open_timeout=10, close_timeout=5) as ws:
        try:
            for frame in [*to_send, encode(Bye())]:
                if isinstance(frame, NotUtf8):
                    await ws.send(frame.data, text=True)
                    continue
                await ws.send(frame)
                if isinstance(frame, str):
                    try:
                        obj = json.loads(frame)
                    except ValueError:
                        continue
                    if isinstance(obj, dict) and obj.get("type") == "end" and isinstance(obj.get("utt"), int):
                        outcome.ended.add(obj["utt"])
        except ConnectionClosed:
            pass

        async def _read() -> None:
            try:
                while True:
                    frame = await ws.recv()
                    assert isinstance(frame, str), "the worker never sends binary frames"
                    outcome.received.append(decode_worker(frame))  # raises on anything not v1
            except ConnectionClosed:
                pass

        await asyncio.wait_for(_read(), 20)
        outcome.close_code = ws.close_code
    return outcome


def _check(outcome: Outcome) -> None:
    code = outcome.close_code
    assert code in ALLOWED_CLOSES, f"undocumented close code {code}"
    errors = [m for m in outcome.received if isinstance(m, Error)]
    if code == CLOSE_NORMAL:
        assert errors == [], "a stream that ends with bye has no error"
    elif code is not None and code >= 4000:
        assert len(errors) == 1 and outcome.received[-1] is errors[0], "one error, right before the close"
        assert errors[0].code and errors[0].message
    else:  # 1007/1009: websockets refused a frame itself. That can race the worker's own
        # error for an earlier frame (websockets parses what arrives before the worker's close
        # frame is out), so at most that one error precedes it.
        assert len(errors) <= 1, f"close {code} after errors {errors}"
    readies = [i for i, m in enumerate(outcome.received) if isinstance(m, Ready)]
    assert readies in ([], [0]), "ready comes once, first"
    for final in (m for m in outcome.received if isinstance(m, Caption)):
        assert final.utt in outcome.ended, f"final for utt {final.utt}, which was never ended"


# -- the test -------------------------------------------------------------------------


def test_fuzzed_frames_get_answers_errors_or_documented_closes_and_the_worker_lives_on(live_worker):
    neighbour = Neighbour(live_worker.url)
    neighbour.start()
    tally: Counter[str] = Counter()
    tried: list[int] = []

    @settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(prefix=st.sampled_from(list(PREFIXES)), body=st.lists(frames, min_size=1, max_size=6))
    def one_example(prefix: str, body: list) -> None:
        outcome = asyncio.run(_exchange(live_worker.url, PREFIXES[prefix] + body))
        tried.append(1)
        _check(outcome)
        errors = [m.code for m in outcome.received if isinstance(m, Error)]
        tally[f"close {outcome.close_code}" + (f" ({errors[0]})" if errors else "")] += 1
        assert live_worker.proc.poll() is None, "the worker process died"

    try:
        one_example()
    finally:
        neighbour.stop.set()
        neighbour.join(30)
    print(f"\nfuzz: {len(tried)} inputs tried; outcomes:")
    for outcome, count in tally.most_common():
        print(f"  {count:4d}  {outcome}")

    assert len(tried) >= EXAMPLES
    assert neighbour.failure is None, neighbour.failure
    assert not neighbour.is_alive()
    assert len(neighbour.sent) >= 3, "the neighbour streamed all along"
    assert {c.utt: c.text for c in neighbour.finals} == neighbour.sent
    assert len(neighbour.finals) == len(neighbour.sent)
    assert neighbour.errors == [] and neighbour.close_code == CLOSE_NORMAL
    assert live_worker.proc.poll() is None
    health = _health(live_worker.port)
    assert health["status"] == "ok" and health["streams"] == 0
    assert "Traceback" not in live_worker.log.read_text(), "a task died with an exception"
