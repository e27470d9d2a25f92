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
    "requeued",
    "value",
    "test_metric",
    "hidden_size",
    "learning_rate",
    "one_minus_momentum",
    "momentum",
    "input_noise",
    "epochs",
    "best_epoch",
    "diverged",
    "seconds",
    "population",
    "n_params",
    "preset",
    "max_epochs",
    "patience",
    "batch_size",
    "loss_reduction",
]
# Per epoch of every COMPLETE trial that stored them: validation (Optuna's intermediate values)
# and test metric (the `test_curve` user attribute, index 0 = epoch 1).
EPOCH_COLUMNS = ["benchmark", "variant", "trial", "epoch", "valid", "test"]
_ATTRS = ["test_metric", "epochs", "best_epoch", "diverged", "seconds", "population", "n_params"]
_PARAMS = ["hidden_size", "learning_rate", "one_minus_momentum", "input_noise"]
_PROTOCOL = ["max_epochs", "patience", "batch_size"]
# Nullable types: a foreign study may lack any attribute.
_DTYPES = {
    "hidden_size": "Int64",
    "epochs": "Int64",
    "best_epoch": "Int64",
    "population": "Int64",
    "n_params": "Int64",
    "max_epochs": "Int64",
    "patience": "Int64",
    "batch_size": "Int64",
    "diverged": "boolean",
    "requeued": "boolean",
}
_TEXT = {"benchmark": str, "variant": str, "state": str, "preset": str, "loss_reduction": str}


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
    return load_storage(storage, benchmarks)[0]


def load_storage(
    storage: str | optuna.storages.BaseStorage, benchmarks: Iterable[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trials table (COLUMNS) and the per-epoch table (EPOCH_COLUMNS) in one pass; the
    second is empty for storages written before trials stored their curves."""
    if isinstance(storage, str):
        storage = open_storage(storage)
    wanted = set(benchmarks) if benchmarks else None
    rows, epochs = [], []
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
        trials = study.get_trials(deepcopy=False)
        # A FAIL row an interrupt or a lost worker sent back to the queue: its copy carries
        # the configuration on (Optuna records the numbers a copy replaces).
        retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
        for trial in trials:
            rows.append(_row(*parts, trial) | {"requeued": trial.number in retried})
            if trial.state == optuna.trial.TrialState.COMPLETE:
                epochs.extend(_epochs(*parts, trial))
    if not rows:
        which = f" for benchmark(s) {', '.join(sorted(wanted))}" if wanted else ""
        raise UserError(f"no <benchmark>/<variant> study with trials in the storage{which}")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    integers = [c for c, kind in _DTYPES.items() if kind == "Int64"]
    frame[integers] = frame[integers].round()  # a foreign study may have sampled them as floats
    frame = _in_order(_optional_texts(frame.astype(_DTYPES)))
    curves = pd.DataFrame(epochs, columns=EPOCH_COLUMNS).astype({"trial": int, "epoch": int})
    return frame, _in_order(curves, ["benchmark", "variant", "trial", "epoch"])


def _in_order(frame: pd.DataFrame, keys: list[str] | None = None) -> pd.DataFrame:
    """Sorted by benchmark, variant in the paper's order, then trial."""
    order = {v: i for i, v in enumerate(variant_order(frame.variant.unique()))}
    frame = frame.sort_values(
        keys or ["benchmark", "variant", "trial"],
        key=lambda s: s.map(order) if s.name == "variant" else s,
        kind="stable",
    )
    return frame.reset_index(drop=True)


def _row(benchmark: str, variant: str, trial: optuna.trial.FrozenTrial) -> dict:
    params, attrs = trial.params, trial.user_attrs
    row = {"benchmark": benchmark, "variant": variant, "trial": trial.number}
    row["state"] = trial.state.name
    row["value"] = trial.value if trial.value is not None else np.nan
    row |= {name: _number(params.get(name)) for name in _PARAMS}
    row["momentum"] = 1.0 - row["one_minus_momentum"]
    row |= {name: _number(attrs.get(name)) for name in _ATTRS}
    protocol = attrs.get("protocol")
    protocol = protocol if isinstance(protocol, dict) else {}
    row |= {name: _number(protocol.get(name)) for name in _PROTOCOL}
    row["preset"] = _text(attrs.get("preset"))
    row["loss_reduction"] = _text(protocol.get("loss_reduction"))
    return row


def _epochs(benchmark: str, variant: str, trial: optuna.trial.FrozenTrial) -> list[dict]:
    """The trial's validation and test metric per epoch (test NaN where not stored)."""
    test = trial.user_attrs.get("test_curve")
    test = test if isinstance(test, list) else []
    return [
        {
            "benchmark": benchmark,
            "variant": variant,
            "trial": trial.number,
            "epoch": int(epoch),
            "valid": float(value),
            "test": _number(test[epoch - 1]) if 0 < epoch <= len(test) else np.nan,
        }
        for epoch, value in sorted(trial.intermediate_values.items())
    ]


def _number(value) -> float:
    """A float from a stored value; NaN for a missing or non-numeric one (foreign storages)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def read_trials(path: str | Path) -> pd.DataFrame:
    """A trials.csv written by `odyssey report`, with the types `load_trials` gives."""
    dtype = _TEXT | {"diverged": "boolean", "requeued": "boolean"}
    frame = pd.read_csv(path, dtype=dtype, keep_default_na=False, na_values=[""])
    frame = frame.reindex(columns=COLUMNS)  # older tables lack newer columns
    if "one_minus_momentum" in frame and frame.one_minus_momentum.isna().all():
        frame["one_minus_momentum"] = 1.0 - frame.momentum
    integers = [c for c, kind in _DTYPES.items() if kind == "Int64"]
    frame[integers] = frame[integers].apply(pd.to_numeric).round()  # older tables: 33.0
    return _optional_texts(frame.astype(_DTYPES))


def _optional_texts(frame: pd.DataFrame) -> pd.DataFrame:
    """Texts a foreign storage may lack (preset, loss reduction) as objects, None if absent."""
    for column in ("preset", "loss_reduction"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def trial_seconds(trials: pd.DataFrame) -> pd.Series:
    """Each trial's own share of training time: the wall time of its population (`seconds`)
    divided by the trials trained in it (1 where a foreign storage does not say)."""
    population = trials.population.astype("Float64").fillna(1.0).astype(float)
    return trials.seconds.astype(float) / population
