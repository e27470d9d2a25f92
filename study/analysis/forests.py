"""REPORT.md's forests on one benchmark: both lenses of importance (Figure 5) with each
forest's held-out fit, and the headline forest's marginals (Figure 4) and strongest
interactions (Figure 6), each finding beside the paper's."""

from __future__ import annotations

import pandas as pd

from ..benchmarks.metrics import metric_of
from . import figures, markdown
from .fanova import SPACE
from .findings import importance_findings, marginal_findings
from .results import FANOVA, PED_ANOVA, Results
from .stats import REFERENCE, TOP_FRACTION
from .tables import covered_shares, headline_of, shares_by_variant, variance_by_variant

# How many times the other variants' mean square about the pooled mean one variant's trials
# must reach for the report to say that the pooled importances describe that variant's
# failures (JSB's NOAF, with its blow-ups capped at 61 nats: about 170 at 1,800 trials).
DOMINANT = 4.0


def importance_section(view: Results, benchmark: str, figure) -> list[str]:
    """Both lenses of importance (Figure 5) on one benchmark (`view`: its tables,
    `Results.of_benchmark`): the headline's and the pooled forest's tables, every forest's
    shares, and the findings beside the paper's."""
    metric = metric_of(benchmark)
    lenses = view.importance
    importance = lenses[lenses.lens == FANOVA]
    ped = lenses[lenses.lens == PED_ANOVA]
    headline = headline_of(importance.variant)
    logs = [figures.LABELS[p.name] for p in SPACE if p.log]
    png = figure(figures.importance_bars(lenses, benchmark), "importance")
    parts = [
        "### Hyperparameter importance (Figure 5)",
        f"fANOVA of the {metric.label()} over a random forest per variant ({REFERENCE} first, "
        "the paper's headline) and one pooled over all variants (`all`) that takes the variant "
        "as a feature, in the space the "
        f"parameters were sampled in (log10 for {markdown.join_words(logs)}), "
        "with the standard deviation over the forest's trees as error bars. R² is each "
        "forest's held-out R²: out-of-bag, but for the pooled forest of a shared sample "
        "cross-validated with whole configurations held out, since every variant trained the "
        "same configurations and an out-of-bag trial would have copies of its configuration "
        "in the bag. Beside it, Optuna's PED-ANOVA "
        f"(`PedAnovaImportanceEvaluator`, top {TOP_FRACTION:.0%} quantile), the evaluator "
        "optuna-dashboard shows.",
        f"![importance]({png})",
        "Why the two lenses may differ: fANOVA splits the variance of the forest's prediction "
        "over the whole (log) search box, so a parameter that separates useless trials from "
        "good ones over most of its range (the learning rate: below about 1e-4 nothing is "
        "learned) takes most of it, and a parameter that matters only among good trials takes "
        f"little. PED-ANOVA asks how differently a parameter is distributed among the best "
        f"{TOP_FRACTION:.0%} of the trials than among all of them, the same lens as the "
        "paper's top-10 % comparison: a parameter whose best values cluster in a band (the "
        "hidden sizes a study has reached so far, say) ranks high there even when it moves "
        "the mean little. Where the trials cover only part of a range, both describe that "
        "part. Tools that rank on the raw parameter (Optuna's own fANOVA evaluator works "
        "on the values as sampled, not in log space) give other numbers again.",
    ]
    pooled = "#### All variants pooled (the variant a feature)"
    for variant, title in ((headline, f"#### {headline}"), ("all", pooled)):
        if variant == "all" and headline == "all":
            continue
        rows = importance[importance.variant == variant]
        if rows.empty:
            continue
        table = rows[["term", "order", "importance", "std"]].rename(
            columns={"importance": "fanova", "std": "fanova_std"}
        )
        other = ped[ped.variant == variant].set_index("term").importance
        table["ped_anova"] = table.term.map(other)
        parts += [title, markdown.table(table), _fit_sentence(rows, "these importances")]
        if variant == "all":
            parts += _dominant_variant(view.trials)
    shares = shares_by_variant(importance)
    weak = shares[shares.held_out_r2 < figures.FIT_MEANINGFUL].variant.tolist()
    parts += ["#### Per variant (fANOVA)", markdown.table(shares)]
    if weak:
        parts.append(
            f"For {', '.join(weak)} the forest's held-out R² is below "
            f"{figures.FIT_MEANINGFUL}: it predicts held-out trials hardly better than their "
            "mean, so the importances of those rows are not meaningful."
        )
    covered = covered_shares(view.checks, benchmark, headline)
    findings = importance_findings(importance, benchmark, covered)
    parts.append("\n".join(f"- {s}" for s in findings))
    return parts


