"""Outages of the storage. A storage call that meets a transient error (a server restart, a
lock timeout, a full disk) is retried with backoff for up to the grace period, after which
other coordinators take over this one's trials anyway; then the run ends with one line. A
permanent one (a read-only SQLite file) ends it at once. Either line quotes the database, not
Optuna's wrapper."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import sqlalchemy

from ..errors import StorageError
from .signals import StopSignals
from .storage import display_url, sqlite_file, without_password

T = TypeVar("T")

# SQLite errors no wait cures (sqlite3 gives their fixed texts): a read-only file or folder,
# one that cannot be opened, or is no database.
_PERMANENT_SQLITE = (
    "attempt to write a readonly database",
    "unable to open database file",
    "file is not a database",
    "database disk image is malformed",
    "access permission denied",
)


def database_error(err: BaseException | None) -> sqlalchemy.exc.DBAPIError | None:
    """The driver's error behind `err` (Optuna wraps it in StorageInternalError), if any."""
    while err is not None:
        if isinstance(err, sqlalchemy.exc.DBAPIError):
            return err
        err = err.__cause__ or err.__context__
    return None


def transient(err: BaseException, url: str) -> bool:
    """Whether a storage error may pass by itself: a lost or refused connection, a lock
    timeout, a full disk; not a read-only or unreadable SQLite file, nor a disk I/O error
    of a SQLite file that is no longer writable (a connection opened before the file or
    its folder became read-only or immutable says only "disk I/O error")."""
    cause = database_error(err)
    if cause is None:
        return False
    if cause.connection_invalidated:
        return True
    if not isinstance(cause, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
        return False
    if str(cause.orig).startswith("disk I/O error"):
        return not _unwritable_sqlite(url)
    return not str(cause.orig).startswith(_PERMANENT_SQLITE)


def _unwritable_sqlite(url: str) -> Path | None:
    """The SQLite file of `url` or its folder, if either cannot be written now (as the
    kernel says: read-only, immutable, on a read-only mount)."""
    path = sqlite_file(url)
    if path is None:
        return None
    return next((p for p in (path, path.parent) if not os.access(p, os.W_OK)), None)


def storage_reason(err: BaseException, url: str) -> str:
    """The first line of what the database said (not the wrapper's words), password masked."""
    cause = database_error(err)
    text = str(cause.orig if cause is not None and cause.orig is not None else err).strip()
    return without_password(text, url).splitlines()[0] if text else type(err).__name__


class PatientCalls:
    """Calls into the storage at `url` that wait out its outages for up to `grace` seconds;
    a stop (`stops`) waits for a call in progress to end."""

    def __init__(self, url: str, grace: int, stops: StopSignals) -> None:
        self.url, self.grace, self.stops = url, grace, stops

    def __call__(self, call: Callable[..., T], *args, **kwargs) -> T:
        """`call(...)`, retried with backoff while the storage errs transiently, for up to
        the grace period; then one line. Every call given here may be repeated: it reads,
        or writes what it would write again, or decides anew from what it reads."""
        deadline = time.monotonic() + self.grace
        delay = 0.25
        while True:
            try:
                with self.stops.held():
                    return call(*args, **kwargs)
            except Exception as err:
                fatal = self.fatal(err)
                if fatal is err:
                    raise
                if fatal is not None:
                    raise fatal from None
                if time.monotonic() + delay > deadline:
                    raise StorageError(
                        f"lost the storage {display_url(self.url)} for {self.grace} s "
                        f"({storage_reason(err, self.url)}); every result told before is "
                        "kept: rerun the same command to continue"
                    ) from None
            time.sleep(delay)
            delay = min(2 * delay, 5.0)

    def fatal(self, err: Exception) -> Exception | None:
        """None for a transient storage error (it may pass); else what ends the run: `err`
        itself if it is no storage error, or one line with the database's own reason for a
        storage error that waiting does not cure."""
        if transient(err, self.url):
            return None
        if database_error(err) is None:
            return err
        unwritable = _unwritable_sqlite(self.url)
        where = f": {unwritable} is not writable" if unwritable is not None else ""
        return StorageError(
            f"the storage {display_url(self.url)} failed: {storage_reason(err, self.url)}"
            f"{where} (not an outage: not retried); every result told before is kept"
        )
