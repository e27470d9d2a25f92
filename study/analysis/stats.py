"""The paper's comparison of variants: the best 10 % of trials of each variant (ranked on the
validation value), their test metric, Welch's t-test against V. The paper's criterion is an
uncorrected p < 0.05; Holm's correction over the variants of a benchmark is shown beside it as a
stricter reading, not instead of it.

Diverged trials are COMPLETE results of the random search and stay in the ranking, as the
paper's would; they only reach the top when nothing better was found. No comparison with
fewer than MIN_FOR_VERDICT trials a side is called significant (the paper had 20).

Where every variant of a benchmark trained the same configurations (the studies' `sample`
attribute is "shared"), each variant is also compared with V configuration by configuration:
the median difference in test metric with a seeded bootstrap interval and Wilcoxon's
signed-rank test, over the configurations where at least one of the two beats chance (a pair
that learned nothing on either side says nothing about the variants).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..benchmarks.metrics import metric_of

REFERENCE = "V"
ALPHA = 0.05
TOP_FRACTION = 0.1
TOP_MINIMUM = 2
MIN_FOR_VERDICT = 4  # trials (or configurations) a side below which nothing is significant
SHARED = "shared"  # a study's `sample` attribute when its configurations are the benchmark's
BOOTSTRAP = 10_000  # resamples of the paired interval
BOOTSTRAP_SEED = 0

SUMMARY_COLUMNS = [
    "benchmark",
    "variant",
    "n_trials",
    "n_top",
    "top_mean",
    "top_std",
    "top_median",
    "best",
    "top_diff",  # top_mean minus V's, with Welch's 95 % interval
    "top_diff_low",
    "top_diff_high",
    "welch_t",
    "p_value",
    "p_holm",
    "significant",
    "significant_holm",
    "direction",
    # the paired comparison (empty without a shared sample): configurations complete in both
    # where at least one beats chance, the median of variant minus V with its 95 % bootstrap
    # interval, Wilcoxon's signed-rank p, and the direction where p < ALPHA
    "n_paired",
    "paired_median",
    "paired_low",
    "paired_high",
    "wilcoxon_p",
    "paired_direction",
]


def top_trials(
    trials: pd.DataFrame, fraction: float = TOP_FRACTION, minimum: int = TOP_MINIMUM
) -> pd.DataFrame:
    """The best `fraction` (nearest count, halves up, at least `minimum`) of the COMPLETE
    trials of one variant, ranked by validation value (lower is better); ties keep trial order."""
    complete = trials[(trials.state == "COMPLETE") & trials.value.notna()]
    n_top = min(len(complete), max(minimum, int(fraction * len(complete) + 0.5)))
    return complete.sort_values(["value", "trial"], kind="stable").head(n_top)


def welch(sample: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Welch's t statistic and two-sided p-value; NaN when either side has < 2 values."""
    return welch_test(sample, reference)[:2]


def welch_test(sample: np.ndarray, reference: np.ndarray) -> tuple[float, float, float, float]:
    """Welch's t, its two-sided p and the 95 % interval of the difference of means; NaN when
    either side has < 2 values."""
    sample, reference = _finite(sample), _finite(reference)
    if len(sample) < 2 or len(reference) < 2:
        return np.nan, np.nan, np.nan, np.nan
    result = stats.ttest_ind(sample, reference, equal_var=False)
    interval = result.confidence_interval(0.95)
    return (
        float(result.statistic),
        float(result.pvalue),
        float(interval.low),
        float(interval.high),
    )


def paired(
    sample: pd.DataFrame, reference: pd.DataFrame, chance: float | None
) -> tuple[int, float, float, float, float]:
    """Configuration by configuration, `sample` against `reference` (trials tables of one
    variant each, over the same shared sample): the number of configurations complete in both
    where at least one test metric is below `chance` (all of them when it is None), the
    median of sample minus reference, its 95 % percentile bootstrap interval (BOOTSTRAP
    resamples, seeded) and Wilcoxon's signed-rank two-sided p; NaN where there are too few."""
    both = pd.merge(
        _by_config(sample), _by_config(reference), on="config_index", suffixes=("", "_ref")
    )
    if chance is not None:
        both = both[np.minimum(both.test_metric, both.test_metric_ref) < chance]
    d = (both.test_metric - both.test_metric_ref).to_numpy(float)
    n = len(d)
    median = float(np.median(d)) if n else np.nan
    low = high = p = np.nan
    if n >= 2:
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        medians = np.median(d[rng.integers(0, n, (BOOTSTRAP, n))], axis=1)
        low, high = (float(x) for x in np.percentile(medians, [2.5, 97.5]))
    if np.any(d != 0):
        p = float(stats.wilcoxon(d).pvalue)
    return n, median, low, high, p