def _dominant_variant(trials: pd.DataFrame) -> list[str]:
    """A warning under the pooled forest where one variant's trials, each, weigh more than
    DOMINANT times the others' in its variance (`tables.variance_by_variant`)."""
    shares = variance_by_variant(trials)
    if len(shares) < 2:
        return []
    variant, (share, n) = shares.index[0], shares.iloc[0]
    if share / n <= DOMINANT * (1 - share) / (shares.trials.sum() - n):
        return []
    return [
        f"{variant}'s trials carry {share:.0%} of the pooled forest's variance (the sum of "
        "squares of the capped test metric about its mean; the other variants "
        f"{1 - share:.0%}): the pooled importances describe where {variant} fails to learn, "
        "not how the parameters act within a variant. Each variant's own forest (next "
        "table) does."
    ]


def _fit_sentence(rows: pd.DataFrame, what: str) -> str:
    """A forest's held-out fit, and what it means for `what` when poor."""
    r2, n = rows.held_out_r2.iloc[0], int(rows.n_trials.iloc[0])
    text = f"Forest fit: held-out R² = {r2:.2f} over {n} trials ({rows.held_out.iloc[0]})."
    if r2 < figures.FIT_MEANINGFUL:
        text += (
            f" Below {figures.FIT_MEANINGFUL}, {what} are not meaningful: the forest predicts "
            "held-out trials hardly better than their mean (a forest fitted to noise still "
            "splits the variance among the parameters)."
        )
    return text


def marginals_section(view: Results, benchmark: str, figure) -> list[str]:
    """The headline forest's marginals (Figure 4) and strongest interactions (Figure 6) on one
    benchmark (`view`: its tables, `Results.of_benchmark`)."""
    metric = metric_of(benchmark)
    importance = view.importance[view.importance.lens == FANOVA]
    marginals = view.marginals
    headline = headline_of(importance.variant)
    curves_png = figure(figures.marginal_curves(marginals, benchmark), "marginals")
    parts = [
        "### Marginal performance (Figure 4)",
        f"The predicted {metric.label()} against each hyperparameter, averaged over the others, "
        f"±1 standard deviation over the forest's trees: {headline}'s forest. Each curve is "
        "drawn in colour only over the range its forest's trials cover; beyond it, in grey, "
        "the forest only extrapolates (for the hidden size, between the bands trained so far "
        "it interpolates over sizes no trial had).",
        f"![marginals]({curves_png})",
    ]
    r2 = importance[importance.variant == headline].held_out_r2.iloc[0]
    if r2 < figures.FIT_MEANINGFUL:
        parts.append(
            f"{headline}'s forest does not fit (held-out R² {r2:.2f} < "
            f"{figures.FIT_MEANINGFUL}): these curves describe the forest, not the variant, "
            "and are no finding."
        )
    covered = covered_shares(view.checks, benchmark, headline)
    findings = marginal_findings(marginals, headline, metric.name, covered)
    parts.append("\n".join(f"- {s}" for s in findings))
    interactions = view.interactions
    if not interactions.empty:
        heat = figure(figures.interaction_heatmaps(interactions, benchmark), "interactions")
        parts += [
            "### Strongest interactions (Figure 6)",
            f"The two largest pairwise terms of {headline}'s forest, predicted {metric.label()} "
            "over both parameters; greyed where either value lies outside the range the "
            "trials cover.",
            f"![interactions]({heat})",
        ]
    return parts
