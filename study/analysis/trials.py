"""Load every `<benchmark>/<variant>` study of a storage into one table of trials.

Works on any Optuna storage whose study names follow that convention, including ones this
tool did not write: a missing parameter or user attribute becomes NaN, not an error.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

import variants

from ..errors import UserError
from ..storage import open_storage

COLUMNS = [
    "benchmark",
    "variant",
    "trial",
    "state",
    "value",
    "test_metric",
    "hidden_size",
    "learning_rate",
    "momentum",
    "input_noise",
    "epochs",
    "best_epoch",
    "diverged",
    "seconds",
    "n_params",
]
_ATTRS = ["test_metric", "epochs", "best_epoch", "diverged", "seconds", "n_params"]
_PARAMS = ["hidden_size", "learning_rate", "input_noise"]
# Nullable types: a foreign study may lack any attribute.
_DTYPES = {"epochs": "Int64", "best_epoch": "Int64", "n_params": "Int64", "diverged": "boolean"}


def split_study_name(name: str) -> tuple[str, str] | None:
    """`("jsb", "CIFG")` from `"jsb/CIFG"`; None for a name that does not follow the convention."""
    benchmark, sep, variant = name.rpartition("/")
    return (benchmark, variant) if sep and benchmark and variant else None


def variant_order(names: Iterable[str]) -> list[str]:
    """The paper's order (V, NIG, …, FGR), then other registered variants, then the rest."""
    known = list(variants.PAPER_VARIANTS) + [
        v for v in variants.PRESETS if v not in variants.PAPER_VARIANTS
    ]
    names = set(names)
    return [v for v in known if v in names] + sorted(names - set(known))


def load_trials(
    storage: str | optuna.storages.BaseStorage, benchmarks: Iterable[str] | None = None
) -> pd.DataFrame:
    """One row per trial of every conforming study (columns: COLUMNS), in the paper's order.

    `benchmarks` keeps only those benchmarks. Raises UserError when nothing conforming is found.
    """
    if isinstance(storage, str):
        storage = open_storage(storage)
    wanted = set(benchmarks) if benchmarks else None
    rows = []
    for name in optuna.get_all_study_names(storage):
        parts = split_study_name(name)
        if parts is None:
            warnings.warn(
                f"ignoring study {name!r}: name is not <benchmark>/<variant>", stacklevel=2
            )
            continue
        if wanted is not None and parts[0] not in wanted:
            continue
        study = optuna.load_study(study_name=name, storage=storage)
        rows.extend(_row(*parts, t) for t in study.get_trials(deepcopy=False))
    if not rows:
        which = f" for benchmark(s) {', '.join(sorted(wanted))}" if wanted else ""
        raise UserError(f"no <benchmark>/<variant> study with trials in the storage{which}")
    frame = pd.DataFrame(rows, columns=COLUMNS).astype(_DTYPES)
    order = {v: i for i, v in enumerate(variant_order(frame.variant.unique()))}
    frame = frame.sort_values(
        ["benchmark", "variant", "trial"], key=lambda s: s.map(order) if s.name == "variant" else s
    )
    return frame.reset_index(drop=True)


def _row(benchmark: str, variant: str, trial: optuna.trial.FrozenTrial) -> dict:
    params, attrs = trial.params, trial.user_attrs
    row = {"benchmark": benchmark, "variant": variant, "trial": trial.number}
    row["state"] = trial.state.name
    row["value"] = trial.value if trial.value is not None else np.nan
    row |= {name: _number(params.get(name)) for name in _PARAMS}
    row["momentum"] = 1.0 - _number(params.get("one_minus_momentum"))
    row |= {name: _number(attrs.get(name)) for name in _ATTRS}
    return row


def _number(value) -> float:
    """A float from a stored value; NaN for a missing or non-numeric one (foreign storages)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def read_trials(path: str | Path) -> pd.DataFrame:
    """A trials.csv written by `odyssey report`, with the types `load_trials` gives."""
    text = {"benchmark": str, "variant": str, "state": str}
    return pd.read_csv(path, dtype=_DTYPES | text, keep_default_na=False, na_values=[""])
