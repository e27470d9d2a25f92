"""Budget and search-space checks: whether the epoch cap or the edge of the search range,
rather than the variant, limits a study's results.

- the protocol the trials ran under (preset, epoch cap, patience, batch size, loss reduction);
- how trials ended: at the epoch cap, by early stopping, or diverged; how many blew up (a best
  validation metric worse than an untrained network's);
- how many had their best validation epoch at their last (still improving when stopped);
- how many are no better than the benchmark's chance level (learned nothing from the input);
- for the best 10 % of each variant, how many sit in the outer 5 % of each parameter's
  (log) range at either end, where uniform sampling would put 5 % at each end;
- how much of each parameter's (log) range the complete trials cover, from the lowest to the
  highest value tried: below COVERED, nothing is said about that parameter against the paper.
  Where the studies train their configurations in rounds (bands of hidden sizes, see
  `study.runner.rounds`), the hidden sizes between the bands trained so far are not sampled
  at all: the hidden size's share is then the sum of the spans within each band.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..benchmarks.metrics import metric_of
from ..runner import rounds
from ..training.protocol import Protocol
from . import paper
from .fanova import SPACE, Param, cover
from .stats import top_trials
from .trials import variant_order

EDGE = 0.05  # the outer fraction of a parameter's sampled range at each end
EDGE_FLAG = 0.25  # flagged when at least this share of top trials is there ...
EDGE_P = 0.01  # ... and a binomial test against EDGE gives p below this
# The parameters sampled log-uniformly, whose ranges end at a chosen decade on both sides
# (input noise starts at none), the most important in the paper first.
EDGE_PARAMS = tuple(paper.ranked(p.name for p in SPACE if p.log))
STILL_IMPROVING = 0.5  # share of trials best at their last epoch that is flagged
BANDED = "hidden_size"  # the parameter the runner's rounds cut into bands
COVERED = 0.8  # share of a parameter's (log) range the trials must span for a finding on it
# The protocol columns: its preset and every field that changes a trial's result.
PROTOCOL = ("preset", *Protocol().results_fields())

CHECK_COLUMNS = [
    "benchmark",
    "variant",
    *PROTOCOL,
    "n_complete",
    "share_epoch_cap",
    "share_early_stop",
    "share_diverged",
    "share_blew_up",
    "share_best_at_last",
    "chance",
    "share_at_chance",
    "n_top",
    *[f"top_{p}_{end}" for p in EDGE_PARAMS for end in ("low", "high")],
    "edge_flags",
    *[f"cover_{p.name}" for p in SPACE],
]


def checks(trials: pd.DataFrame, studies: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per benchmark × variant, then `all` (the benchmark's trials pooled; its top
    trials are the union of each variant's top), with the columns CHECK_COLUMNS. `studies`
    (the studies table of `load_storage`) gives the band size of studies trained in rounds."""
    rows = []
    for benchmark, runs in trials.groupby("benchmark", sort=False):
        bands = round_of(runs, studies) if studies is not None else None
        complete = runs[runs.state == "COMPLETE"]
        space = {p.name: p for p in cover(SPACE, complete) if p.name in EDGE_PARAMS}
        chance = metric_of(benchmark).chance
        tops = {v: top_trials(complete[complete.variant == v]) for v in variant_order(runs.variant)}
        groups = [(v, complete[complete.variant == v], top) for v, top in tops.items()]
        groups.append(("all", complete, pd.concat(tops.values()) if tops else complete.head(0)))
        for variant, group, top in groups:
            row = {"benchmark": benchmark, "variant": variant}
            row |= {name: _values(group[name]) for name in PROTOCOL}
            row |= _endings(group)
            row["chance"] = chance if chance is not None else np.nan
            metric = group.test_metric.dropna()
            at_chance = (metric >= chance).mean() if chance is not None and len(metric) else np.nan
            row["share_at_chance"] = at_chance
            row["n_top"] = len(top)
            flags = []
            for name, param in space.items():
                unit = param.to_unit(top[name].to_numpy(float))
                unit = unit[np.isfinite(unit)]
                for end, inside in (("low", unit <= EDGE), ("high", unit >= 1 - EDGE)):
                    row[f"top_{name}_{end}"] = inside.mean() if len(unit) else np.nan
                    if is_pressing(int(inside.sum()), len(unit)):
                        flags.append(f"{name} {end}")
            row["edge_flags"] = "; ".join(flags)
            row |= {
                f"cover_{p.name}": coverage(group, p, bands if p.name == BANDED else None)
                for p in cover(SPACE, complete)
            }
            rows.append(row)
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def is_pressing(k: int, n: int) -> bool:
    """Whether k of n top trials in an outer EDGE of a range is both large and unlikely under
    uniform sampling: the range, not the variant, may be the limit."""
    if n == 0 or k / n < EDGE_FLAG:
        return False
    return bool(stats.binomtest(k, n, EDGE, alternative="greater").pvalue < EDGE_P)


