"""Wire protocol v1: round trips, strict validation, and robustness against any frame."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wire.protocol import (
    CLOSE_FRAME_TOO_LARGE,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNSUPPORTED_VERSION,
    MAX_AUDIO_FRAME_BYTES,
    MAX_CODE,
    MAX_SESSION_NAME,
    MAX_TERM,
    MAX_TEXT_FRAME_BYTES,
    MAX_VOCABULARY,
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
    ProtocolError,
    Ready,
    Start,
    caption_from_dict,
    clean_vocabulary,
    decode,
    decode_client,
    decode_worker,
    encode,
)

CLIENT_MESSAGES = [
    Hello(session="lecture-2024_01.a:b"),
    Hello(session="s", language="zh"),
    Start(utt=0, t=0.0),
    Start(utt=7, t=12.345678),
    End(utt=7),
    Bye(),
    Polish(job=0, offset=61.5, language="en", context="the text before", vocabulary=("Fourier",)),
    Polish(job=3, offset=0.0),
    PolishEnd(job=3),
]
WORKER_MESSAGES = [
    Ready(engine="fake", model="(no weights)", max_utterance_s=30.0),
    Partial(utt=3, text="hello wor"),
    Partial(utt=3, text=""),
    Caption(utt=3, start=1.25, end=4.5, text="hello world, ünïcödé 你好", lang="en",
            emotion="NEUTRAL", events=("BGM", "Laughter")),
    Caption(utt=0, start=0.0, end=0.0, text=""),
    Error(code="bad_message", message="what went wrong"),
    Error(code="polish_failed", message="engine failed", job=4),
    Polished(job=4, offset=61.5, segments=(
        PolishSegment(0.25, 3.0, "Good morning.", "en", (("Good", 0.25, 0.8), ("morning.", 0.8, 3.0))),
        PolishSegment(3.5, 4.0, "你好"))),
    Polished(job=5, offset=0.0),
]


def _json(obj: object) -> str:
    return json.dumps(obj)


def _raises(frame, decoder=decode) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decoder(frame)
    return info.value


# -- round trips -------------------------------------------------------------


@pytest.mark.parametrize("message", CLIENT_MESSAGES + WORKER_MESSAGES, ids=repr)
def test_every_message_type_survives_encode_then_decode(message):
    frame = encode(message)
    assert isinstance(frame, str)
    assert decode(frame) == message
    assert json.loads(frame)["type"] == message.type


@pytest.mark.parametrize("message", CLIENT_MESSAGES, ids=repr)
def test_client_messages_round_trip_through_decode_client(message):
    assert decode_client(encode(message)) == message


@pytest.mark.parametrize("message", WORKER_MESSAGES, ids=repr)
def test_worker_messages_round_trip_through_decode_worker(message):
    assert decode_worker(encode(message)) == message


def test_final_is_the_wire_type_of_a_caption():
    assert json.loads(encode(WORKER_MESSAGES[3]))["type"] == "final"


@pytest.mark.parametrize("size", [0, 2, 3200, MAX_AUDIO_FRAME_BYTES])
def test_audio_bytes_pass_through_encode_and_decode_unchanged(size):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert encode(data) == data
    assert decode(data) == data
    assert decode_client(data) == data
    assert decode(bytearray(data)) == data
    assert decode(memoryview(data)) == data


def test_caption_times_are_rounded_to_milliseconds_on_the_wire():
    frame = encode(Caption(utt=1, start=1.23456, end=2.0004, text="x"))
    obj = json.loads(frame)
    assert obj["start"] == 1.235 and obj["end"] == 2.0


def test_caption_from_dict_reads_a_journal_line_without_type():
    caption = WORKER_MESSAGES[3]
    obj = json.loads(encode(caption))
    del obj["type"]
    assert caption_from_dict(obj) == caption


def test_caption_from_dict_rejects_a_non_object():
    with pytest.raises(ProtocolError):
        caption_from_dict(["not", "a", "dict"])  # type: ignore[arg-type]


_ms = st.integers(min_value=0, max_value=10 * 24 * 3600 * 1000)


@given(
    utt=st.integers(min_value=0, max_value=2**53),
    t=st.floats(min_value=0.0, max_value=10 * 24 * 3600.0, allow_nan=False),
    text=st.text(max_size=200),
)
def test_generated_start_end_partial_messages_round_trip(utt, t, text):
    for message in (Start(utt=utt, t=t), End(utt=utt), Partial(utt=utt, text=text)):
        assert decode(encode(message)) == message


@given(
    utt=st.integers(min_value=0, max_value=2**53),
    a=_ms,
    b=_ms,
    text=st.text(max_size=200),
    events=st.lists(st.text(max_size=64), max_size=16),
)
def test_generated_captions_round_trip(utt, a, b, text, events):
    start, end = min(a, b) / 1000, max(a, b) / 1000
    caption = Caption(utt=utt, start=start, end=end, text=text, lang="en", emotion="HAPPY",
                      events=tuple(events))
    assert decode_worker(encode(caption)) == caption


# -- strict validation -------------------------------------------------------


def test_unknown_message_type_is_rejected_as_unknown_type():
    err = _raises(_json({"type": "shout", "utt": 1}))
    assert err.code == "unknown_type"
    assert err.close_code == CLOSE_PROTOCOL_ERROR


@pytest.mark.parametrize("frame", [
    "not json", "", "[1, 2]", '"hello"', "42", "null", '{"utt": 1}', '{"type": 5}',
    '{"type": null}', '{"a":' * 12_000, "[" * 60_000,
])
def test_text_that_is_not_a_typed_json_object_is_a_protocol_error(frame):
    err = _raises(frame)
    assert err.code == "bad_message"
    assert err.close_code == CLOSE_PROTOCOL_ERROR


@pytest.mark.parametrize("obj, field", [
    ({"type": "start", "t": 1.0}, "utt"),
    ({"type": "start", "utt": 1}, "t"),
    ({"type": "end"}, "utt"),
    ({"type": "hello", "protocol": 1}, "session"),
    ({"type": "hello", "session": "s"}, "protocol"),
    ({"type": "partial", "utt": 1}, "text"),
    ({"type": "final", "utt": 1, "start": 0, "text": "x"}, "end"),
    ({"type": "error", "code": "x"}, "message"),
    ({"type": "ready", "protocol": 1, "engine": "e", "model": "m"}, "max_utterance_s"),
])
def test_missing_field_is_rejected_as_missing_field(obj, field):
    err = _raises(_json(obj))
    assert err.code == "missing_field"
    assert field in str(err)
    assert err.close_code == CLOSE_PROTOCOL_ERROR


@pytest.mark.parametrize("frame", [
    _json({"type": "start", "utt": True, "t": 0.0}),
    _json({"type": "start", "utt": 1.0, "t": 0.0}),
    _json({"type": "start", "utt": "1", "t": 0.0}),
    _json({"type": "start", "utt": 1, "t": "1.5"}),
    _json({"type": "start", "utt": 1, "t": True}),
    _json({"type": "start", "utt": 1, "t": None}),
    _json({"type": "start", "utt": 1, "t": [1.0]}),
    '{"type": "start", "utt": 1, "t": NaN}',
    '{"type": "start", "utt": 1, "t": Infinity}',
    '{"type": "start", "utt": 1, "t": -Infinity}',
    '{"type": "start", "utt": 1, "t": 1e999}',
    _json({"type": "start", "utt": 1, "t": -0.5}),
    _json({"type": "start", "utt": 1, "t": 1e12}),
    _json({"type": "end", "utt": -1}),
    _json({"type": "end", "utt": 2**60}),
    _json({"type": "end", "utt": False}),
    _json({"type": "hello", "protocol": True, "session": "s"}),
    _json({"type": "hello", "protocol": 1, "session": "s", "sample_rate": "16000"}),
    _json({"type": "hello", "protocol": 1, "session": "s", "sample_rate": 16000.0}),
    _json({"type": "hello", "protocol": 1, "session": "s", "language": 5}),
    _json({"type": "hello", "protocol": 1, "session": "s", "language": "x" * 17}),
    _json({"type": "partial", "utt": 1, "text": 5}),
    _json({"type": "final", "utt": 1, "start": 2.0, "end": 1.0, "text": "x"}),
    _json({"type": "final", "utt": 1, "start": 0, "end": 1, "text": "x", "events": "BGM"}),
    _json({"type": "final", "utt": 1, "start": 0, "end": 1, "text": "x", "events": [1]}),
    _json({"type": "final", "utt": 1, "start": 0, "end": 1, "text": "x", "events": ["e"] * 17}),
    '{"type": "final", "utt": 1, "start": NaN, "end": 1, "text": "x"}',
    _json({"type": "ready", "protocol": 1, "engine": "e", "model": "m", "max_utterance_s": -1}),
    _json({"type": "error", "code": "c" * 65, "message": "m"}),
])
def test_wrong_typed_or_out_of_range_field_is_rejected_as_bad_field(frame):
    err = _raises(frame)
    assert err.code == "bad_field"
    assert err.close_code == CLOSE_PROTOCOL_ERROR


@pytest.mark.parametrize("template", [
    '{"type": "start", "utt": 1, "t": %s}',
    '{"type": "final", "utt": 1, "start": 0, "end": %s, "text": ""}',
    '{"type": "final", "utt": 1, "start": %s, "end": 1, "text": ""}',
    '{"type": "ready", "protocol": 1, "engine": "e", "model": "m", "max_utterance_s": %s}',
], ids=["start.t", "final.end", "final.start", "ready.max_utterance_s"])
def test_huge_integer_time_is_rejected_as_bad_field(template):
    err = _raises(template % ("9" * 400))
    assert err.code == "bad_field"


def test_negative_utterance_number_is_rejected():
    for msg in ({"type": "start", "utt": -3, "t": 0.0}, {"type": "end", "utt": -3},
                {"type": "partial", "utt": -3, "text": "x"}):
        assert _raises(_json(msg)).code == "bad_field"


def test_text_frame_over_the_limit_closes_with_frame_too_large():
    frame = _json({"type": "partial", "utt": 1, "text": "a" * MAX_TEXT_FRAME_BYTES})
    err = _raises(frame)
    assert err.code == "frame_too_large"
    assert err.close_code == CLOSE_FRAME_TOO_LARGE


def test_text_frame_at_the_limit_is_accepted():
    head = _json({"type": "partial", "utt": 1, "text": ""})
    frame = head[:-2] + "a" * (MAX_TEXT_FRAME_BYTES - len(head)) + '"}'
    assert len(frame) == MAX_TEXT_FRAME_BYTES
    assert isinstance(decode(frame), Partial)


@pytest.mark.parametrize("decoder", [decode, decode_client])
def test_audio_frame_over_one_second_closes_with_frame_too_large(decoder):
    err = _raises(bytes(MAX_AUDIO_FRAME_BYTES + 2), decoder)
    assert err.code == "frame_too_large"
    assert err.close_code == CLOSE_FRAME_TOO_LARGE


def test_encoding_an_oversize_audio_frame_is_refused():
    with pytest.raises(ProtocolError):
        encode(bytes(MAX_AUDIO_FRAME_BYTES + 2))


@pytest.mark.parametrize("size", [1, 3, 3201, MAX_AUDIO_FRAME_BYTES - 1])
def test_odd_length_audio_frame_is_rejected(size):
    err = _raises(bytes(size), decode_client)
    assert err.code == "odd_audio_frame"
    assert err.close_code == CLOSE_PROTOCOL_ERROR


@pytest.mark.parametrize("version", [0, 2, 999])
def test_wrong_protocol_version_closes_with_4001(version):
    err = _raises(_json({"type": "hello", "protocol": version, "session": "s"}), decode_client)
    assert err.code == "unsupported_version"
    assert err.close_code == CLOSE_UNSUPPORTED_VERSION == 4001


def test_ready_from_a_worker_of_another_version_closes_with_4001():
    frame = _json({"type": "ready", "protocol": 2, "engine": "e", "model": "m", "max_utterance_s": 30})
    assert _raises(frame, decode_worker).close_code == CLOSE_UNSUPPORTED_VERSION


@pytest.mark.parametrize("rate", [8000, 44100, 48000, 0])
def test_sample_rate_other_than_16k_is_rejected(rate):
    err = _raises(_json({"type": "hello", "protocol": 1, "session": "s", "sample_rate": rate}))
    assert err.code == "bad_field"
    assert err.close_code == CLOSE_PROTOCOL_ERROR


@given(
    utt=st.integers(min_value=0, max_value=2**53),
    samples=st.integers(min_value=0, max_value=3600 * 16000),
    features=st.lists(st.text(max_size=MAX_CODE), max_size=16),
    vocabulary=st.lists(st.text(min_size=1, max_size=MAX_TERM).map(str.strip).filter(
        lambda t: t and t.isprintable()), max_size=MAX_VOCABULARY),
)
def test_generated_pause_ready_and_hello_vocabulary_round_trip(utt, samples, features, vocabulary):
    assert decode_client(encode(Pause(utt=utt, samples=samples))) == Pause(utt=utt, samples=samples)
    ready = Ready(engine="e", model="m", max_utterance_s=30.0, features=tuple(features))
    assert decode_worker(encode(ready)) == ready
    hello = Hello(session="s", vocabulary=tuple(vocabulary))
    assert decode_client(encode(hello)) == hello


def test_ready_and_hello_without_the_optional_fields_are_plain_v1():
    ready = decode_worker('{"type":"ready","protocol":1,"engine":"e","model":"m","max_utterance_s":30}')
    assert ready.features == ()
    assert "vocabulary" not in json.loads(encode(Hello(session="s")))
    assert decode_client('{"type":"hello","protocol":1,"session":"s"}').vocabulary == ()


@pytest.mark.parametrize("vocabulary", [
    "not a list", ["x" * (MAX_TERM + 1)], ["ok"] * (MAX_VOCABULARY + 1), [" "], ["tab\there"], [3],
])
def test_bad_vocabularies_are_rejected(vocabulary):
    err = _raises(json.dumps({"type": "hello", "protocol": 1, "session": "s", "vocabulary": vocabulary}),
                  decode_client)
    assert err.code == "bad_field"


@pytest.mark.parametrize("obj", [
    {"type": "pause", "utt": 1}, {"type": "pause", "utt": 1, "samples": -1},
    {"type": "pause", "utt": 1, "samples": 3600 * 16000 + 1}, {"type": "pause", "utt": 1, "samples": 1.5},
])
def test_bad_pauses_are_rejected(obj):
    assert _raises(json.dumps(obj), decode_client).code in ("missing_field", "bad_field")


def test_the_worker_never_receives_a_pause_as_its_own_message():
    assert _raises(encode(Pause(utt=1, samples=0)), decode_worker).code == "unexpected_type"


def test_hello_defaults_sample_rate_and_language():
    msg = decode_client(_json({"type": "hello", "protocol": 1, "session": "s", "language": ""}))
    assert msg == Hello(session="s", sample_rate=16000, language="auto")


@pytest.mark.parametrize("name", [
    "", ".hidden", "a/b", "../etc", "a b", "semi;colon", "x" * (MAX_SESSION_NAME + 1),
    "nul\x00", "new\nline", "back\\slash",
])
def test_bad_session_names_are_rejected(name):
    err = _raises(_json({"type": "hello", "protocol": 1, "session": name}), decode_client)
    assert err.code == "bad_field"
    assert err.close_code == CLOSE_PROTOCOL_ERROR


@pytest.mark.parametrize("name", ["a", "2024-05-01_0930", "room:101", "x.y", "x" * MAX_SESSION_NAME])
def test_good_session_names_are_accepted(name):
    assert decode_client(_json({"type": "hello", "protocol": 1, "session": name})).session == name


@pytest.mark.parametrize("message", WORKER_MESSAGES, ids=repr)
def test_decode_client_rejects_worker_only_types(message):
    err = _raises(encode(message), decode_client)
    assert err.code == "unexpected_type"
    assert err.close_code == CLOSE_PROTOCOL_ERROR


@pytest.mark.parametrize("message", CLIENT_MESSAGES, ids=repr)
def test_decode_worker_rejects_client_only_types(message):
    err = _raises(encode(message), decode_worker)
    assert err.code == "unexpected_type"


def test_decode_worker_rejects_binary_frames():
    _raises(b"\x00\x00", decode_worker)


def test_decode_rejects_frames_that_are_neither_text_nor_bytes():
    _raises(12345)  # type: ignore[arg-type]


# -- nothing but ProtocolError, whatever arrives --------------------------------

_FIELD_NAMES = ["type", "utt", "t", "session", "protocol", "sample_rate", "language", "text",
                "start", "end", "lang", "emotion", "events", "code", "message", "engine",
                "model", "max_utterance_s", "features", "vocabulary", "samples", "job", "offset",
                "context", "segments", "words"]
_TYPES = ["hello", "ready", "start", "end", "pause", "bye", "partial", "final", "error", "polish",
          "polish_end", "polished"]
_scalars = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**400)
    | st.floats() | st.text(max_size=40) | st.sampled_from(_TYPES)
)
_json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(_FIELD_NAMES) | st.text(max_size=10), children, max_size=6),
    max_leaves=20,
)
_message_like = st.builds(
    lambda kind, fields: {**fields, "type": kind},
    st.sampled_from(_TYPES),
    st.dictionaries(st.sampled_from(_FIELD_NAMES[1:]), _json_values, max_size=8),
)
_DECODERS = [decode, decode_client, decode_worker]


def _only_protocol_errors(frame) -> None:
    for decoder in _DECODERS:
        try:
            decoder(frame)
        except ProtocolError as exc:
            assert isinstance(exc.code, str) and exc.code
            assert 4000 <= exc.close_code <= 4999
            assert str(exc)


_fuzz = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_fuzz
@given(st.text())
def test_arbitrary_text_raises_only_protocol_error(frame):
    _only_protocol_errors(frame)


@_fuzz
@given(st.binary(max_size=MAX_AUDIO_FRAME_BYTES + 100))
def test_arbitrary_binary_raises_only_protocol_error(frame):
    _only_protocol_errors(frame)


@_fuzz
@given(_json_values)
def test_arbitrary_json_values_raise_only_protocol_error(obj):
    _only_protocol_errors(json.dumps(obj))


@_fuzz
@given(_message_like)
def test_json_objects_with_a_valid_type_raise_only_protocol_error(obj):
    _only_protocol_errors(json.dumps(obj))


def test_text_frame_limit_counts_utf8_bytes_not_characters():
    text = "讲" * (MAX_TEXT_FRAME_BYTES // 3 + 10)  # fewer characters than the limit, more bytes
    frame = '{"type":"partial","utt":1,"text":"' + text + '"}'
    assert len(frame) < MAX_TEXT_FRAME_BYTES
    assert _raises(frame).code == "frame_too_large"


def test_clean_vocabulary_keeps_exactly_what_a_worker_accepts():
    terms = ["  ReLU ", "soft\xadmax", "", "x" * (MAX_TERM + 1), 3, "ReLU", "tab\there",
             *[f"term{i}" for i in range(200)]]
    cleaned = clean_vocabulary(terms)
    assert cleaned[:2] == ("ReLU", "term0") and len(cleaned) == MAX_VOCABULARY
    hello = Hello(session="s", vocabulary=cleaned)
    assert decode_client(encode(hello)) == hello


def test_an_error_without_a_job_is_the_frame_it_always_was():
    assert encode(Error(code="c", message="m")) == '{"type":"error","code":"c","message":"m"}'
    assert json.loads(encode(Error(code="c", message="m", job=2)))["job"] == 2
