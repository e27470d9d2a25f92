"""REPORT.md's comparison of each variant with V on one benchmark: the paper's test (Figure 3:
Welch on the top 10 %, Holm beside it) and, on a shared sample, the paired test beside it,
reconciled variant by variant."""

from __future__ import annotations

import pandas as pd

from ..benchmarks.metrics import metric_of
from . import figures, markdown
from .findings import reconciliation, variant_findings
from .stats import ALPHA, MIN_FOR_VERDICT, REFERENCE, TOP_FRACTION


def variants_section(
    runs: pd.DataFrame, summary: pd.DataFrame, benchmark: str, figure
) -> list[str]:
    """The paper's comparison of each variant's top trials with V's (Figure 3)."""
    metric = metric_of(benchmark)
    box = figure(figures.top_boxplot(runs, summary, benchmark), "top")
    n_tests = int(summary.p_value.notna().sum())
    welch_columns = [
        "variant", "n_trials", "n_top", "top_mean", "top_std", "best", "top_diff", "p_value",
        "p_holm", "significant", "significant_holm", "direction",
    ]  # fmt: skip
    return [
        "### Variants against V (Figure 3)",
        f"The {metric.label()} of the best {TOP_FRACTION:.0%} of each variant's complete trials "
        f"(ranked on validation, at least 2; n under each box). Welch's t-test against "
        f"{REFERENCE}: `significant` is the paper's criterion (p < {ALPHA}, uncorrected) and "
        f"decides `direction`; `significant_holm` is p < {ALPHA} after Holm's correction over "
        f"the {n_tests} comparisons of this benchmark. In the figure, * marks the first and ** "
        f"both. Neither is given with fewer than {MIN_FOR_VERDICT} top trials on a side: the "
        "p-value is printed, the verdict is not. Blown-up trials keep their raw values here: "
        "they rank last and reach the top only when nothing better was found.",
        f"![top trials]({box})",
        markdown.table(summary[welch_columns]),
        "\n".join(f"- {s}" for s in variant_findings(summary, benchmark)),
    ]


def paired_section(summary: pd.DataFrame, benchmark: str, figure) -> list[str]:
    """The configuration-by-configuration comparison, where the studies share their sample,
    beside the paper's test, reconciled per variant."""
    rows = summary[(summary.variant != REFERENCE) & summary.n_paired.notna()]
    if rows.empty:
        return []
    metric = metric_of(benchmark)
    chance = f"chance ({metric.chance:.4g})" if metric.chance is not None else "a chance level"
    plot = figure(figures.paired_differences(summary, benchmark), "paired")
    columns = ["variant", "n_top", "top_overlap", "top_diff", "p_value", "mde", "direction"]
    columns += ["n_paired", "paired_median", "paired_low", "paired_high", "wilcoxon_p"]
    columns += ["paired_p_holm", "paired_direction", "fail_rate", "fail_rate_ref", "fail_p"]
    columns += ["fail_p_holm"]
    columns += ["n_learned", "learned_median", "learned_low", "learned_high"]
    return [
        "### Paired comparison, beside the paper's test",
        "Every variant of this benchmark trained the same configurations (a shared sample), so "
        f"each variant is also compared with {REFERENCE} configuration by configuration, over "
        "every configuration complete in both (no filter that looks at either result): the "
        f"median of the variant's {metric.label()} minus {REFERENCE}'s with its 95 % "
        "sign-test interval (two order statistics of the differences; none below 6 "
        "configurations) and Wilcoxon's signed-rank p with Holm's correction over the "
        f"benchmark's variants. A direction needs Holm's p < {ALPHA}, an interval that "
        f"excludes 0 and at least {MIN_FOR_VERDICT} configurations. It asks whether the "
        "variant is better or worse at the same hyperparameters; the paper's test asks whether "
        "its best trials are.",
        "One difference can hide two effects, so it is split: how often each side did not "
        f"learn (test metric not below {chance}; McNemar's exact test on the configurations "
        "where only one side failed, Holm-corrected over the benchmark's variants) and the "
        "median difference where both learned.",
        "Welch's test on this sample compares overlapping sets: `top_overlap` counts the "
        f"configurations a variant's top {TOP_FRACTION:.0%} shares with {REFERENCE}'s, so the "
        "two samples are not independent, as the paper's were. It stays as the paper's "
        "criterion; `mde` is the smallest difference of top means it detects with 80 % power "
        "at these sizes and spreads.",
        f"![paired]({plot})",
        *(
            ["Every verdict here is provisional: the study has fewer complete trials than planned."]
            if rows.provisional.any()
            else []
        ),
        markdown.table(rows[columns]),
        "\n".join(f"- {reconciliation(row)}" for row in rows.itertuples()),
    ]
