"""Opening an Optuna RDB storage from a URL, with one clear line when it cannot be opened, and
showing a URL without its password (in reports, tables and messages)."""

from __future__ import annotations

import time
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages._rdb import models

from ..errors import UserError

# Heartbeats, stale-trial retries and QMC are marked experimental by Optuna; they are the
# features the runner is built on, so the warnings say nothing to our users.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _userinfo(url: str) -> tuple[int, int] | None:
    """Where `user[:password]` stands in `url` as given: after `scheme://`, up to the last
    @ before the query, so that a password holding an unencoded @ (or / or :) is found
    whole. None for a URL without a host part (SQLite's) or without a user."""
    scheme_end = url.find("://")
    if scheme_end < 0 or url[scheme_end + 3 : scheme_end + 4] == "/":
        return None
    start, at = scheme_end + 3, url.split("?", 1)[0].rfind("@")
    return (start, at) if at >= start else None


def _password_span(url: str) -> tuple[int, int] | None:
    """Where the password of `url` stands as given (`_userinfo` after the first colon)."""
    userinfo = _userinfo(url)
    if userinfo is None or ":" not in url[userinfo[0] : userinfo[1]]:
        return None
    return url.index(":", userinfo[0]) + 1, userinfo[1]


def display_url(url: str) -> str:
    """`url` as given with its password masked as ***, for anything printed or written."""
    span = _password_span(url)
    return url if span is None else f"{url[: span[0]]}***{url[span[1] :]}"


def without_password(text: str, url: str) -> str:
    """`text` (a driver's error) with the password of `url` masked where it stands in the
    URL (`user:password@`), as given or decoded, should the text echo the URL; the same
    letters elsewhere in the text are left alone."""
    span = _password_span(url)
    if span is None:
        return text
    user = url[url.index("://") + 3 : span[0] - 1]
    password = url[span[0] : span[1]]
    for name, secret in {
        (user, password),
        (urllib.parse.unquote(user), urllib.parse.unquote(password)),
    }:
        text = text.replace(f"{name}:{secret}@", f"{name}:***@")
    return text


def _driver_hint(url: str, err: Exception) -> str:
    """One line for a bare postgresql:// URL whose default driver is not installed."""
    if isinstance(err, ImportError) and url.startswith("postgresql://"):
        return (
            "; install the PostgreSQL driver with pip install -e '.[postgres]', or name an "
            "installed one in the URL, e.g. postgresql+psycopg2://"
        )
    return ""


def parse_url(url: str) -> sqlalchemy.engine.URL:
    """`url` parsed, or one line saying what is wrong with it: not a SQLAlchemy URL, a port
    that is not a number, or an in-memory SQLite database (it would vanish with the process
    that made it, results and all). Reads nothing, so options are checked before any work."""
    shown = display_url(url)
    userinfo = _userinfo(url)
    if userinfo is not None and "@" in url[userinfo[0] : userinfo[1]]:
        raise UserError(
            f"storage {shown}: its user or password holds an unencoded @; percent-encode it "
            "(@ as %40, / as %2F, : as %3A)"
        )
    try:
        parsed = sqlalchemy.engine.make_url(url) if "://" in url else None
    except sqlalchemy.exc.ArgumentError:
        parsed = None
    except ValueError:  # SQLAlchemy reads the port with int()
        raise UserError(f"storage {shown}: the port must be a number") from None
    if parsed is None:
        raise UserError(
            f"storage must be a SQLAlchemy URL like sqlite:///results/odyssey.db, got {shown!r}"
        )
    if parsed.get_backend_name() == "sqlite" and sqlite_name(parsed) is None:
        raise UserError(
            f"storage {shown} is an in-memory SQLite database, which vanishes with the process; "
            "give a file, e.g. sqlite:///results/odyssey.db"
        )
    return parsed


