"""Locks between coordinators: one coordinator per SQLite file, and on PostgreSQL one
coordinator at a time changing a study's queue."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import sqlalchemy

from ..errors import UserError
from .storage import display_url, make_sqlite_folder, sqlite_file


@contextlib.contextmanager
def exclusive_sqlite(url: str) -> Iterator[bool]:
    """One coordinator per SQLite file: SQLite cannot hand out a waiting trial exactly once
    to two processes, so a second `odyssey run` on the same file is refused. The lock is
    the file's, however it is named: every spelling of its path (relative, absolute, a
    query string, a `file:` URI, a symbolic link) locks `<file>.lock` beside it, and a
    file that exists also locks its identity (device and inode), which its hard links
    share, in the temporary folder. Lock files are removed when the run ends, refused or
    not. Yields whether it holds a lock (for SQLite): then no other coordinator lives on
    the storage."""
    path = sqlite_file(url)
    if path is None:
        yield False
        return
    make_sqlite_folder(url)
    with contextlib.ExitStack() as held:
        held.enter_context(_file_lock(path.with_name(path.name + ".lock"), url))
        with contextlib.suppress(FileNotFoundError):  # a new file has no other names yet
            identity = os.stat(path)
            name = f"odyssey-sqlite-{identity.st_dev}-{identity.st_ino}.lock"
            held.enter_context(_file_lock(Path(tempfile.gettempdir(), name), url))
        yield True


@contextlib.contextmanager
def _file_lock(lock_path: Path, url: str) -> Iterator[None]:
    """An exclusive flock on `lock_path`, or one line saying that another run holds it."""
    while True:
        try:
            lock = os.open(lock_path, os.O_CREAT | os.O_RDONLY, 0o644)
        except OSError as err:
            raise UserError(
                f"storage {display_url(url)}: cannot write its lock file {lock_path} "
                f"({err.strerror}); its folder must be writable"
            ) from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            raise UserError(
                f"another `odyssey run` is using {display_url(url)}; give that one more "
                "--workers, or use PostgreSQL to run several coordinators on one study"
            ) from None
        # The holder before us removes the file as it ends: a lock taken on a file no
        # longer at the path locks nothing, so take the one there now.
        try:
            same = os.path.samestat(os.fstat(lock), os.stat(lock_path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(lock)
    try:
        yield
    finally:
        # While holding it: whoever locks the old file then retries. A folder that became
        # read-only keeps the file, which the next run locks as it is.
        with contextlib.suppress(OSError):
            os.remove(lock_path)
        os.close(lock)


@contextlib.contextmanager
def study_lock(storage: optuna.storages.RDBStorage, name: str) -> Iterator[None]:
    """Exclusive among the coordinators of a PostgreSQL storage while held: a session-level
    advisory lock, which the server releases if its holder dies. SQLite needs none (one
    coordinator per file); threads of one coordinator take their own lock as well."""
    if storage.engine.dialect.name != "postgresql":
        yield
        return
    key = {"key": _lock_key(name)}
    with storage.engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), key)
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), key)


def _lock_key(name: str) -> int:
    """A signed 64-bit key for a study name, the same in every process."""
    digest = hashlib.blake2b(f"odyssey-study/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
