"""Fixtures for engine tests: a tiny random-weight SenseVoice directory and test clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.base import EngineOptions
from tests.speech import SAMPLE_RATE, synth


@pytest.fixture(scope="session")
def sensevoice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-block, 64-wide SenseVoiceSmall directory with random weights (built once)."""
    from bench.sensevoice_random import build_random_sensevoice

    return build_random_sensevoice(tmp_path_factory.mktemp("sensevoice") / "tiny", seed=0)


@pytest.fixture(scope="session")
def sensevoice_engine(sensevoice_dir: Path):
    """The tiny model loaded on CPU in fp32 through the real engine."""
    from models.sensevoice import SenseVoiceEngine

    engine = SenseVoiceEngine(EngineOptions(model=str(sensevoice_dir), device="cpu"))
    engine.load()
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def sensevoice_clips() -> list[np.ndarray]:
    """Three clips of different lengths (0.5 to 3 s): two espeak-ng sentences and noise."""
    noise = np.random.default_rng(7).normal(0.0, 0.1, SAMPLE_RATE // 2).astype(np.float32)
    return [synth("Good morning."), noise, synth("Today we talk about the water cycle.")]