def _by_config(trials: pd.DataFrame) -> pd.DataFrame:
    """The test metric of each configuration's complete trial (the first, should a
    configuration have been completed twice)."""
    complete = trials[(trials.state == "COMPLETE") & trials.config_index.notna()]
    complete = complete[np.isfinite(complete.test_metric.to_numpy(float))]
    first = complete.sort_values("trial", kind="stable").drop_duplicates("config_index")
    return first[["config_index", "test_metric"]].astype({"config_index": "int64"})


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaNs stay NaN and do not count as tests."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    steps = (m - np.arange(m)) * p[order]  # the i-th smallest p is multiplied by m - i
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(steps))
    return adjusted


def summarize(
    trials: pd.DataFrame, studies: pd.DataFrame | None = None, alpha: float = ALPHA
) -> pd.DataFrame:
    """One row per benchmark × variant (SUMMARY_COLUMNS); test metrics of the top trials,
    compared with V's top by Welch's t-test. `significant` is the paper's criterion (p < alpha,
    uncorrected), `significant_holm` the same after Holm's correction over the variants of a
    benchmark; neither with fewer than MIN_FOR_VERDICT top trials on either side. `direction`
    is `worse`/`better` (lower metric is better) by the paper's criterion, else empty. The
    paired columns are filled for variants whose study and V's have a shared sample
    (`studies`, the studies table of `load_storage`)."""
    shared = set()
    if studies is not None:
        rows_shared = studies[studies["sample"] == SHARED]
        shared = set(zip(rows_shared.benchmark, rows_shared.variant))
    rows = []
    for benchmark, runs in trials.groupby("benchmark", sort=False):
        block = _comparisons(benchmark, runs, shared, alpha)
        adjusted = holm(np.array([row["p_value"] for row in block]))
        for row, p_holm in zip(block, adjusted):
            enough = row.pop("enough")
            significant = bool(row["p_value"] < alpha) and enough  # NaN compares False
            row["p_holm"] = p_holm
            row["significant"] = significant
            row["significant_holm"] = bool(p_holm < alpha) and enough
            row["direction"] = ("worse" if row["welch_t"] > 0 else "better") if significant else ""
        rows.extend(block)
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return table.astype({"n_paired": "Int64"})


def _comparisons(
    benchmark: str, runs: pd.DataFrame, shared: set[tuple[str, str]], alpha: float
) -> list[dict]:
    """The summary rows of one benchmark's variants before Holm's correction, each with
    `enough`: whether both sides have the top trials for a verdict. `shared` holds the
    (benchmark, variant) studies with a shared sample."""
    groups = dict(tuple(runs.groupby("variant", sort=False)))
    tops = {v: top_trials(g) for v, g in groups.items()}
    reference = tops.get(REFERENCE)
    ref_metric = _finite(reference.test_metric) if reference is not None else np.array([])
    chance = metric_of(benchmark).chance
    block = []
    for variant, top in tops.items():
        metric = _finite(top.test_metric)
        compared = reference is not None and variant != REFERENCE
        t, p, low, high = welch_test(metric, ref_metric) if compared else (np.nan,) * 4
        is_shared = compared and {(benchmark, variant), (benchmark, REFERENCE)} <= shared
        pair = (
            paired(groups[variant], groups[REFERENCE], chance)
            if is_shared
            else (pd.NA, np.nan, np.nan, np.nan, np.nan)
        )
        block.append(
            {
                "benchmark": benchmark,
                "variant": variant,
                # complete trials only: retried failures are not trials of the sample
                "n_trials": int(((runs.variant == variant) & (runs.state == "COMPLETE")).sum()),
                "n_top": len(top),
                "top_mean": _stat(np.mean, metric),
                "top_std": _stat(lambda x: np.std(x, ddof=1), metric, minimum=2),
                "top_median": _stat(np.median, metric),
                "best": _stat(np.min, metric),
                "top_diff": (
                    _stat(np.mean, metric) - _stat(np.mean, ref_metric) if compared else np.nan
                ),
                "top_diff_low": low,
                "top_diff_high": high,
                "welch_t": t,
                "p_value": p,
                "enough": min(len(metric), len(ref_metric)) >= MIN_FOR_VERDICT,
                "n_paired": pair[0],
                "paired_median": pair[1],
                "paired_low": pair[2],
                "paired_high": pair[3],
                "wilcoxon_p": pair[4],
                "paired_direction": (
                    ("worse" if pair[1] > 0 else "better")
                    if is_shared and pair[4] < alpha and pair[0] >= MIN_FOR_VERDICT
                    else ""
                ),
            }
        )
    return block


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def _stat(func, values: np.ndarray, minimum: int = 1) -> float:
    return float(func(values)) if len(values) >= minimum else np.nan
