"""Files that other programs read: written whole or not at all."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


@contextmanager
def replaced_atomically(path: Path) -> Iterator[TextIO]:
    """A UTF-8 text file (newlines as written) that replaces `path` when the block ends without an
    error: a reader sees the old file or the new one, never half of one, and a failed write leaves
    the old one. The new file is flushed to disk before the rename.

    It is created with the mode of any new file (0666 less the umask, applied by the kernel), not
    the owner-only 0600 of `tempfile.mkstemp`: a price feed or a report is read by other users and
    programs. (Reading the umask to chmod would mean setting it for a moment, which other threads
    of a server would see.) A missing folder is an OSError."""
    fd, temporary = _create_beside(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _create_beside(path: Path) -> tuple[int, Path]:
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(temporary, _CREATE, 0o666), temporary
        except FileExistsError:  # 48 random bits: another writer's name, try another
            continue
