"""Settings: dataclass defaults < ``notsound.toml`` < ``NOTSOUND_*`` environment < flags.

Each component owns a settings dataclass (``WorkerSettings``, ``LiveSettings``,
``LLMSettings`` ...). This module only knows how to fill one from the layers:

- TOML: the table named after the section, e.g. ``[worker]`` or ``[llm]``, read
  from ``./notsound.toml``, else ``$XDG_CONFIG_HOME/notsound/notsound.toml``
  (``~/.config/notsound/notsound.toml``); ``NOTSOUND_CONFIG`` names another file;
- environment: ``NOTSOUND_<SECTION>_<FIELD>``, e.g. ``NOTSOUND_WORKER_PORT=9000``;
- flags: a mapping of field -> value where ``None`` means "not given".

Secrets are never read from TOML or flags by this module's callers; they come
from the environment or a key file.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from common.errors import EXIT_USAGE, NotSoundError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ConfigError", "config_paths", "load_toml", "build_settings"]

T = TypeVar("T")

ENV_PREFIX = "NOTSOUND_"


class ConfigError(NotSoundError, ValueError):
    """A setting that cannot be used; the message names the source and the field."""

    exit_code = EXIT_USAGE


def config_paths(env: Mapping[str, str] | None = None) -> list[Path]:
    """Candidate config files, first match wins."""
    env = os.environ if env is None else env
    if env.get("NOTSOUND_CONFIG"):
        return [Path(env["NOTSOUND_CONFIG"]).expanduser()]
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [Path("notsound.toml"), base / "notsound" / "notsound.toml"]


def load_toml(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The first config file that exists, parsed; ``{}`` when there is none."""
    for path in config_paths(env):
        if path.is_file():
            try:
                with path.open("rb") as fh:
                    return tomllib.load(fh)
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read config file {path}: {exc}") from None
    return {}


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("", "none")):
            if type(None) in args:
                return None
        for arg in (a for a in args if a is not type(None)):
            return _coerce(value, arg, where)
    if origin in (tuple, list):
        items = value.split(",") if isinstance(value, str) else list(value)
        inner = args[0] if args else str
        items = [_coerce(v.strip() if isinstance(v, str) else v, inner, where) for v in items if v != ""]
        return tuple(items) if origin is tuple else items
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if hint is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if hint is Path:
            return Path(str(value)).expanduser()
        if hint is str:
            if not isinstance(value, (str, int, float)):
                raise ValueError(value)
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {value!r} is not a valid {getattr(hint, '__name__', hint)}") from None
    return value


def build_settings(
    cls: type[T],
    section: str,
    *,
    toml: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> T:
    """Fill the dataclass ``cls`` from the layers, later layers winning."""
    env = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    table = (toml or {}).get(section, {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"config: [{section}] must be a table")
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in fields:
            raise ConfigError(f"config [{section}]: unknown setting {key!r}; known: {', '.join(sorted(fields))}")
        values[name] = _coerce(value, hints[name], f"config [{section}] {key}")
    prefix = f"{ENV_PREFIX}{section.upper()}_"
    for name in fields:
        var = prefix + name.upper()
        if var in env:
            values[name] = _coerce(env[var], hints[name], f"environment {var}")
    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in fields:
            raise ConfigError(f"{cls.__name__} has no setting {name!r}")
        values[name] = _coerce(value, hints[name], f"--{name.replace('_', '-')}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{section}] settings: {exc}") from None
