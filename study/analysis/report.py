"""REPORT.md and the figures of an analysis (`odyssey report`), beside its tables.

It opens with the answer (progress, V's level beside the published one, one verdict table),
then reads as the paper would be read: variants judged by the paper's criterion (Welch,
uncorrected p < 0.05) with Holm's correction and the paired test beside it; importances and
marginals of V (the paper's headline) with the pooled forest's importances beside them, each
with its held-out fit; checks of the training budget and the search range; and stand-in
benchmarks given the paper's findings as context only, never a verdict. The tables are
computed in `tables.py`; the sentences that set a study's findings beside the paper's are
`findings.py`'s, what the paper found is the data of `paper.py`. Sections of their own:
`answer.py` (the first screen), `state.py` (the state of the study and its coverage),
`budget.py` (the budget and search-space checks); Markdown helpers: `markdown.py`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import sqlalchemy
from scipy import stats

from ..benchmarks.metrics import BLOW_UP_MARGIN, PAPER_DATASET, SHAPES, STAND_IN, metric_of
from ..runner.storage import display_url
from . import answer, budget, figures, markdown, paper, state
from .checks import (
    COVERED,
)
from .fanova import SPACE
from .findings import (
    importance_findings,
    marginal_findings,
    reconciliation,
    variant_findings,
)
from .results import FANOVA, PED_ANOVA, Results
from .stats import ALPHA, MIN_FOR_VERDICT, REFERENCE, TOP_FRACTION
from .tables import (
    covered_shares,
    headline_of,
    parameter_counts,
    shares_by_variant,
)
from .trials import timed_trials, variant_order

_UNITS = 100  # per direction, in the table of parameter counts
DIVERGED_POLICY = (
    "Diverged trials are COMPLETE results of the random search: they keep their best "
    "validation value and stay in the ranking and in the fANOVA, as the paper's trials would; "
    "failed, pruned and unfinished trials are counted but enter no statistic. `requeued` "
    "counts trials an interrupt or a lost worker sent back to the queue: not failures, "
    "their configurations ran again as new trials."
)
HOW_TO_READ = [
    "The paper (Greff et al., *LSTM: A Search Space Odyssey*, 2017; its protocol and "
    "findings are summarised in this tool's docs/paper.md) compares each variant "
    f"with {REFERENCE} on the test metric of the best {TOP_FRACTION:.0%} of its trials "
    "(ranked on validation) by Welch's t-test, significant at an uncorrected p < 0.05. That "
    "criterion decides every verdict here; Holm's correction over the variants of a "
    "benchmark is given beside it, as a stricter reading (it bounds the chance of any false "
    "'differs' among the comparisons).",
    "Where the variants share one sample of configurations, Welch's test compares two "
    "overlapping sets (a variant's top 10 % and V's are often the same configurations), not "
    "the paper's independent samples: it stays as the paper's criterion, and a paired test "
    "over every configuration complete in both (Holm-corrected, with an interval that must "
    "exclude 0) stands beside it. A variant's agreement with the paper needs positive "
    "evidence to be 'differs' (a significant effect the paper did not find, or the opposite "
    "one); a non-significant result where the paper found an effect is 'inconclusive', with "
    "the smallest difference the test could detect beside it. Until every planned trial is "
    "complete, every verdict is provisional.",
    "The paper's importances (Figure 5) and marginals (Figure 4) are those of V. This report "
    "gives V first, then every variant, then one forest pooled over all variants that takes "
    "the variant as a feature. Each forest's held-out R² (how well it predicts trials it was "
    "not fitted on: out-of-bag, but for the pooled forest of a shared sample, whose out-of-bag "
    "trials would have copies of their configuration in the bag, whole configurations held out) "
    "is printed beside its importances: below "
    f"{figures.FIT_MEANINGFUL} they are not meaningful.",
    "A study limited by its epoch cap or by the edge of its search range measures the budget "
    "or the range, not the variants: the checks of each benchmark say whether that happened.",
    "A trial blew up when its best validation metric is more than "
    f"{BLOW_UP_MARGIN - 1:.0%} worse than the untrained reference (an untrained network's: on "
    "JSB 61.0 nats per step, 0.5 for every key; 1.0 for an error rate). The forests, "
    "marginals and PED-ANOVA cap every test metric at that reference; the comparisons of "
    "variants use the raw values.",
    "A forest knows only the part of the search range its trials reached: marginals and "
    "interactions are drawn in grey beyond it, and a parameter whose complete trials span "
    f"less than {COVERED:.0%} of its (log) range gets no agrees/differs with the paper but "
    "'not covered yet'.",
    f"No verdict of any kind (text, *, **, colour) comes from fewer than {MIN_FOR_VERDICT} "
    "top trials (or paired configurations) on a side: the numbers are printed, the verdict "
    "waits.",
]


def write(analysis: Results, out: Path, storage: str) -> Path:
    """Every table (see Results), figures/*.png and *.pdf, and REPORT.md under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    analysis.write_tables(out)
    sections = [_overview(analysis, storage, out)]
    for benchmark in analysis.trials.benchmark.unique():
        sections.append(_benchmark_section(analysis, benchmark, out))
    path = out / "REPORT.md"
    path.write_text("\n\n".join(sections) + "\n")
    return path


def default_out(storage: str) -> Path:
    """The folder a report goes to without --out: named after the storage, beside a SQLite
    file (results/odyssey/ for sqlite:///results/odyssey.db), else results/<database>/. Never
    results/ itself, which holds the committed reproduction."""
    try:
        url = sqlalchemy.engine.make_url(storage)
    except Exception:  # open_storage has refused it already; keep a safe name anyway
        return Path("results") / "report"
    database = Path(url.database or "")
    if url.get_backend_name() == "sqlite" and database.name:
        folder = database.with_suffix("") if database.suffix else database
    else:
        folder = Path("results") / (database.name or "report")
    if folder.resolve() == Path("results").resolve() or folder == database:
        folder = folder.with_name(folder.name + "-report")
    return folder


# ---- REPORT.md ----------------------------------------------------------------------------


def _overview(analysis: Results, storage: str, out: Path) -> str:
    tables = ", ".join(f"`{name}.csv`" for name in Results.__dataclass_fields__)
    lines = ["# LSTM variants: analysis report"]
    if out.resolve().parent.name == "results" and (out.parent / "README.md").is_file():
        lines.append(
            "What this study is and how far it has come, in two minutes: "
            "[results/README.md](../README.md)."
        )
    for benchmark in analysis.trials.benchmark.unique():
        lines += answer.section(analysis, benchmark)
    lines += [
        f"Storage `{display_url(storage)}`, {analysis.trials.benchmark.nunique()} benchmark(s). "
        f"Written by `odyssey report`; next to this file: {tables} and `figures/` (PNG and "
        "PDF). `study.analysis.read_results(folder)` loads every table.",
        "## State of the study",
    ]
    for benchmark in analysis.trials.benchmark.unique():
        lines += state.section(analysis, benchmark)
    lines += [
        "## How to read this report",
        "\n".join(f"- {line}" for line in HOW_TO_READ),
        DIVERGED_POLICY,
    ]
    return "\n\n".join(lines)


def _benchmark_section(analysis: Results, benchmark: str, out: Path) -> str:
    """The part of REPORT.md on one benchmark; its figures go to `out`/figures/."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", benchmark)

    def figure(fig, kind: str) -> str:
        return str(figures.save(fig, out / f"figures/{name}-{kind}").relative_to(out))

    runs = analysis.trials[analysis.trials.benchmark == benchmark]
    summary = analysis.summary[analysis.summary.benchmark == benchmark]
    parts = _heading(benchmark)
    parts += budget.section(analysis, benchmark)
    parts += _variants_section(runs, summary, benchmark, figure)
    parts += _paired_section(summary, benchmark, figure)
    parts += _parameters_section(runs, benchmark)
    curves = analysis.curves[analysis.curves.benchmark == benchmark]
    parts += _curves_section(curves, benchmark, figure)
    lenses = analysis.importance[analysis.importance.benchmark == benchmark]
    if (lenses.lens == FANOVA).any():
        parts += _importance_section(lenses, benchmark, figure, analysis.checks)
        parts += _marginals_section(analysis, benchmark, figure)
    else:
        parts.append("Too few complete trials with a test metric for fANOVA.")
    parts += _time_section(runs, benchmark, figure)
    return "\n\n".join(parts)


def _heading(benchmark: str) -> list[str]:
    """The benchmark's title, which of the paper's datasets it is or stands in for, and its
    metric."""
    dataset, stand_in = PAPER_DATASET.get(benchmark), STAND_IN.get(benchmark)
    heading = f"## {benchmark}"
    if dataset:
        heading += f" (the paper's {dataset})"
    elif stand_in:
        heading += f" (a stand-in for the paper's {stand_in})"
    parts = [heading]
    if stand_in:
        parts.append(
            f"{benchmark} is not {stand_in}: it is a smaller task of the same kind built from "
            f"data that ships with this tool (datasets/{benchmark}). The paper's {stand_in} "
            "findings are quoted as context only; nothing here confirms or contradicts them."
        )
    return [*parts, _metric_sentence(benchmark)]


def _variants_section(
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


def _curves_section(curves: pd.DataFrame, benchmark: str, figure) -> list[str]:
    """The learning curves of one benchmark, where its trials stored them."""
    if curves.empty:
        return [
            "### Learning curves",
            "No per-epoch values in this storage (it was written before trials stored their "
            "learning curves): no learning curves.",
        ]
    plot = figure(figures.learning_curves(curves, benchmark), "curves")
    return [
        "### Learning curves",
        f"Validation {metric_of(benchmark).name} over epochs: per variant, the median over the "
        "complete trials that trained that epoch (fewer as trials stop) and the curve of the "
        "variant's best trial; dashed: chance.",
        f"![learning curves]({plot})",
    ]


def _marginals_section(analysis: Results, benchmark: str, figure) -> list[str]:
    """The headline forest's marginals (Figure 4) and strongest interactions (Figure 6)."""
    metric = metric_of(benchmark)
    importance = analysis.importance[
        (analysis.importance.benchmark == benchmark) & (analysis.importance.lens == FANOVA)
    ]
    marginals = analysis.marginals[analysis.marginals.benchmark == benchmark]
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
    covered = covered_shares(analysis.checks, benchmark, headline)
    findings = marginal_findings(marginals, headline, metric.name, covered)
    parts.append("\n".join(f"- {s}" for s in findings))
    interactions = analysis.interactions[analysis.interactions.benchmark == benchmark]
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


def _metric_sentence(benchmark: str) -> str:
    metric = metric_of(benchmark)
    text = f"Metric: {metric.label()}, lower is better."
    if metric.chance is not None:
        text += f" Chance: {metric.chance:.4g} ({metric.chance_means}, on the test split)."
    if metric.untrained is not None:
        text += (
            f" An untrained network, which predicts 0.5 for every key, scores "
            f"{metric.untrained:.1f} (88 ln 2)."
        )
    return text


def _paired_section(summary: pd.DataFrame, benchmark: str, figure) -> list[str]:
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
        "where only one side failed) and the median difference where both learned.",
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


def _parameters_section(runs: pd.DataFrame, benchmark: str) -> list[str]:
    """Parameters of each variant at _UNITS units on this benchmark, and the formula."""
    if benchmark not in SHAPES:
        return []
    inputs, outputs, directions = SHAPES[benchmark]
    table = parameter_counts(variant_order(runs.variant.unique()), benchmark, _UNITS)
    if table.empty:
        return []
    table[["recurrent", "output", "total"]] = table[["recurrent", "output", "total"]].map(
        lambda n: f"{n:,}"
    )
    direction = "each of 2 directions" if directions == 2 else "one direction"
    return [
        f"### Parameters at {_UNITS} units",
        f"Trainable parameters with N = {_UNITS} units, M = {inputs} inputs and K = {outputs} "
        f"outputs ({direction}). Per direction the recurrent layer has B·N·(M + N + 1) "
        "weights and biases, B the blocks with weights (the block input and each gate with "
        "weights of its own: 4 for V, 3 without one gate or with a coupled forget gate), plus "
        "G·N peepholes (G gates with weights) and, with full gate recurrence, (G·N)² "
        f"gate-to-gate weights; the output layer has {directions}·N·K + K. The table is the "
        "code's own count (`n_params`), which also covers cells outside the paper's nine.",
        markdown.table(table),
    ]


def _importance_section(
    lenses: pd.DataFrame, benchmark: str, figure, checks: pd.DataFrame
) -> list[str]:
    """Both lenses of importance (Figure 5): the headline's and the pooled forest's tables,
    every forest's shares, and the findings beside the paper's."""
    metric = metric_of(benchmark)
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
    shares = shares_by_variant(importance)
    weak = shares[shares.held_out_r2 < figures.FIT_MEANINGFUL].variant.tolist()
    parts += ["#### Per variant (fANOVA)", markdown.table(shares)]
    if weak:
        parts.append(
            f"For {', '.join(weak)} the forest's held-out R² is below "
            f"{figures.FIT_MEANINGFUL}: it predicts held-out trials hardly better than their "
            "mean, so the importances of those rows are not meaningful."
        )
    covered = covered_shares(checks, benchmark, headline)
    findings = importance_findings(importance, benchmark, covered)
    parts.append("\n".join(f"- {s}" for s in findings))
    return parts


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


def _time_section(runs: pd.DataFrame, benchmark: str, figure) -> list[str]:
    """Training time per trial-epoch against hidden size, and the devices it was taken on."""
    timed = timed_trials(runs)
    if len(timed) < 2:
        return []
    plot = figure(figures.time_vs_size(runs, benchmark), "time")
    rho = stats.spearmanr(timed.hidden_size.astype(float), timed.epoch_seconds).statistic
    complete = timed[timed.state == "COMPLETE"]
    how = (
        "its population's wall time divided by the trials trained together in it"
        if runs.population.notna().any()
        else "the population size was not recorded, so this is the population's wall time"
    )
    devices = ", ".join(
        f"{device} ({n})"
        for device, n in timed.device.fillna("not recorded").value_counts().items()
    )
    total = (complete.epoch_seconds * complete.epochs.astype(float)).sum() / 3600
    return [
        "### Training time",
        f"![time]({plot})",
        f"- A trial-epoch took {timed.epoch_seconds.median():.3g} s in the median (a trial's "
        f"time is {how}; per epoch, over the epochs it trained); the complete trials took "
        f"{total:.3g} compute-hours together. The rank correlation of the time per epoch with "
        f"the hidden size is {rho:.2f} (paper: {paper.TIME}).",
        f"- Engine: trials by device: {devices}. The storage does not record the machine or "
        "what else ran on it: times from one machine under varying load, or from several "
        "machines, are comparable only roughly.",
    ]
