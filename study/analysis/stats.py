"""The paper's comparison of variants: the best 10 % of trials of each variant (ranked on the
validation value), their test metric, Welch's t-test against V. The paper's criterion is an
uncorrected p < 0.05; Holm's correction over the variants of a benchmark is shown beside it as a
stricter reading, not instead of it.

Diverged trials are COMPLETE results of the random search and stay in the ranking, as the
paper's would; they only reach the top when nothing better was found. No comparison with
fewer than MIN_FOR_VERDICT trials a side is called significant (the paper had 20).

Where every variant of a benchmark trained the same configurations (the studies' `sample`
attribute is "shared"), each variant is also compared with V configuration by configuration,
over every configuration complete in both (no filter that looks at either result):

- the median of the differences d = variant − V with its distribution-free 95 % interval for
  the median (the sign-test interval between two order statistics of d,
  `scipy.stats.quantile_test`; none below 6 configurations), and Wilcoxon's signed-rank p,
  Holm-corrected over the benchmark's variants. A paired direction needs both: Holm's p
  below ALPHA and an interval that excludes 0.
- the two parts of a difference: how often each side did not learn (test metric not below
  the benchmark's chance level) with McNemar's exact test on the discordant configurations
  (b of them where only the variant failed, c where only V did: the two-sided binomial p of
  b in b + c at 1/2), Holm-corrected over the benchmark's variants as the paired p is, and
  the median difference where both learned, with its interval.

Welch on a shared sample compares overlapping sets (a variant's top 10 % and V's may be many
of the same configurations), so it is no longer the paper's independent two-sample test; it
stays as the paper's criterion beside the paired one, with the overlap counted. `mde` is the
smallest difference of top-10 % means Welch's test detects with POWER at this n and spread:
with s1, s2 the two tops' standard deviations, n1, n2 their sizes,
se = sqrt(s1²/n1 + s2²/n2) and Welch–Satterthwaite's df, the δ where
P(|T| > t_{1−α/2, df}) = POWER for T noncentral t with df and noncentrality δ/se.

`paper_agreement` sets the paper's criterion beside the paper's verdict (only on the paper's
own datasets): "agrees" where both find the same (an effect in the same direction, or none);
"differs" only on positive evidence (a significant effect the paper did not find, or the
opposite one); "inconclusive" where the paper found an effect and this study's test does not
(absence of evidence is not disagreement) or where there are too few top trials. Every
verdict is `provisional` while a study of the benchmark has fewer complete trials than planned.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ..benchmarks.metrics import PAPER_DATASET, metric_of
from . import paper

REFERENCE = "V"
ALPHA = 0.05
TOP_FRACTION = 0.1
TOP_MINIMUM = 2
MIN_FOR_VERDICT = 4  # trials (or configurations) a side below which nothing is significant
SHARED = "shared"  # a study's `sample` attribute when its configurations are the benchmark's
POWER = 0.8  # of Welch's test, for `mde`
MIN_FOR_INTERVAL = 6  # configurations below which the sign-test interval is unbounded

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
    "mde",  # the smallest top_diff Welch detects with POWER at these n and spreads
    "top_overlap",  # configurations in both this top and V's (shared sample only)
    # the paired comparison (empty without a shared sample): configurations complete in both,
    # the median of variant minus V with its 95 % sign-test interval, Wilcoxon's signed-rank
    # p, Holm's over the benchmark, and the direction where Holm's p < ALPHA and the interval
    # excludes 0
    "n_paired",
    "paired_median",
    "paired_low",
    "paired_high",
    "wilcoxon_p",
    "paired_p_holm",
    "paired_direction",
    # its two parts: shares of those configurations that did not learn, McNemar's exact p
    # (and Holm's over the benchmark), and the median difference (with its interval) over
    # the configurations both learned
    "fail_rate",
    "fail_rate_ref",
    "fail_p",
    "fail_p_holm",
    "n_learned",
    "learned_median",
    "learned_low",
    "learned_high",
    # the paper's criterion beside the paper's verdict (its own datasets only)
    "paper_agreement",
    "provisional",
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


def paired(sample: pd.DataFrame, reference: pd.DataFrame, chance: float | None) -> dict:
    """Configuration by configuration, `sample` against `reference` (trials tables of one
    variant each, over the same shared sample), over every configuration complete in both
    (with a test metric, +inf included, see `_by_config`): the paired columns of
    SUMMARY_COLUMNS but Holm's p and the direction. A configuration did not learn where its
    test metric is not below `chance` (with no chance level, every one learned). NaN where
    there are too few."""
    both = pd.merge(
        _by_config(sample), _by_config(reference), on="config_index", suffixes=("", "_ref")
    )
    a, b = both.test_metric.to_numpy(float), both.test_metric_ref.to_numpy(float)
    d = np.subtract(a, b, out=np.zeros_like(a), where=a != b)  # +inf twice: 0, not NaN
    median, low, high = median_interval(d)
    p = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else np.nan
    if chance is None:
        failed = failed_ref = np.zeros(len(both), dtype=bool)
    else:
        failed = (both.test_metric >= chance).to_numpy()
        failed_ref = (both.test_metric_ref >= chance).to_numpy()
    learned = median_interval(d[~failed & ~failed_ref])
    return {
        "n_paired": len(d),
        "paired_median": median,
        "paired_low": low,
        "paired_high": high,
        "wilcoxon_p": p,
        "fail_rate": float(failed.mean()) if len(d) else np.nan,
        "fail_rate_ref": float(failed_ref.mean()) if len(d) else np.nan,
        "fail_p": mcnemar(int((failed & ~failed_ref).sum()), int((~failed & failed_ref).sum()))
        if len(d)
        else np.nan,
        "n_learned": int((~failed & ~failed_ref).sum()),
        "learned_median": learned[0],
        "learned_low": learned[1],
        "learned_high": learned[2],
    }


def median_interval(d: np.ndarray) -> tuple[float, float, float]:
    """The median of `d` and its distribution-free 95 % interval (the sign-test interval of
    `scipy.stats.quantile_test`: two order statistics of d); NaN bounds below
    MIN_FOR_INTERVAL values, where no pair of order statistics reaches 95 %."""
    if not len(d):
        return np.nan, np.nan, np.nan
    median = float(np.median(d))
    if len(d) < MIN_FOR_INTERVAL:
        return median, np.nan, np.nan
    interval = stats.quantile_test(d, q=0.0, p=0.5).confidence_interval(0.95)
    return median, float(interval.low), float(interval.high)


def mcnemar(b: int, c: int) -> float:
    """McNemar's exact two-sided p for b and c discordant pairs (one side failed, the other
    did not): the binomial test of b in b + c at 1/2; 1 when no pair is discordant."""
    return float(stats.binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0


def minimum_detectable(
    std: float, n: int, std_ref: float, n_ref: int, alpha: float = ALPHA, power: float = POWER
) -> float:
    """The smallest difference of means Welch's two-sided test at `alpha` detects with
    `power` for samples of sizes n, n_ref and standard deviations std, std_ref (see the
    module's docstring); NaN below 2 values a side or with no spread."""
    if min(n, n_ref) < 2 or not np.isfinite(std) or not np.isfinite(std_ref):
        return np.nan
    a, b = std**2 / n, std_ref**2 / n_ref
    if a + b <= 0:
        return np.nan
    se = np.sqrt(a + b)
    df = (a + b) ** 2 / (a**2 / (n - 1) + b**2 / (n_ref - 1))
    critical = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(effect: float) -> float:
        nc = effect / se
        wrong_side = np.nan_to_num(stats.nct.cdf(-critical, df, nc))  # NaN far in its tail
        return stats.nct.sf(critical, df, nc) + wrong_side - power

    return float(optimize.brentq(shortfall, 0.0, 100 * se))


def agreement(direction: str, paper_direction: str | None, enough: bool) -> str:
    """This study's verdict by the paper's criterion (`direction`: "worse", "better" or "")
    beside the paper's (`paper_direction`: "worse" or "", None where the paper has none):
    agrees, differs (only on a significant result) or inconclusive; "" without a verdict of
    the paper."""
    if paper_direction is None:
        return ""
    if not enough:
        return "inconclusive"
    if direction == paper_direction:
        return "agrees"
    return "differs" if direction else "inconclusive"


def _by_config(trials: pd.DataFrame) -> pd.DataFrame:
    """The test metric of each configuration's complete trial (the first, should a
    configuration have been completed twice)."""
    complete = trials[(trials.state == "COMPLETE") & trials.config_index.notna()]
    complete = complete[complete.test_metric.notna()]  # +inf stays: it learned nothing
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
    paired columns are filled for variants whose study and V's have a shared sample, and
    `provisional` where a study of the benchmark has fewer complete trials than planned
    (`studies`, the studies table of `load_storage`)."""
    studies = studies if studies is not None else pd.DataFrame(columns=["benchmark", "variant"])
    shared = set()
    if "sample" in studies:
        rows_shared = studies[studies["sample"] == SHARED]
        shared = set(zip(rows_shared.benchmark, rows_shared.variant))
    rows = []
    for benchmark, runs in trials.groupby("benchmark", sort=False):
        block = _comparisons(benchmark, runs, shared)
        adjusted = holm(np.array([row["p_value"] for row in block]))
        paired_adjusted = holm(np.array([row["wilcoxon_p"] for row in block], dtype=float))
        fail_adjusted = holm(np.array([row["fail_p"] for row in block], dtype=float))
        verdicts = paper.DIRECTION.get(PAPER_DATASET.get(benchmark, ""), {})
        provisional = _incomplete(runs, studies[studies.benchmark == benchmark])
        for row, p_holm, paired_p_holm, fail_p_holm in zip(
            block, adjusted, paired_adjusted, fail_adjusted
        ):
            enough = row.pop("enough")
            significant = bool(row["p_value"] < alpha) and enough  # NaN compares False
            row["p_holm"] = p_holm
            row["significant"] = significant
            row["significant_holm"] = bool(p_holm < alpha) and enough
            row["direction"] = ("worse" if row["welch_t"] > 0 else "better") if significant else ""
            row["paired_p_holm"] = paired_p_holm
            row["fail_p_holm"] = fail_p_holm
            excludes_zero = row["paired_low"] > 0 or row["paired_high"] < 0  # NaN: False
            decided = bool(paired_p_holm < alpha) and excludes_zero
            decided = decided and pd.notna(row["n_paired"]) and row["n_paired"] >= MIN_FOR_VERDICT
            row["paired_direction"] = (
                ("worse" if row["paired_median"] > 0 else "better") if decided else ""
            )
            compared = row["variant"] != REFERENCE and np.isfinite(row["p_value"])
            row["paper_agreement"] = (
                agreement(row["direction"], verdicts.get(row["variant"]), enough)
                if compared
                else ""
            )
            row["provisional"] = provisional
        rows.extend(block)
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return table.astype({"n_paired": "Int64", "n_learned": "Int64", "top_overlap": "Int64"})


def finished(summary: pd.DataFrame) -> bool:
    """Whether a benchmark's `summarize` table is final: it compares something and no study
    of the benchmark has fewer complete trials than planned."""
    return len(summary) > 0 and not summary.provisional.any()


def _incomplete(runs: pd.DataFrame, studies: pd.DataFrame) -> bool:
    """Whether a study of one benchmark has fewer complete trials than it plans (`studies`:
    its rows of the studies table; a study that records no plan is taken as it stands)."""
    if "planned" not in studies:
        return False
    complete = runs[runs.state == "COMPLETE"].variant.value_counts()
    planned = studies.set_index("variant").planned.dropna()
    return bool(any(complete.get(v, 0) < n for v, n in planned.items()))


def _comparisons(benchmark: str, runs: pd.DataFrame, shared: set[tuple[str, str]]) -> list[dict]:
    """The summary rows of one benchmark's variants before the corrections over it, each
    with `enough`: whether both sides have the top trials for a verdict. `shared` holds the
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
            else dict.fromkeys(_PAIRED, np.nan) | dict.fromkeys(_PAIRED_COUNTS, pd.NA)
        )
        std = _stat(lambda x: np.std(x, ddof=1), metric, minimum=2)
        ref_std = _stat(lambda x: np.std(x, ddof=1), ref_metric, minimum=2)
        block.append(
            {
                "benchmark": benchmark,
                "variant": variant,
                # complete trials only: retried failures are not trials of the sample
                "n_trials": int(((runs.variant == variant) & (runs.state == "COMPLETE")).sum()),
                "n_top": len(top),
                "top_mean": _stat(np.mean, metric),
                "top_std": std,
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
                "mde": (
                    minimum_detectable(std, len(metric), ref_std, len(ref_metric))
                    if compared
                    else np.nan
                ),
                "top_overlap": (
                    len(set(top.config_index.dropna()) & set(reference.config_index.dropna()))
                    if is_shared
                    else pd.NA
                ),
                **pair,
            }
        )
    return block


_PAIRED_COUNTS = ("n_paired", "n_learned")
_PAIRED = (  # the other columns `paired` fills
    "paired_median", "paired_low", "paired_high", "wilcoxon_p", "fail_rate", "fail_rate_ref",
    "fail_p", "learned_median", "learned_low", "learned_high",
)  # fmt: skip


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def _stat(func, values: np.ndarray, minimum: int = 1) -> float:
    return float(func(values)) if len(values) >= minimum else np.nan
