"""Locks between coordinators: one coordinator per SQLite file, and on PostgreSQL one
coordinator at a time changing a study's queue."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator

import optuna
import sqlalchemy

from .errors import UserError
from .storage import display_url, sqlite_file


@contextlib.contextmanager
def exclusive_sqlite(url: str) -> Iterator[None]:
    """One coordinator per SQLite file: SQLite cannot hand out a waiting trial exactly once
    to two processes, so a second `odyssey run` on the same file is refused. The lock is
    the file's, however the URL names it (relative, absolute, with a query string)."""
    path = sqlite_file(url)
    if path is None:
        yield
        return
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another `odyssey run` is using {display_url(url)}; give that one more "
                "--workers, or use PostgreSQL to run several coordinators on one study"
            ) from None
        yield


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
