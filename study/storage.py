"""Opening an Optuna RDB storage from a URL, with one clear line when it cannot be opened, and
showing a URL without its password (in reports, tables and messages)."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import optuna
import sqlalchemy

from .errors import UserError

# Heartbeats, stale-trial retries and QMC are marked experimental by Optuna; they are the
# features the runner is built on, so the warnings say nothing to our users.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)


_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*(@)")


def display_url(url: str) -> str:
    """`url` with its password masked as ***, for anything printed or written to a file."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: mask what looks like user:password@
        return _PASSWORD.sub(r"\1***\2", url)


def _without_password(text: str, url: str) -> str:
    """`text` (a driver's error) with the password of `url` masked, should it echo it."""
    try:
        password = sqlalchemy.engine.make_url(url).password
    except Exception:
        password = None
    return text.replace(str(password), "***") if password else text


def _driver_hint(url: str, err: Exception) -> str:
    """One line for a bare postgresql:// URL whose default driver is not installed."""
    if isinstance(err, ImportError) and url.startswith("postgresql://"):
        return (
            "; install the PostgreSQL driver with pip install -e '.[postgres]', or name an "
            "installed one in the URL, e.g. postgresql+psycopg2://"
        )
    return ""


# Tables every Optuna RDB storage has; a database with tables but none of these is another
# application's.
_OPTUNA_TABLES = {"studies", "trials", "version_info"}


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL, resolved; None for other databases. A query string
    (`?timeout=60`) holds connection options, never part of the file name."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def _tables(url: str) -> set[str]:
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        return set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def open_storage(
    url: str, *, create: bool = False, heartbeat: int | None = None
) -> optuna.storages.RDBStorage:
    """The storage at `url`. Without `create` it is only read: it must exist and be an Optuna
    storage, and opening it writes nothing (Optuna would create its tables in any database,
    or an empty SQLite file). With `create`, a new or empty database gets Optuna's tables.
    Another application's database is refused either way. With `heartbeat` seconds, a
    running trial silent for 2 x + 1 s is failed by the next process that looks."""
    if "://" not in url:
        raise UserError(
            "storage must be a SQLAlchemy URL like sqlite:///results/odyssey.db, "
            f"got {display_url(url)!r}"
        )
    shown = display_url(url)
    path = sqlite_file(url)
    if path is not None:
        if create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise UserError(
                    f"storage {shown}: cannot create {path.parent}: {err.strerror}"
                ) from None
        elif not path.is_file():
            raise UserError(f"storage {shown}: no such SQLite file; expected a study database")
    kwargs: dict = {}
    if heartbeat is not None:  # what runs again is study.retries' to decide: no callback
        kwargs = {"heartbeat_interval": heartbeat, "grace_period": 2 * heartbeat + 1}
    for attempt in range(5):
        try:
            tables = _tables(url)
            if tables and not tables & _OPTUNA_TABLES:
                raise UserError(
                    f"storage {shown} is another application's database (tables "
                    f"{', '.join(sorted(tables)[:5])}), not an Optuna storage; "
                    "give --storage a database of its own"
                )
            if not create and not _OPTUNA_TABLES <= tables:
                raise UserError(f"storage {shown} holds no Optuna storage: it has no studies")
            return optuna.storages.RDBStorage(url, skip_table_creation=not create, **kwargs)
        except UserError:
            raise
        except sqlalchemy.exc.IntegrityError:
            # Several machines creating the tables of a new database at once: one wins.
            time.sleep(0.5 + attempt)
        except Exception as err:  # SQLAlchemy and driver errors: unreachable server, bad URL
            text = _without_password(str(err).strip(), url)
            first_line = text.splitlines()[0] if text else type(err).__name__
            raise UserError(
                f"cannot open storage {shown}: {first_line}{_driver_hint(url, err)}"
            ) from None
    raise UserError(f"cannot open storage {shown}: its tables could not be created")
