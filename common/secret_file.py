"""Reading a secret from a file: the worker key, the LLM API key, the caption page's token.

One rule for every such file: ``~`` is expanded; the secret is the first
non-empty line, stripped of surrounding spaces (a UTF-8 byte-order mark is
ignored); a file over :data:`MAX_SECRET_FILE_BYTES`, one that is not UTF-8,
or one without a non-empty line is refused with :class:`SecretFileError`,
whose message names the file and what to do and never holds the secret.

A regular file that group or other users may read is used with a warning
(``chmod 600`` it), not refused: the secrets are revocable bearer tokens, not
private keys, and a refusal would break setups that work today (key files
written with the default umask, 0644). Pipes (``--key-file <(pass show
notsound)``) are read like files.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from .errors import NotSoundError

__all__ = ["MAX_SECRET_FILE_BYTES", "SecretFileError", "read_secret_file"]

log = logging.getLogger(__name__)

#: a secret file holds one line; anything larger is the wrong file
MAX_SECRET_FILE_BYTES = 64 * 1024


class SecretFileError(NotSoundError, OSError):
    """A secret file that cannot be used: unreadable, too large, not text, or empty."""


def read_secret_file(path: Path | str, what: str) -> str:
    """The secret in ``path``; ``what`` names it in messages ("worker key", "viewer token").

    Raises:
        SecretFileError: the file cannot be read or holds no secret.
    """
    file = Path(path).expanduser()
    try:
        with file.open("rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            data = fh.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise SecretFileError(f"cannot read the {what} file {file}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise SecretFileError(f"the {what} file {file} is over {MAX_SECRET_FILE_BYTES // 1024} KiB: "
                              f"name the file that holds the {what} on its first line")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SecretFileError(f"the {what} file {file} is not UTF-8 text: "
                              f"name the file that holds the {what} on its first line") from None
    secret = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not secret:
        raise SecretFileError(f"the {what} file {file} is empty: put the {what} on its first line")
    if stat.S_ISREG(mode) and mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("the %s file %s can be read by other users: chmod 600 %s", what, file, file)
    return secret
