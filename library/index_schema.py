"""The index file's schema, its version, and the transaction and corruption helpers.

Bump :data:`SCHEMA_VERSION` with any change to :data:`SCHEMA`: an index file
with another version (``PRAGMA user_version``) is moved aside and rebuilt.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

__all__ = ["SCHEMA_VERSION", "SCHEMA", "create_schema", "transaction", "is_corruption"]

SCHEMA_VERSION = 1
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


SCHEMA = (
    """CREATE TABLE sessions(
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        day TEXT NOT NULL DEFAULT '',
        j_size INTEGER NOT NULL DEFAULT -1,
        j_mtime INTEGER NOT NULL DEFAULT -1,
        j_offset INTEGER NOT NULL DEFAULT 0,
        j_head BLOB NOT NULL DEFAULT x'',
        j_head_len INTEGER NOT NULL DEFAULT 0,
        notes_sig TEXT NOT NULL DEFAULT '',
        summary_sig TEXT NOT NULL DEFAULT '')""",
    """CREATE TABLE entries(
        id INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        utt INTEGER,
        start REAL,
        end_ REAL,
        text TEXT NOT NULL,
        tokens TEXT)""",
    # what FTS5 indexes: the segmented text, or the text itself where segmenting changed nothing
    "CREATE VIEW entries_doc AS SELECT id, coalesce(tokens, text) AS tokens FROM entries",
    "CREATE INDEX entries_session ON entries(session_id, kind)",
    "CREATE UNIQUE INDEX entries_caption ON entries(session_id, utt) WHERE kind = 'caption'",
    """CREATE VIRTUAL TABLE entries_fts USING fts5(
        tokens, content='entries_doc', content_rowid='id', tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER entries_ai AFTER INSERT ON entries BEGIN
        INSERT INTO entries_fts(rowid, tokens) VALUES (new.id, coalesce(new.tokens, new.text));
    END""",
    """CREATE TRIGGER entries_ad AFTER DELETE ON entries BEGIN
        INSERT INTO entries_fts(entries_fts, rowid, tokens) VALUES ('delete', old.id, coalesce(old.tokens, old.text));
    END""",
    f"PRAGMA user_version={SCHEMA_VERSION}",
)


def is_corruption(exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite says the file is damaged or not a database (not: busy, locked, full)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _CORRUPT_CODES
    return type(exc) is sqlite3.DatabaseError  # pragma: no cover - Python < 3.11


def transaction(db: sqlite3.Connection, action: Callable[[], object]):
    """Run ``action`` in a write transaction (taken at once, so two writers queue rather than fail)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = action()
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result


def create_schema(db: sqlite3.Connection, force: bool = False) -> None:
    """The tables, inside the caller's transaction (unless another process made them meanwhile)."""
    if force or db.execute("PRAGMA user_version").fetchone()[0] == 0:
        for statement in SCHEMA:
            db.execute(statement)