def coverage(trials: pd.DataFrame, param: Param, bands: dict[int, int] | None = None) -> float:
    """The share of `param`'s (log) range between the lowest and the highest value among
    `trials`; 0 for none or one value. With `bands` (each configuration's band, by index:
    `round_of`), the sum of those shares within each band: the ranges between the bands are
    not sampled."""
    unit = pd.Series(param.to_unit(trials[param.name].to_numpy(float)), index=trials.index)
    if bands is not None:
        band = trials.config_index.map(bands)
        spans = unit.groupby(band).agg(lambda x: x.max() - x.min())
        return float(spans.sum()) if len(spans) else 0.0
    unit = unit[np.isfinite(unit)]
    return float(unit.max() - unit.min()) if len(unit) else 0.0


def band_size(studies: pd.DataFrame) -> int | None:
    """The one band size the studies record; None where they record none or several."""
    sizes = studies.band_size.dropna().unique() if "band_size" in studies else []
    return int(sizes[0]) if len(sizes) == 1 else None


def round_of(runs: pd.DataFrame, studies: pd.DataFrame) -> dict[int, int] | None:
    """Each configuration's round on one benchmark (configuration index -> 0-based round), as
    the runner orders them (`study.runner.rounds`): the configurations of every row, waiting
    ones too, by index and hidden size, cut into bands of the studies' `band_size`. None where
    the studies do not record one band size."""
    band = band_size(studies[studies.benchmark.isin(runs.benchmark.unique())])
    if band is None or band < 1:
        return None
    indexed = runs[runs.config_index.notna() & runs.hidden_size.notna()]
    sizes = dict(zip(indexed.config_index.astype(int), indexed.hidden_size.astype(int)))
    return rounds.rounds(sizes, band)


def edge_bounds(trials: pd.DataFrame, name: str) -> tuple[float, float]:
    """The values (natural units) below and above which a trial is in the outer EDGE."""
    param = next(p for p in cover(SPACE, trials[trials.state == "COMPLETE"]) if p.name == name)
    low, high = param.from_unit(np.array([EDGE, 1 - EDGE]))
    return float(low), float(high)


def _endings(group: pd.DataFrame) -> dict:
    """Shares of complete trials stopped by the epoch cap, by early stopping, or diverged, and
    best at their last epoch; NaN where the protocol or the epochs were not recorded."""
    n = len(group)
    diverged = group.diverged.fillna(False).astype(bool)
    capped = group.max_epochs.notna() & group.epochs.notna()
    at_cap = (group.epochs >= group.max_epochs).fillna(False).astype(bool)
    known = group.epochs.notna() & group.best_epoch.notna()

    def share(mask: pd.Series, over: pd.Series) -> float:
        return float(mask[over].mean()) if over.any() else np.nan

    return {
        "n_complete": n,
        "share_epoch_cap": share(at_cap & ~diverged, capped),
        "share_early_stop": share(~at_cap & ~diverged, capped),
        "share_diverged": float(diverged.mean()) if n else np.nan,
        "share_blew_up": float(group.blew_up.mean()) if group.blew_up.notna().any() else np.nan,
        "share_best_at_last": share((group.best_epoch == group.epochs).fillna(False), known),
    }


def _values(column: pd.Series) -> str:
    """The distinct recorded values of a protocol column, joined by '/'; empty if none."""
    values = [v for v in column.dropna().unique() if v is not None]
    return "/".join(str(v) for v in sorted(values, key=str))
