"""Engine name -> lazily imported engine class.

Adding an engine is one module plus one line in :data:`ENGINES`. Engines that
are not part of the product (the fake one the tests and benchmarks use) are
registered from the environment, the way ``llm`` loads plugins::

    NOTSOUND_ENGINES="fake=bench.fake_engine:FakeEngine,other=pkg.module:Class"

The variable is read each time engines are listed or created, so a process
that sets it registers the engines for itself and for the workers it starts.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping

from .base import Engine, EngineEntryError, EngineOptions, UnknownEngineError

__all__ = ["ENGINES", "ENGINES_ENV", "engine_class", "create_engine", "engine_names"]

#: name -> "module:Class"; modules are imported only when the engine is used.
ENGINES: dict[str, str] = {
    "sensevoice": "models.sensevoice:SenseVoiceEngine",
    "whisper": "models.whisper:WhisperEngine",
}

#: environment variable of extra engines: comma-separated ``name=module:Class`` entries
ENGINES_ENV = "NOTSOUND_ENGINES"

_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_TARGET_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
_EXAMPLE = "NAME=module:Class, e.g. fake=bench.fake_engine:FakeEngine"


def _registered(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The built-in engines plus the entries of ``NOTSOUND_ENGINES``; :class:`EngineEntryError` on a bad one."""
    environ = os.environ if environ is None else environ
    engines = dict(ENGINES)
    for entry in filter(None, (e.strip() for e in environ.get(ENGINES_ENV, "").split(","))):
        name, sep, target = (part.strip() for part in entry.partition("="))
        if not sep or not _NAME_RE.fullmatch(name) or not _TARGET_RE.fullmatch(target):
            raise EngineEntryError(f"{ENGINES_ENV} entry {entry!r} is not {_EXAMPLE}")
        if name in ENGINES:
            raise EngineEntryError(f"{ENGINES_ENV} entry {entry!r}: {name!r} is a built-in engine")
        if name in engines:
            raise EngineEntryError(f"{ENGINES_ENV} entry {entry!r}: {name!r} is named twice")
        engines[name] = target
    return engines


def _load_entry(name: str, target: str) -> type[Engine]:
    """The class of a ``NOTSOUND_ENGINES`` entry; :class:`EngineEntryError` says what is wrong."""
    module_name, _, class_name = target.partition(":")
    where = f"{ENGINES_ENV} entry '{name}={target}'"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EngineEntryError(f"{where}: cannot import {module_name} ({exc}); "
                               "is its folder on PYTHONPATH?") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise EngineEntryError(f"{where}: {module_name} has no {class_name}")
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise EngineEntryError(f"{where}: {target} is not an engine class (a models.Engine)")
    return cls


def engine_names() -> list[str]:
    """Every engine name: the built-in ones and those ``NOTSOUND_ENGINES`` registers."""
    return sorted(_registered())


def engine_class(name: str) -> type[Engine]:
    """The class registered under ``name`` (imports its module)."""
    engines = _registered()
    try:
        target = engines[name]
    except KeyError:
        raise UnknownEngineError(
            f"unknown engine {name!r}; known engines: {', '.join(sorted(engines))}"
        ) from None
    if name not in ENGINES:
        return _load_entry(name, target)
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def create_engine(name: str, options: EngineOptions | None = None) -> Engine:
    """Build (but do not load) the engine ``name``."""
    return engine_class(name)(options or EngineOptions())