def sqlite_name(parsed: sqlalchemy.engine.URL) -> str | None:
    """The file name SQLite opens for a URL, or None for a database that lives in memory
    (or in a temporary file dropped on close). With `?uri=true` the name is a SQLite URI
    (`file:/tmp/x.db`, `file:///tmp/x.db?mode=ro`): its path, percent-decoded."""
    name = parsed.database or ""
    if sqlalchemy.util.asbool(parsed.query.get("uri", False)) and name.startswith("file:"):
        if parsed.query.get("mode") == "memory":
            return None
        name = urllib.parse.unquote(urllib.parse.urlsplit(name).path)
    return None if name in ("", ":memory:") else name


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL, resolved (links followed): the same for every spelling of
    it (relative, absolute, a query string of connection options, a `file:` URI); None for
    other databases and for URLs that `parse_url` refuses."""
    try:
        parsed = parse_url(url)
    except UserError:
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    return Path(sqlite_name(parsed)).resolve()


def make_sqlite_folder(url: str) -> None:
    """Make the missing folder of a SQLite storage, only within ./results (where the default
    storage lives), so that a typo in a path is refused rather than starting a new study
    elsewhere; other missing folders are one line."""
    path = sqlite_file(url)
    if path is None or path.parent.is_dir():
        return
    results = Path("results").resolve()
    if path.parent != results and results not in path.parent.parents:
        raise UserError(
            f"storage {display_url(url)}: folder {path.parent} does not exist; create it "
            f"first (only folders under {results} are made for you)"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"storage {display_url(url)}: cannot create {path.parent}: {err.strerror}"
        ) from None


def storage_identity(url: str) -> str:
    """What names the database of `url`, however the URL spells it: the resolved file of
    SQLite; else its backend, host, port and database (not its driver, user or options)."""
    path = sqlite_file(url)
    if path is not None:
        return str(path)
    parsed = parse_url(url)
    host, port = parsed.host or "", parsed.port or ""
    return f"{parsed.get_backend_name()}://{host}:{port}/{parsed.database}"


# The tables Optuna creates (alembic, its migration tool, adds alembic_version): a database
# that has some of them but not all is only adopted if it is a creation cut short.
_OPTUNA_TABLES = models.BaseModel.metadata.tables
_VERSION_TABLES = ("version_info", "alembic_version")


@dataclass(frozen=True)
class _Schema:
    columns: dict[str, set[str]]  # table -> its column names
    versioned: bool  # its version rows are written: Optuna opens it without writing

    def refusal(self, shown: str, create: bool) -> str | None:
        """Why the storage cannot be used, or None. A complete Optuna schema is adopted; an
        empty database gets one (with `create`); a partial one, only where each of its
        tables is Optuna's with Optuna's columns (a `run` killed while creating them), and
        only to be completed."""
        tables = set(self.columns)
        if not tables:
            return None if create else f"storage {shown} holds no Optuna storage: it has no studies"
        missing = sorted(set(_OPTUNA_TABLES) - tables)
        if not missing:
            if create or self.versioned:
                return None
            return (
                f"storage {shown} lacks Optuna's version records, which reading it would "
                "write; complete it once with `optuna storage upgrade --storage URL`"
            )
        strangers = [t for t in sorted(tables) if not self._optunas(t)]
        if strangers:
            return (
                f"storage {shown} is another application's database (tables "
                f"{', '.join(strangers[:5])}), not an Optuna storage; "
                "give --storage a database of its own"
            )
        if create:
            return None
        return (
            f"storage {shown} is not a complete Optuna storage: it lacks the tables "
            f"{', '.join(missing[:5])}"
        )

    def _optunas(self, table: str) -> bool:
        """Whether `table` is one of Optuna's, with (at least) Optuna's columns."""
        if table == "alembic_version":
            return True
        model = _OPTUNA_TABLES.get(table)
        return model is not None and {c.name for c in model.columns} <= self.columns[table]


def _schema(url: str) -> _Schema:
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            inspector = sqlalchemy.inspect(connection)
            columns = {
                table: {c["name"] for c in inspector.get_columns(table)}
                for table in inspector.get_table_names()
            }
            versioned = all(
                table in columns
                and connection.execute(sqlalchemy.text(f"SELECT count(*) FROM {table}")).scalar()
                for table in _VERSION_TABLES
            )
        return _Schema(columns, versioned)
    finally:
        engine.dispose()


def open_storage(
    url: str, *, create: bool = False, heartbeat: int | None = None
) -> optuna.storages.RDBStorage:
    """The storage at `url`. Without `create` it is only read: it must exist and be a
    complete Optuna storage, and opening it writes nothing (Optuna would create its tables
    in any database, or an empty SQLite file, and its version records where they lack).
    With `create`, a new or empty database gets Optuna's tables. Another application's
    database is refused either way. With `heartbeat` seconds, a running trial silent for
    2 x + 1 s is failed by the next process that looks."""
    parse_url(url)
    shown = display_url(url)
    path = sqlite_file(url)
    if path is not None:
        if create:
            make_sqlite_folder(url)
        elif not path.is_file():
            raise UserError(f"storage {shown}: no such SQLite file; expected a study database")
    kwargs: dict = {}
    if heartbeat is not None:  # what runs again is study.runner.retries' to decide: no callback
        kwargs = {"heartbeat_interval": heartbeat, "grace_period": 2 * heartbeat + 1}
    for attempt in range(5):
        try:
            refusal = _schema(url).refusal(shown, create)
            if refusal is not None:
                raise UserError(refusal)
            return optuna.storages.RDBStorage(url, skip_table_creation=not create, **kwargs)
        except UserError:
            raise
        except sqlalchemy.exc.IntegrityError:
            # Several machines creating the tables of a new database at once: one wins.
            time.sleep(0.5 + attempt)
        except Exception as err:  # SQLAlchemy and driver errors: unreachable server, bad URL
            text = without_password(str(err).strip(), url)
            first_line = text.splitlines()[0] if text else type(err).__name__
            raise UserError(
                f"cannot open storage {shown}: {first_line}{_driver_hint(url, err)}"
            ) from None
    raise UserError(f"cannot open storage {shown}: its tables could not be created")
