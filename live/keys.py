"""API keys for a shared worker: create, list, revoke, verify, count usage.

A key is ``ns_<id>_<secret>``: ``id`` is 8 lowercase hex characters, public
(``notsound keys list`` shows it, revoking names it); ``secret`` is
``secrets.token_urlsafe(32)``, 256 random bits. Only the SHA-256 of the whole
key is stored; the plaintext is shown once, when the key is made.

Files in the state folder (``$NOTSOUND_STATE_DIR``, else
``$XDG_STATE_HOME/notsound``, else ``~/.local/state/notsound``; mode 0700):

- ``keys.json`` (mode 0600): the key records and their hashes. Every change
  re-reads it and replaces it atomically (temp file in the same folder, fsync,
  ``os.replace``) while holding an exclusive ``flock`` on ``keys.lock``, so the
  CLI and several workers sharing the folder never lose each other's updates.
  Readers need no lock: they see the old file or the new one, never half.
- ``usage-<host>-<pid>-<run>.json``: usage counters of one process (one
  writer per file, so no lock); ``KeyStore.list`` adds up every such file.

A worker notices a change (a revoke by the CLI or another worker) with one
``os.stat`` per ``verify``; it also re-reads the file every ``refresh_s``
seconds, in case a file system's time stamps are too coarse to show a change
(or an NFS client caches them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common.errors import NotSoundError

from .files import write_atomic

__all__ = [
    "KeyRecord", "KeyStore", "KeyStoreError", "default_state_dir", "parse_key_id", "is_key_id",
    "hash_token", "format_key_table", "MAX_NAME_CHARS", "MAX_STREAMS_LIMIT",
]

log = logging.getLogger(__name__)

KEY_PREFIX = "ns_"
MAX_TOKEN_CHARS = 200
MAX_NAME_CHARS = 64
MAX_STREAMS_LIMIT = 10_000
FILE_VERSION = 1
MAX_FILE_BYTES = 16 * 1024 * 1024
_TOKEN_RE = re.compile(r"ns_([0-9a-f]{8})_[A-Za-z0-9_-]{43}")
_ID_RE = re.compile(r"[0-9a-f]{8}")
_HASH_RE = re.compile(r"[0-9a-f]{64}")
#: what an unknown id is compared against, so that a miss costs what a hit costs
_DUMMY_HASH = "0" * 64
_RECORD_FIELDS: dict[str, type] = {
    "name": str, "admin": bool, "created": str, "max_streams": int, "revoked": bool,
}


class KeyStoreError(NotSoundError):
    """The key files cannot be read or written; the message names the file and what to do."""


@dataclass(frozen=True)
class KeyRecord:
    """One API key, without its secret or hash.

    Attributes:
        id: 8 lowercase hex characters, the key's public name.
        name: who or what the key is for (free text, may be empty).
        admin: the key may create, list and revoke keys over ``/admin/keys``.
        created: ISO 8601 time (UTC) the key was made.
        max_streams: most streams at once for this key; 0 means the worker's default.
        revoked: the key no longer verifies (the record stays so ``list`` shows it).
        last_used: ISO time of the last recorded use, from every worker (``list`` only).
        streams: streams opened with the key, from every worker (``list`` only).
        audio_s: seconds of audio received with the key, from every worker (``list`` only).
    """

    id: str
    name: str = ""
    admin: bool = False
    created: str = ""
    max_streams: int = 0
    revoked: bool = False
    last_used: str | None = None
    streams: int = 0
    audio_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$NOTSOUND_STATE_DIR``, else ``$XDG_STATE_HOME/notsound``, else ``~/.local/state/notsound``."""
    env = os.environ if env is None else env
    if env.get("NOTSOUND_STATE_DIR"):
        return Path(env["NOTSOUND_STATE_DIR"]).expanduser()
    return Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "notsound"


