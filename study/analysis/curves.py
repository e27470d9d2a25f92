"""Learning curves: per variant, the median validation metric over epochs and the curve of
the variant's best trial, from the per-epoch values trials store (storages written before
trials stored them have none, and the report says so)."""

from __future__ import annotations

import pandas as pd

from .stats import top_trials
from .trials import variant_order

CURVE_COLUMNS = [
    "benchmark",
    "variant",
    "epoch",
    "n_trials",  # complete trials that trained this epoch (the median is over them)
    "median_valid",
    "best_trial",
    "best_valid",
    "best_test",
]


def summarize_curves(epochs: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """CURVE_COLUMNS per benchmark × variant × epoch. The best trial is the variant's best
    complete trial on validation (as in the variant comparison); its columns are empty after
    its last epoch."""
    parts = []
    for (benchmark, variant), curve in epochs.groupby(["benchmark", "variant"], sort=False):
        runs = trials[(trials.benchmark == benchmark) & (trials.variant == variant)]
        median = curve.groupby("epoch").valid.agg(n_trials="size", median_valid="median")
        best = top_trials(runs[runs.trial.isin(curve.trial)], minimum=1).head(1)
        if best.empty:
            continue
        number = int(best.trial.iloc[0])
        own = curve[curve.trial == number].set_index("epoch")[["valid", "test"]]
        own = own.rename(columns={"valid": "best_valid", "test": "best_test"})
        part = median.join(own).reset_index().assign(best_trial=number)
        parts.append(part.assign(benchmark=benchmark, variant=variant))
    if not parts:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    table = pd.concat(parts)[CURVE_COLUMNS]
    order = {v: i for i, v in enumerate(variant_order(table.variant.unique()))}
    table = table.sort_values(
        ["benchmark", "variant", "epoch"],
        key=lambda s: s.map(order) if s.name == "variant" else s,
        kind="stable",
    )
    return table.reset_index(drop=True)
