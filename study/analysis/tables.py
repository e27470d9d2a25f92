"""The report's tables computed from a storage's: the CSVs of `odyssey report` (`analyse`) and
the smaller ones REPORT.md shows beside them (the state of each study, rounds complete,
parameter counts, importance shares per forest). No prose: the writer is `report.py`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

import variants

from ..benchmarks.metrics import SHAPES
from ..runner import rounds
from ..training.arms import arm
from .checks import checks, round_of
from .curves import CURVE_COLUMNS, summarize_curves
from .fanova import SPACE, VARIANT, Fanova, capped_metric, fit_trials
from .pedanova import ped_anova
from .results import (
    FANOVA,
    IMPORTANCE_COLUMNS,
    INTERACTION_COLUMNS,
    MARGINAL_COLUMNS,
    PED_ANOVA,
    Results,
)
from .stats import REFERENCE, SHARED, summarize
from .trials import EPOCH_COLUMNS, STUDY_COLUMNS, variant_order


@dataclass
class Analysis(Results):
    """The report's tables, and the fitted forests by (benchmark, variant)."""

    models: dict[tuple[str, str], Fanova] = field(default_factory=dict)


def analyse(
    trials: pd.DataFrame,
    epochs: pd.DataFrame | None = None,
    studies: pd.DataFrame | None = None,
    n_trees: int = 64,
    seed: int = 0,
) -> Analysis:
    """Variant comparison (paired where the studies share their sample), fANOVA and PED-ANOVA
    per variant (V first) and pooled (`all`), marginals of every forest, interactions of the
    headline forest, budget checks and learning curves. `epochs` and `studies` are the other
    tables of `load_storage`."""
    importance, marginals, interactions, models = [], [], [], {}
    studies = studies if studies is not None else pd.DataFrame(columns=STUDY_COLUMNS)
    for benchmark, runs in trials.groupby("benchmark", sort=False):
        samples = studies[studies.benchmark == benchmark]["sample"]
        shared = len(samples) > 0 and bool((samples == SHARED).all())
        groups = [(v, runs[runs.variant == v]) for v in variant_order(runs.variant.unique())]
        for variant, group in [*groups, ("all", runs)]:
            pooled = variant == "all"
            try:
                model = fit_trials(group, n_trees, seed, pooled=pooled, shared=pooled and shared)
            except ValueError:  # fewer than 2 usable trials: nothing to decompose
                continue
            models[benchmark, variant] = model
            keys = {"benchmark": benchmark, "variant": variant}
            importance += _lenses(model, group, keys)
            marginals += [model.marginal(p.name).assign(**keys, param=p.name) for p in SPACE]
        headline = headline_of(variant for b, variant in models if b == benchmark)
        if headline is not None:
            interactions += _interactions(models[benchmark, headline], benchmark, headline)
    epochs = epochs if epochs is not None else pd.DataFrame(columns=EPOCH_COLUMNS)
    return Analysis(
        trials=trials,
        studies=studies,
        summary=summarize(trials, studies),
        importance=_table(importance, IMPORTANCE_COLUMNS),
        checks=checks(trials, studies),
        marginals=_table(marginals, MARGINAL_COLUMNS),
        interactions=_table(interactions, INTERACTION_COLUMNS),
        curves=summarize_curves(epochs, trials) if len(epochs) else _table([], CURVE_COLUMNS),
        models=models,
    )


def _lenses(model: Fanova, trials: pd.DataFrame, keys: dict) -> list[pd.DataFrame]:
    """The rows of importance.csv of one forest and the trials it was fitted on: fANOVA's
    main effects and pairs, then PED-ANOVA's main effects."""
    fit = {"held_out_r2": model.held_out_r2, "held_out": model.held_out, "n_trials": model.n_rows}
    fanova = model.importance().assign(**keys, lens=FANOVA, **fit)
    ped = ped_anova(trials).assign(order=1, std=np.nan, held_out_r2=np.nan, held_out="")
    return [fanova, ped.assign(**keys, lens=PED_ANOVA, n_trials=model.n_rows)]


