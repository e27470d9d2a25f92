"""The paper's comparison of variants: the best 10 % of trials of each variant (ranked on the
validation value), their test metric, Welch's t-test against V. The paper's criterion is an
uncorrected p < 0.05; Holm's correction over the variants of a benchmark is shown beside it as a
stricter reading, not instead of it.

Diverged trials are COMPLETE results of the random search and stay in the ranking, as the
paper's would; they only reach the top when nothing better was found.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

REFERENCE = "V"
ALPHA = 0.05
TOP_FRACTION = 0.1
TOP_MINIMUM = 2

SUMMARY_COLUMNS = [
    "benchmark",
    "variant",
    "n_trials",
    "n_top",
    "top_mean",
    "top_std",
    "top_median",
    "best",
    "welch_t",
    "p_value",
    "p_holm",
    "significant",
    "significant_holm",
    "direction",
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
    sample, reference = _finite(sample), _finite(reference)
    if len(sample) < 2 or len(reference) < 2:
        return np.nan, np.nan
    result = stats.ttest_ind(sample, reference, equal_var=False)
    return float(result.statistic), float(result.pvalue)


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


def summarize(trials: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per benchmark × variant (SUMMARY_COLUMNS); test metrics of the top trials,
    compared with V's top by Welch's t-test. `significant` is the paper's criterion (p < alpha,
    uncorrected), `significant_holm` the same after Holm's correction over the variants of a
    benchmark. `direction` is `worse`/`better` (lower metric is better) by the paper's
    criterion, else empty."""
    rows = []
    for benchmark, runs in trials.groupby("benchmark", sort=False):
        tops = {v: top_trials(g) for v, g in runs.groupby("variant", sort=False)}
        reference = tops.get(REFERENCE)
        block = []
        for variant, top in tops.items():
            metric = _finite(top.test_metric)
            t, p = (np.nan, np.nan)
            if reference is not None and variant != REFERENCE:
                t, p = welch(metric, reference.test_metric)
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
                    "welch_t": t,
                    "p_value": p,
                }
            )
        adjusted = holm(np.array([row["p_value"] for row in block]))
        for row, p_holm in zip(block, adjusted):
            significant = bool(row["p_value"] < alpha)  # NaN compares False
            row["p_holm"] = p_holm
            row["significant"] = significant
            row["significant_holm"] = bool(p_holm < alpha)
            row["direction"] = ("worse" if row["welch_t"] > 0 else "better") if significant else ""
        rows.extend(block)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def _stat(func, values: np.ndarray, minimum: int = 1) -> float:
    return float(func(values)) if len(values) >= minimum else np.nan
