"""Load every `<benchmark>/<variant>` study of a storage into one table of trials.

The columns are the trial's key and value, the parameters of `study.runner.search.SEARCH_SPACE` and
the one-value fields of `study.runner.search.TrialRecord` and of its protocol, and `blew_up` (a
complete trial well beyond an untrained network, see `metrics.Metric.blow_up`). Works on studies
this tool did not write if they have its parameters and one objective: a missing user attribute
becomes NaN, not an error. Other studies are skipped with a `SkippedStudy` warning each.
"""

from __future__ import annotations

import types
import typing
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import IntDistribution

import variants

from ..benchmarks.metrics import metric_of
from ..errors import UserError
from ..runner.search import SEARCH_SPACE, TrialRecord, foreign_reason, momentum_of, own_seconds
from ..runner.storage import open_storage
from ..training.arms import arm
from ..training.protocol import Protocol
from .stats import REFERENCE


class SkippedStudy(UserWarning):
    """A study of the storage left out of the table, with why (one line)."""


def _columns(hints: dict) -> dict[str, str]:
    """The one-value fields of `hints` (name: type) as nullable column types, since a foreign
    study may lack any of them; lists and dicts are not columns."""
    kinds = {bool: "boolean", int: "Int64", float: "float64", str: "object"}
    columns = {}
    for name, hint in hints.items():
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        kind = [kinds[t] for t in (typing.get_args(hint) if union else (hint,)) if t in kinds]
        if kind:
            columns[name] = kind[0]
    return columns


KEYS = {
    "benchmark": "str",
    "variant": "str",
    "trial": "int64",
    # the configuration's index in its study's sample: with a shared sample (the study's
    # `sample` attribute is "shared"), index i is the same configuration in every variant
    "config_index": "Int64",
    "state": "str",
    "requeued": "boolean",
    "value": "float64",
}
# As sampled; `momentum` (1 - one_minus_momentum) is shown beside them for reading only.
PARAMS = {
    name: "Int64" if isinstance(dist, IntDistribution) else "float64"
    for name, dist in SEARCH_SPACE.items()
}
RECORD = _columns(typing.get_type_hints(TrialRecord))
# The fields of a trial's `protocol` attribute that change its result.
PROTOCOL = {
    name: kind
    for name, kind in _columns(typing.get_type_hints(Protocol)).items()
    if name in Protocol().results_fields()
}
_DTYPES = KEYS | PARAMS | {"momentum": "float64"} | RECORD | {"blew_up": "boolean"} | PROTOCOL
COLUMNS = list(_DTYPES)
# Per epoch of every COMPLETE trial that stored them: validation (Optuna's intermediate values)
# and test metric (the `test_curve` user attribute, index 0 = epoch 1).
EPOCH_COLUMNS = ["benchmark", "variant", "trial", "epoch", "valid", "test"]
# Per study: the trials it plans (its `n_trials` attribute), how its configurations were
# sampled (`sample`: "shared" when every variant of the benchmark has the same ones) and the
# size of its bands of configurations (`band_size`) and the SHA-256 of the data file it trained
# on (`data_sha256`, jsb-original); empty where the study does not say.
STUDY_COLUMNS = ["benchmark", "variant", "planned", "sample", "band_size", "data_sha256"]
_INTEGERS = [name for name, kind in _DTYPES.items() if kind == "Int64"]
_OPTIONAL_TEXTS = [name for name, kind in (RECORD | PROTOCOL).items() if kind == "object"]


def split_study_name(name: str) -> tuple[str, str] | None:
    """`("jsb", "CIFG")` from `"jsb/CIFG"`; None for a name that does not follow the convention."""
    benchmark, sep, variant = name.rpartition("/")
    return (benchmark, variant) if sep and benchmark and variant else None


def variant_order(names: Iterable[str]) -> list[str]:
    """The paper's order (V, NIG, …, FGR), then other registered variants, each followed by
    its arms with a forget-gate bias ('V-fb1', by bias), then the rest."""
    known = list(variants.PAPER_VARIANTS) + [
        v for v in variants.PRESETS if v not in variants.PAPER_VARIANTS
    ]
    ranks = {}
    for name in set(names):
        try:
            named = arm(name)
        except ValueError:
            continue
        if named.cell in known:
            bias = named.forget_bias
            ranks[name] = (known.index(named.cell), bias is not None, bias or 0.0)
    return sorted(ranks, key=ranks.get) + sorted(set(names) - set(ranks))


