"""ASR engines behind one interface; see :mod:`models.base` and :mod:`models.registry`."""

from .base import (
    SAMPLE_RATE,
    Engine,
    EngineError,
    EngineOptions,
    ModelNotFoundError,
    Transcript,
    UnknownEngineError,
)
from .registry import ENGINES, create_engine, engine_class, engine_names

__all__ = [
    "SAMPLE_RATE",
    "Engine",
    "EngineError",
    "EngineOptions",
    "ModelNotFoundError",
    "Transcript",
    "UnknownEngineError",
    "ENGINES",
    "create_engine",
    "engine_class",
    "engine_names",
]