def parse_key_id(token: object) -> str | None:
    """The id of a well-formed key; None for anything else (wrong prefix or length, non-ASCII...)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        return None
    match = _TOKEN_RE.fullmatch(token)
    return match.group(1) if match else None


def is_key_id(value: object) -> bool:
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def hash_token(token: str) -> str:
    """SHA-256 of the whole key, hex.

    A fast hash is the right tool here: the secret is 256 random bits, so there
    is nothing to brute-force; a slow password hash (bcrypt, scrypt) would only
    burn CPU on every connection.
    """
    return hashlib.sha256(token.encode("ascii")).hexdigest()


class KeyStore:
    """The keys of one state folder; safe to share between processes and hosts.

    ``refresh_s``: re-read ``keys.json`` at least this often even when ``os.stat``
    shows no change. ``usage_flush_s``: write this process's usage file at most
    this often from ``record_use`` (``flush_usage`` writes it at once).
    """

    def __init__(self, state_dir: Path | str | None = None, *, refresh_s: float = 30.0,
                 usage_flush_s: float = 10.0):
        self.state_dir = Path(state_dir).expanduser() if state_dir is not None else default_state_dir()
        self.path = self.state_dir / "keys.json"
        self.lock_path = self.state_dir / "keys.lock"
        host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64] or "host"
        # The random part keeps two stores in one process, or a restarted worker
        # that got the same pid (pid 1 in a container), from overwriting a file.
        self.usage_path = self.state_dir / f"usage-{host}-{os.getpid()}-{secrets.token_hex(3)}.json"
        self._refresh_s = refresh_s
        self._usage_flush_s = usage_flush_s
        self._mutex = threading.RLock()
        self._keys: dict[str, tuple[KeyRecord, str]] = {}
        self._signature: tuple[int, ...] | None = None
        self._loaded_at: float | None = None
        self._usage: dict[str, dict[str, Any]] = {}
        self._usage_dirty = False
        self._flushed_at = time.monotonic()

    # -- keys ----------------------------------------------------------------

    def ensure_admin(self) -> str | None:
        """Make an admin key when no usable one exists and return it (the only time
        it is shown); None when there is one. A worker calls this on start."""
        with self._locked():
            if any(r.admin and not r.revoked for r, _ in self._keys.values()):
                return None
            record, token = self._create_locked("admin", True, 0)
        log.warning("created admin key %s (no usable admin key existed)", record.id)
        return token

    def create(self, name: str = "", admin: bool = False, max_streams: int = 0) -> tuple[KeyRecord, str]:
        """A new key: its record and its plaintext, which is stored nowhere."""
        _check_name(name)
        _check_max_streams(max_streams)
        with self._locked():
            record, token = self._create_locked(name, bool(admin), max_streams)
        log.info("created key %s (%s)", record.id, "admin" if record.admin else "stream")
        return record, token

    def list(self) -> list[KeyRecord]:
        """Every key, revoked ones too, with usage added up over all workers' usage files."""
        with self._mutex:
            self._refresh()
            records = [r for r, _ in self._keys.values()]
            usage = self._merged_usage()
        return [_with_usage(r, usage.get(r.id)) for r in records]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key for good; False when no key has that id (revoking twice is fine)."""
        if not is_key_id(key_id):
            return False
        with self._locked():
            entry = self._keys.get(key_id)
            if entry is None:
                return False
            if not entry[0].revoked:
                keys = dict(self._keys)
                keys[key_id] = (dataclasses.replace(entry[0], revoked=True), entry[1])
                self._save(keys)
        log.info("revoked key %s", key_id)
        return True

    def verify(self, token: str) -> KeyRecord | None:
        """The record of a valid, unrevoked key; None otherwise (usage fields left at zero)."""
        key_id = parse_key_id(token)
        if key_id is None:
            return None
        digest = hash_token(token)
        with self._mutex:
            self._refresh()
            entry = self._keys.get(key_id)
        # Constant-time compare, also for unknown ids, so timing tells nothing.
        matches = hmac.compare_digest(digest, entry[1] if entry else _DUMMY_HASH)
        if entry is None or not matches or entry[0].revoked:
            return None
        return entry[0]

    def revoked_ids(self) -> set[str]:
        """Ids of revoked keys, as of now (re-reads ``keys.json`` if it changed)."""
        with self._mutex:
            self._refresh()
            return {key_id for key_id, (r, _) in self._keys.items() if r.revoked}

    # -- usage ---------------------------------------------------------------

    def record_use(self, key_id: str, audio_s: float = 0.0, stream: bool = False) -> None:
        """Count a use of a key in memory; written out at most every ``usage_flush_s``."""
        if not is_key_id(key_id):
            return
        with self._mutex:
            counts = self._usage.setdefault(key_id, {"last_used": None, "streams": 0, "audio_s": 0.0})
            counts["last_used"] = _now_iso()
            counts["streams"] += 1 if stream else 0
            if math.isfinite(audio_s) and audio_s > 0:
                counts["audio_s"] += float(audio_s)
            self._usage_dirty = True
            due = time.monotonic() - self._flushed_at >= self._usage_flush_s
        if due:
            self.flush_usage()

    def flush_usage(self) -> None:
        """Write this process's usage file now (if anything changed). Never raises for I/O:
        usage is bookkeeping, so a full disk is logged, not fatal."""
        with self._mutex:
            if not self._usage_dirty:
                return
            doc = {"version": FILE_VERSION, "updated": _now_iso(), "keys": self._usage}
            self._flushed_at = time.monotonic()
            try:
                self._ensure_dir()
                write_atomic(self.usage_path, json.dumps(doc).encode(), durable=False)
            except (OSError, KeyStoreError) as exc:
                log.warning("could not write usage file %s: %s", self.usage_path, exc)
                return
            self._usage_dirty = False

    def _merged_usage(self) -> dict[str, dict[str, Any]]:
        totals: dict[str, dict[str, Any]] = {}
        for path in sorted(self.state_dir.glob("usage-*.json")):
            if path != self.usage_path:
                for key_id, counts in _read_usage(path).items():
                    _add_usage(totals, key_id, counts)
        for key_id, counts in self._usage.items():
            _add_usage(totals, key_id, counts)
        return totals

    # -- files ---------------------------------------------------------------

    def _create_locked(self, name: str, admin: bool, max_streams: int) -> tuple[KeyRecord, str]:
        keys = dict(self._keys)
        key_id = secrets.token_hex(4)
        while key_id in keys:
            key_id = secrets.token_hex(4)
        token = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = KeyRecord(id=key_id, name=name, admin=admin, created=_now_iso(), max_streams=max_streams)
        keys[key_id] = (record, hash_token(token))
        self._save(keys)
        return record, token

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the folder's write lock, with ``self._keys`` freshly read from disk."""
        with self._mutex:
            self._ensure_dir()
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise KeyStoreError(f"cannot open lock file {self.lock_path}: {exc}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._load()
                yield
            finally:
                os.close(fd)  # releases the lock

    def _save(self, keys: dict[str, tuple[KeyRecord, str]]) -> None:
        items = [{**{f: getattr(r, f) for f in ("id", *_RECORD_FIELDS)}, "sha256": digest}
                 for r, digest in keys.values()]
        data = json.dumps({"version": FILE_VERSION, "keys": items}, indent=1).encode()
        try:
            write_atomic(self.path, data)
            signature = _signature(os.stat(self.path))
        except OSError as exc:
            raise KeyStoreError(f"cannot write {self.path}: {exc}") from exc
        self._keys, self._signature, self._loaded_at = keys, signature, time.monotonic()

    def _refresh(self) -> None:
        """Re-read ``keys.json`` if ``os.stat`` says it changed, or it is ``refresh_s`` old."""
        try:
            signature: tuple[int, ...] | None = _signature(os.stat(self.path))
        except FileNotFoundError:
            signature = None
        except OSError as exc:
            raise KeyStoreError(f"cannot read {self.path}: {exc}") from exc
        if (self._loaded_at is not None and signature == self._signature
                and time.monotonic() - self._loaded_at < self._refresh_s):
            return
        self._load()

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as f:
                signature: tuple[int, ...] | None = _signature(os.fstat(f.fileno()))
                data = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            keys: dict[str, tuple[KeyRecord, str]] = {}
            signature = None
        except OSError as exc:
            raise KeyStoreError(f"cannot read {self.path}: {exc}") from exc
        else:
            keys = _parse_keys_file(data, self.path)
        self._keys, self._signature, self._loaded_at = keys, signature, time.monotonic()

    def _ensure_dir(self) -> None:
        if self.state_dir.is_dir():
            return
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.state_dir, 0o700)  # mkdir's mode goes through the umask
        except OSError as exc:
            raise KeyStoreError(f"cannot create state folder {self.state_dir}: {exc}") from exc