def _interactions(model: Fanova, benchmark: str, variant: str) -> list[pd.DataFrame]:
    """The rows of interactions.csv: the forest's two largest pairs, each on a grid."""
    parts = []
    for term in _strongest_pairs(model.importance()):
        first, second = term.split(":")
        x, y, mean, std, covered = model.marginal_2d(first, second)
        grid = pd.DataFrame(
            {
                "first_value": np.repeat(x, len(y)),
                "second_value": np.tile(y, len(x)),
                "mean": mean.ravel(),
                "std": std.ravel(),
                "covered": covered.ravel(),
            }
        )
        parts.append(grid.assign(benchmark=benchmark, variant=variant, term=term))
    return parts


def _table(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts)[columns].reset_index(drop=True)


def _strongest_pairs(importance: pd.DataFrame, n: int = 2) -> list[str]:
    pairs = importance[importance.order == 2].dropna(subset=["importance"])
    pairs = pairs.loc[np.array([VARIANT not in t.split(":") for t in pairs.term], dtype=bool)]
    return pairs.nlargest(n, "importance").term.tolist()


def headline_of(fitted: Iterable[str]) -> str | None:
    """Of the fitted forests' variants, V (the paper's Figures 4–6 are about V), else the
    pooled `all`."""
    fitted = set(fitted)
    return REFERENCE if REFERENCE in fitted else ("all" if "all" in fitted else None)


def importance_rows(importance: pd.DataFrame) -> list[str]:
    """Variants in the paper's order (V, the paper's headline, first), then `all`."""
    names = [v for v in importance.variant.unique() if v != "all"]
    return variant_order(names) + (["all"] if (importance.variant == "all").any() else [])


def shares_by_variant(importance: pd.DataFrame) -> pd.DataFrame:
    """One row per forest of an importance table's fANOVA rows: its fit, the main-effect
    shares (the pooled forest's share of the variant as `the variant`), and the pairs' sum."""
    rows = []
    for variant in importance_rows(importance):
        part = importance[importance.variant == variant]
        row = {"variant": variant, "n_trials": int(part.n_trials.iloc[0])}
        row["held_out_r2"] = part.held_out_r2.iloc[0]
        mains = part[part.order == 1]
        # the pooled forest's own feature `variant`, apart from the column naming the forest
        row |= dict(zip(mains.term.replace(VARIANT, "the variant"), mains.importance))
        row["pairs"] = part[part.order == 2].importance.sum()
        rows.append(row)
    return pd.DataFrame(rows)


def variance_by_variant(trials: pd.DataFrame) -> pd.DataFrame:
    """Each variant's share of the pooled forest's target variance (`share`: the sum of
    squares of its complete trials' capped test metric about the pooled mean, over the
    total) and its complete trials (`trials`), largest share first. A variant whose trials
    often blow up or stay at chance carries most of it, and the pooled forest's importances
    then describe where that variant fails."""
    complete = trials[(trials.state == "COMPLETE") & trials.test_metric.notna()]
    target = pd.Series(capped_metric(complete), index=complete.index)
    squares = (target - target.mean()) ** 2
    total = squares.sum()
    by_variant = squares.groupby(complete.variant)
    shares = pd.DataFrame(
        {"share": by_variant.sum() / total if total > 0 else 0.0, "trials": by_variant.size()}
    )
    return shares.sort_values("share", ascending=False)


def covered_shares(checks: pd.DataFrame, benchmark: str, variant: str) -> dict[str, float]:
    """Each parameter's share of its (log) range that the complete trials of `variant` (or
    `all`) span, from the checks table; empty where it has no row for them."""
    row = checks[(checks.benchmark == benchmark) & (checks.variant == variant)]
    if row.empty:
        return {}
    return {p.name: float(row[f"cover_{p.name}"].iloc[0]) for p in SPACE}


