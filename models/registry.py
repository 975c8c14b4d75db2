"""Engine name -> lazily imported engine class.

Adding an engine is one module plus one line in :data:`ENGINES`.
"""

from __future__ import annotations

import importlib

from .base import Engine, EngineOptions, UnknownEngineError

__all__ = ["ENGINES", "engine_class", "create_engine", "engine_names"]

#: name -> "module:Class"; modules are imported only when the engine is used.
ENGINES: dict[str, str] = {
    "sensevoice": "models.sensevoice:SenseVoiceEngine",
    "whisper": "models.whisper:WhisperEngine",
    "fake": "models.fake:FakeEngine",
}


def engine_names() -> list[str]:
    return sorted(ENGINES)


def engine_class(name: str) -> type[Engine]:
    """The class registered under ``name`` (imports its module)."""
    try:
        target = ENGINES[name]
    except KeyError:
        raise UnknownEngineError(
            f"unknown engine {name!r}; known engines: {', '.join(engine_names())}"
        ) from None
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def create_engine(name: str, options: EngineOptions | None = None) -> Engine:
    """Build (but do not load) the engine ``name``."""
    return engine_class(name)(options or EngineOptions())
