"""ASR engines behind one interface; see :mod:`models.base` and :mod:`models.registry`."""

from .base import (
    NO_HINTS,
    SAMPLE_RATE,
    DecodeHints,
    Engine,
    EngineEntryError,
    EngineError,
    EngineOptions,
    ModelNotFoundError,
    Segment,
    Transcript,
    UnknownEngineError,
)
from .registry import ENGINES, ENGINES_ENV, create_engine, engine_class, engine_names

__all__ = [
    "NO_HINTS",
    "SAMPLE_RATE",
    "DecodeHints",
    "Engine",
    "EngineEntryError",
    "EngineError",
    "EngineOptions",
    "ModelNotFoundError",
    "Segment",
    "Transcript",
    "UnknownEngineError",
    "ENGINES",
    "ENGINES_ENV",
    "create_engine",
    "engine_class",
    "engine_names",
]