# -- helpers -------------------------------------------------------------------


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _signature(st: os.stat_result) -> tuple[int, ...]:
    # os.replace gives a new inode; size and time stamps catch the rest.
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _check_name(name: object) -> None:
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise ValueError(f"a key name is printable text of at most {MAX_NAME_CHARS} characters")


def _check_max_streams(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_STREAMS_LIMIT:
        raise ValueError(f"max_streams must be a whole number from 0 to {MAX_STREAMS_LIMIT} "
                         "(0: the worker's default)")


def _parse_keys_file(data: bytes, path: Path) -> dict[str, tuple[KeyRecord, str]]:
    try:
        if len(data) > MAX_FILE_BYTES:
            raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("version") != FILE_VERSION:
            raise ValueError(f"not a version {FILE_VERSION} key file")
        if not isinstance(doc.get("keys"), list):
            raise ValueError("'keys' is not a list")
        keys: dict[str, tuple[KeyRecord, str]] = {}
        for item in doc["keys"]:
            record, digest = _record_from_json(item)
            if record.id in keys:
                raise ValueError(f"key id {record.id} appears twice")
            keys[record.id] = (record, digest)
    except ValueError as exc:  # json errors and UnicodeDecodeError are ValueErrors
        raise KeyStoreError(
            f"key file {path} is damaged ({exc}); restore it from a backup, or move it aside "
            "to start over (the worker then makes a new admin key and every old key stops working)"
        ) from None
    return keys


def _record_from_json(item: object) -> tuple[KeyRecord, str]:
    if not isinstance(item, dict):
        raise ValueError("a key entry is not an object")
    key_id, digest = item.get("id"), item.get("sha256")
    if not is_key_id(key_id):
        raise ValueError(f"bad key id {key_id!r}")
    if not isinstance(digest, str) or not _HASH_RE.fullmatch(digest):
        raise ValueError(f"key {key_id}: bad sha256")
    values = {}
    for name, kind in _RECORD_FIELDS.items():
        value = item.get(name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"key {key_id}: {name} is not a {kind.__name__}")
        values[name] = value
    return KeyRecord(id=key_id, **values), digest


def _read_usage(path: Path) -> dict[str, dict[str, Any]]:
    """One usage file's counters; a damaged or vanished file counts as empty (with a warning)."""
    try:
        doc = json.loads(path.read_bytes())
        keys = doc["keys"]
        if not isinstance(keys, dict):
            raise ValueError("'keys' is not an object")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring damaged usage file %s: %s", path, exc)
        return {}
    good = {}
    for key_id, counts in keys.items():
        if (isinstance(counts, dict) and isinstance(counts.get("streams"), int)
                and isinstance(counts.get("audio_s"), (int, float))
                and isinstance(counts.get("last_used"), (str, type(None)))):
            good[key_id] = counts
    return good


def _add_usage(totals: dict[str, dict[str, Any]], key_id: str, counts: dict[str, Any]) -> None:
    total = totals.setdefault(key_id, {"last_used": None, "streams": 0, "audio_s": 0.0})
    total["streams"] += counts["streams"]
    total["audio_s"] += counts["audio_s"]
    if counts["last_used"] and (total["last_used"] is None or counts["last_used"] > total["last_used"]):
        total["last_used"] = counts["last_used"]


def _with_usage(record: KeyRecord, counts: dict[str, Any] | None) -> KeyRecord:
    if not counts:
        return record
    return dataclasses.replace(record, last_used=counts["last_used"], streams=counts["streams"],
                               audio_s=round(counts["audio_s"], 3))


# -- table ---------------------------------------------------------------------


def format_key_table(records: list[KeyRecord]) -> str:
    """The ``notsound keys list`` table: ids, names and usage, never a key or a hash."""
    header = ("ID", "NAME", "ADMIN", "CREATED (UTC)", "LAST USED (UTC)", "STREAMS", "AUDIO", "REVOKED")
    rows = [header] + [(
        r.id, r.name or "-", "yes" if r.admin else "no", _short_time(r.created),
        _short_time(r.last_used), str(r.streams), _duration(r.audio_s), "yes" if r.revoked else "no",
    ) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _short_time(iso: str | None) -> str:
    return iso[:16].replace("T", " ") if iso else "never"


def _duration(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