def load_trials(
    storage: str | optuna.storages.BaseStorage, benchmarks: Iterable[str] | None = None
) -> pd.DataFrame:
    """One row per trial of every conforming study (columns: COLUMNS), in the paper's order.

    `benchmarks` keeps only those benchmarks. Raises UserError when nothing conforming is found.
    """
    return load_storage(storage, benchmarks)[0]


def load_storage(
    storage: str | optuna.storages.BaseStorage,
    benchmarks: Iterable[str] | None = None,
    reference: str | optuna.storages.BaseStorage | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The trials table (COLUMNS), the per-epoch table (EPOCH_COLUMNS) and the studies table
    (STUDY_COLUMNS) in one pass; the second is empty for storages written before trials stored
    their curves.

    `reference`: a second storage whose studies of the reference variant (V) of the same
    benchmarks join the tables, so that arms trained in a storage of their own on the same
    shared sample are compared with the V trained beside the paper's variants. It must have
    been sampled as the storage's studies were (scheme, sampler, seed), or configuration i
    would not be the same in both; a study in both storages is refused."""
    rows, epochs, studies, sampled = _read(storage, benchmarks)
    if reference is not None and rows:
        more = _read(reference, {s["benchmark"] for s in studies}, only=REFERENCE)
        _check_reference(sampled, more[3])
        rows, epochs, studies = rows + more[0], epochs + more[1], studies + more[2]
    if not rows:
        which = f" for benchmark(s) {', '.join(sorted(benchmarks))}" if benchmarks else ""
        raise UserError(f"no <benchmark>/<variant> study with trials in the storage{which}")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame[_INTEGERS] = frame[_INTEGERS].round()  # a foreign study may have stored floats
    frame["blew_up"] = blown_up(frame)
    frame = _in_order(_optional_texts(frame.astype(_DTYPES)))
    curves = pd.DataFrame(epochs, columns=EPOCH_COLUMNS).astype({"trial": int, "epoch": int})
    studies = pd.DataFrame(studies, columns=STUDY_COLUMNS)
    studies = studies.astype({"planned": "Int64", "band_size": "Int64"}, errors="ignore")
    return (
        frame,
        _in_order(curves, ["benchmark", "variant", "trial", "epoch"]),
        _in_order(studies, ["benchmark", "variant"]),
    )


def _read(
    storage: str | optuna.storages.BaseStorage,
    benchmarks: Iterable[str] | None,
    only: str | None = None,
) -> tuple[list[dict], list[dict], list[dict], dict[str, tuple]]:
    """The rows of the trials, epochs and studies tables of every conforming study of
    `storage` (of the variant `only`, if given), and how each study was sampled by name:
    (scheme, sampler, seed)."""
    if isinstance(storage, str):
        storage = open_storage(storage)
    wanted = set(benchmarks) if benchmarks else None
    rows, epochs, studies, sampled = [], [], [], {}
    for name in optuna.get_all_study_names(storage):
        parts = split_study_name(name)
        if only is not None and (parts is None or parts[1] != only):
            continue
        if parts is None:
            _skip(name, "name is not <benchmark>/<variant>")
            continue
        if wanted is not None and parts[0] not in wanted:
            continue
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        reason = foreign_reason(study, trials)
        if reason is not None:
            _skip(name, f"not one of this tool's ({reason})")
            continue
        # A FAIL row an interrupt or a lost worker sent back to the queue: its copy carries
        # the configuration on (Optuna records the numbers a copy replaces).
        retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
        attrs = study.user_attrs
        sampled[name] = (
            attrs.get("sample", "independent"),
            attrs.get("sampler"),
            attrs.get("seed"),
        )
        studies.append(
            {
                "benchmark": parts[0],
                "variant": parts[1],
                "planned": _number(attrs.get("n_trials")),
                "sample": _text(attrs.get("sample")) or "",
                "band_size": _number(attrs.get("band_size")),
                "data_sha256": _text(attrs.get("data_sha256")) or "",
            }
        )
        for trial in trials:
            rows.append(_row(*parts, trial) | {"requeued": trial.number in retried})
            if trial.state == optuna.trial.TrialState.COMPLETE:
                epochs.extend(_epochs(*parts, trial))
    return rows, epochs, studies, sampled


def _check_reference(sampled: dict[str, tuple], reference: dict[str, tuple]) -> None:
    """Refuse a reference whose studies are in the storage too, missing, or sampled otherwise
    than the storage's studies of their benchmark."""
    benchmarks = {name.rpartition("/")[0] for name in sampled}
    found = {name.rpartition("/")[0] for name in reference}
    if benchmarks - found:
        missing = ", ".join(f"{b}/{REFERENCE}" for b in sorted(benchmarks - found))
        raise UserError(f"the reference storage has no study {missing} to compare with")
    for name, how in reference.items():
        if name in sampled:
            raise UserError(
                f"study {name} is in both the storage and the reference storage: give a "
                "reference without it, or report on the storage alone"
            )
        benchmark = name.rpartition("/")[0]
        for other, own in sampled.items():
            if other.rpartition("/")[0] == benchmark and own != how:
                shown = "{} sample, sampler {}, seed {}".format
                raise UserError(
                    f"study {name} of the reference storage has the {shown(*how)}, but {other} "
                    f"has the {shown(*own)}: their configurations would not pair"
                )


def blown_up(trials: pd.DataFrame) -> pd.Series:
    """Complete trials whose best validation metric is worse than their benchmark's blow-up
    level (`Metric.blow_up`: 10 % past an untrained network's); NA where none is known."""
    levels = trials.benchmark.map(
        {b: metric_of(b).blow_up for b in trials.benchmark.unique()}
    ).astype("Float64")
    complete = trials.state == "COMPLETE"
    flags = (trials.value.astype("Float64") > levels) & complete
    return flags.where(levels.notna() | ~complete, pd.NA).astype("boolean")


def _skip(name: str, why: str) -> None:
    warnings.warn(f"skipped study {name}: {why}", SkippedStudy, stacklevel=3)


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
    row["config_index"] = _number(trial.user_attrs.get("config_index"))
    row["state"] = trial.state.name
    row["value"] = trial.value if trial.value is not None else np.nan
    row |= {name: _number(params.get(name)) for name in PARAMS}
    row["momentum"] = momentum_of(row["one_minus_momentum"])
    protocol = attrs.get("protocol")
    protocol = protocol if isinstance(protocol, dict) else {}
    row |= {name: _value(attrs.get(name), kind) for name, kind in RECORD.items()}
    row |= {name: _value(protocol.get(name), kind) for name, kind in PROTOCOL.items()}
    row["seconds"] = _number(own_seconds(attrs))
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


def _value(value, kind: str) -> float | str | None:
    return _text(value) if kind == "object" else _number(value)


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
    texts = {name: str for name, kind in _DTYPES.items() if kind in ("str", "object")}
    flags = {name: kind for name, kind in _DTYPES.items() if kind == "boolean"}
    frame = pd.read_csv(path, dtype=texts | flags, keep_default_na=False, na_values=[""])
    frame = frame.reindex(columns=COLUMNS)  # older tables lack newer columns
    if frame.one_minus_momentum.isna().all():  # tables written before it was a column
        frame["one_minus_momentum"] = 1.0 - frame.momentum  # momentum_of, inverted
    if frame.blew_up.isna().all():
        frame["blew_up"] = blown_up(frame)
    frame[_INTEGERS] = frame[_INTEGERS].apply(pd.to_numeric).round()  # older tables: 33.0
    return _optional_texts(frame.astype(_DTYPES))


def _optional_texts(frame: pd.DataFrame) -> pd.DataFrame:
    """Texts a foreign storage may lack (preset, device, ...) as objects, None if absent."""
    for column in _OPTIONAL_TEXTS:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def trial_seconds(trials: pd.DataFrame) -> pd.Series:
    """Each trial's own share of training time (`seconds`: per epoch, its population's time
    divided by the trials trained in it; trials written by version 0.1, which stored the
    population's time, are converted as they are read)."""
    return trials.seconds.astype(float)


def timed_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials with a hidden size and a training time, with their seconds per epoch trained
    as `epoch_seconds`."""
    timed = trials.assign(epoch_seconds=trial_seconds(trials) / trials.epochs.astype(float))
    return timed[timed.epoch_seconds.notna() & timed.hidden_size.notna()]