def state_table(results: Results, benchmark: str) -> pd.DataFrame:
    """Where each variant's study of `benchmark` stands: trials planned, complete, running,
    waiting, failed (less the attempts requeued), requeued, diverged and blown up among the
    complete ones, and the hidden sizes those cover."""
    runs = results.trials[results.trials.benchmark == benchmark]
    studies = results.studies[results.studies.benchmark == benchmark].set_index("variant")
    rows = []
    for variant in variant_order(runs.variant.unique()):
        group = runs[runs.variant == variant]
        state = group.state
        requeued = int(group.requeued.fillna(False).sum())
        complete = group[state == "COMPLETE"]
        planned = studies.planned.get(variant, pd.NA) if "planned" in studies else pd.NA
        sizes = complete.hidden_size.dropna()
        rows.append(
            {
                "variant": variant,
                "planned": planned,
                "complete": len(complete),
                "running": int((state == "RUNNING").sum()),
                "waiting": int((state == "WAITING").sum()),
                "failed": int((state == "FAIL").sum()) - requeued,
                "requeued": requeued,
                "diverged": int(complete.diverged.fillna(False).sum()),
                "blew up": int(complete.blew_up.fillna(False).sum()),
                "hidden sizes": f"{int(sizes.min())}–{int(sizes.max())}" if len(sizes) else "",
            }
        )
    return pd.DataFrame(rows)


def complete_rounds(runs: pd.DataFrame, studies: pd.DataFrame) -> int | None:
    """Rounds complete on one benchmark (`round_of`): the first r rounds are complete when
    every variant has finished all their configurations. None where the studies do not
    record one band size."""
    round_of_config = round_of(runs, studies)
    if round_of_config is None:
        return None
    complete = runs[(runs.state == "COMPLETE") & runs.config_index.notna()]
    done = [
        dict.fromkeys(complete[complete.variant == v].config_index.astype(int), True)
        for v in runs.variant.unique()
    ]
    return rounds.complete_rounds(done, round_of_config)


def round_table(runs: pd.DataFrame, studies: pd.DataFrame) -> pd.DataFrame:
    """One row per round of one benchmark, in the order the runner trains them: its band of
    hidden sizes, its configurations, and how many variants have completed all of them
    (`complete`: every variant has). Empty where the studies do not record one band size."""
    columns = ["round", "hidden sizes", "low", "high", "configurations", "variants done"]
    round_of_config = round_of(runs, studies)
    if round_of_config is None:
        return pd.DataFrame(columns=[*columns, "complete"])
    indexed = runs[runs.config_index.notna() & runs.hidden_size.notna()]
    sizes = indexed.drop_duplicates("config_index").set_index("config_index").hidden_size
    complete = indexed[indexed.state == "COMPLETE"]
    names = runs.variant.unique()
    rows = []
    for r in range(max(round_of_config.values(), default=-1) + 1):
        members = {i for i, k in round_of_config.items() if k == r}
        band = sizes[sizes.index.astype(int).isin(members)].astype(int)
        done = sum(
            members <= set(complete[complete.variant == v].config_index.astype(int)) for v in names
        )
        rows.append(
            {
                "round": r + 1,
                "hidden sizes": f"{band.min()}–{band.max()}",
                "low": int(band.min()),
                "high": int(band.max()),
                "configurations": len(members),
                "variants done": done,
            }
        )
    table = pd.DataFrame(rows, columns=columns)
    return table.assign(complete=table["variants done"] == len(names))


UNITS = 100  # per direction: the hidden size at which the report compares parameter counts


def parameter_counts(names: Iterable[str], benchmark: str, units: int) -> pd.DataFrame:
    """Trainable parameters of each arm (`study.training.arms`) among `names` with `units`
    units per direction on `benchmark` (one of SHAPES): the recurrent layer, the output layer,
    total."""
    inputs, outputs, directions = SHAPES[benchmark]
    rows = []
    for variant in names:
        try:
            spec = arm(variant).spec
        except ValueError:
            continue
        lstm = variants.build(spec, inputs, units, bidirectional=directions == 2)
        layer = lstm.n_params()[0]
        head = directions * units * outputs + outputs
        rows.append({"variant": variant, "recurrent": layer, "output": head, "total": layer + head})
    return pd.DataFrame(rows, columns=["variant", "recurrent", "output", "total"])
