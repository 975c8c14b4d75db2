"""The deterministic fake engine that tests of everything above the engine rely on
(``bench/fake_engine.py``, which ``tests/conftest.py`` registers as ``fake``)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench.fake_engine import FakeEngine, fake_text
from models import SAMPLE_RATE, EngineError, EngineOptions, Transcript, create_engine
from models.base import as_float32


def noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-8000, 8000, int(seconds * SAMPLE_RATE), dtype=np.int16)


def fake(model: str | None = None) -> FakeEngine:
    engine = create_engine("fake", EngineOptions(model=model))
    assert isinstance(engine, FakeEngine)
    engine.load()
    return engine


def test_same_audio_gives_the_same_text_every_time():
    clip = noise(1.5, seed=1)

    first = fake().transcribe([clip])
    second = fake().transcribe([clip.copy()])

    assert first == second
    assert first[0].text == fake_text(clip)


def test_different_audio_gives_different_text():
    texts = {t.text for t in fake().transcribe([noise(1.0, seed) for seed in range(20)])}

    assert len(texts) == 20


def test_text_names_the_clip_duration():
    (transcript,) = fake().transcribe([noise(2.5, seed=3)])

    assert transcript.text.startswith("fake ")
    assert transcript.text.endswith(" 2.50s")


def test_int16_and_float32_input_give_the_same_text():
    pcm = noise(1.0, seed=4)

    as_int16, as_float = fake().transcribe([pcm, as_float32(pcm)])

    assert as_int16.text == as_float.text


def test_one_transcript_per_clip_in_order_with_language():
    clips = [noise(0.5, seed) for seed in range(3)]

    transcripts = fake().transcribe(clips, "de")

    assert [t.text for t in transcripts] == [fake_text(c) for c in clips]
    assert all(isinstance(t, Transcript) and t.lang == "de" for t in transcripts)
    assert fake().transcribe(clips[:1], "auto")[0].lang == "en"


def test_calls_record_batch_sizes():
    engine = fake()

    engine.transcribe([noise(0.1, 0)] * 3)
    engine.transcribe([noise(0.1, 0)])

    assert engine.calls == [3, 1]


def test_options_are_parsed_from_the_model_string():
    engine = fake("rtf=0.25,per_call=0.05,fail=0")

    assert (engine.rtf, engine.per_call, engine.fail) == (0.25, 0.05, False)
    assert fake("fail=1").fail is True
    assert fake().rtf == 0.0 and fake().per_call == 0.0


def test_rtf_and_per_call_make_the_engine_slow():
    engine = fake("rtf=0.1,per_call=0.05")

    start = time.perf_counter()
    engine.transcribe([noise(1.0, 0), noise(1.0, 1)])
    elapsed = time.perf_counter() - start

    assert elapsed >= 0.1 * 2.0 + 0.05


def test_fail_option_raises_engine_error_on_every_call():
    engine = fake("fail=1")

    for _ in range(2):
        with pytest.raises(EngineError, match="told to fail"):
            engine.transcribe([noise(0.5, 0)])


@pytest.mark.parametrize("model", ["rtf", "rtf=fast", "per_call=", "speed=2", "rtf=0.1,bogus"])
def test_bad_options_raise_engine_error_naming_the_option(model):
    with pytest.raises(EngineError, match="not understood") as error:
        fake(model)

    assert "rtf=S" in str(error.value)
