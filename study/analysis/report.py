"""The tables, figures and REPORT.md of a study storage (`odyssey report`).

It reads as the paper would be read: variants judged by the paper's criterion (Welch,
uncorrected p < 0.05) with Holm's correction beside it; importances and marginals of V (the
paper's headline) with the pooled forest beside them, each with its out-of-bag fit; checks of
the training budget and the search range; and stand-in benchmarks given the paper's findings
as context only, never a verdict.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy
from scipy import stats

import variants

from ..benchmarks.metrics import BLOW_UP_MARGIN, PAPER_DATASET, SHAPES, STAND_IN, metric_of
from ..runner import rounds
from ..runner.storage import display_url
from . import figures
from .checks import (
    COVERED,
    EDGE,
    EDGE_FLAG,
    EDGE_PARAMS,
    STILL_IMPROVING,
    checks,
    coverage,
    edge_bounds,
)
from .curves import CURVE_COLUMNS, summarize_curves
from .fanova import SPACE, Fanova, cover, fit_trials
from .pedanova import ped_anova
from .results import (
    FANOVA,
    IMPORTANCE_COLUMNS,
    INTERACTION_COLUMNS,
    MARGINAL_COLUMNS,
    PED_ANOVA,
    Results,
)
from .stats import ALPHA, MIN_FOR_VERDICT, REFERENCE, SHARED, TOP_FRACTION, summarize
from .trials import (
    EPOCH_COLUMNS,
    STUDY_COLUMNS,
    trial_seconds,
    variant_order,
)

# The paper's Figure 3 verdicts against V (Greff et al. 2017): "worse" or "" (not different).
# NFG and NOAF are worse on all three datasets; NIG, NOG and NIAF on TIMIT and IAM only;
# CIFG and NP never differ; FGR gives no gain (worse on JSB).
_WORSE_ON = {
    "NIG": {"TIMIT", "IAM"},
    "NFG": {"TIMIT", "IAM", "JSB"},
    "NOG": {"TIMIT", "IAM"},
    "NIAF": {"TIMIT", "IAM"},
    "NOAF": {"TIMIT", "IAM", "JSB"},
    "NP": set(),
    "CIFG": set(),
    "FGR": {"JSB"},
}
PAPER_DIRECTION = {
    dataset: {v: ("worse" if dataset in on else "") for v, on in _WORSE_ON.items()}
    for dataset in ("TIMIT", "IAM", "JSB")
}
# The paper's protocol (its Section on training): what a preset deviates from.
PAPER_PROTOCOL = {"max_epochs": 150, "patience": 15, "batch_size": 1, "loss_reduction": "sum"}
REDUCTIONS = {
    "sum": "loss summed over the frames of a sequence",
    "mean": "loss averaged over the frames of a sequence",
}
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
    "The paper's importances (Figure 5) and marginals (Figure 4) are those of V. This report "
    "gives V first, then every variant, then one forest pooled over all variants. Each "
    "forest's out-of-bag R² (how well it predicts trials it was not fitted on) is printed "
    "beside its importances: below "
    f"{figures.OOB_MEANINGFUL} they are not meaningful.",
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
    for benchmark, runs in trials.groupby("benchmark", sort=False):
        groups = [(v, runs[runs.variant == v]) for v in variant_order(runs.variant.unique())]
        for variant, group in [*groups, ("all", runs)]:
            try:
                model = fit_trials(group, n_trees=n_trees, seed=seed)
            except ValueError:  # fewer than 2 usable trials: nothing to decompose
                continue
            models[benchmark, variant] = model
            keys = {"benchmark": benchmark, "variant": variant}
            fit = {"oob_r2": model.oob_r2, "n_trials": model.n_rows}
            importance.append(model.importance().assign(**keys, lens=FANOVA, **fit))
            lens = ped_anova(group).assign(order=1, std=np.nan, oob_r2=np.nan)
            importance.append(lens.assign(**keys, lens=PED_ANOVA, n_trials=model.n_rows))
            for param in model.names:
                marginals.append(model.marginal(param).assign(**keys, param=param))
        headline = _headline(models, benchmark)
        if headline is not None:
            model = models[benchmark, headline]
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
                interactions.append(grid.assign(benchmark=benchmark, variant=headline, term=term))
    epochs = epochs if epochs is not None else pd.DataFrame(columns=EPOCH_COLUMNS)
    studies = studies if studies is not None else pd.DataFrame(columns=STUDY_COLUMNS)
    return Analysis(
        trials=trials,
        studies=studies,
        summary=summarize(trials, studies),
        importance=_table(importance, IMPORTANCE_COLUMNS),
        checks=checks(trials),
        marginals=_table(marginals, MARGINAL_COLUMNS),
        interactions=_table(interactions, INTERACTION_COLUMNS),
        curves=summarize_curves(epochs, trials) if len(epochs) else _table([], CURVE_COLUMNS),
        models=models,
    )


def _table(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts)[columns].reset_index(drop=True)


def _headline(models: dict, benchmark: str) -> str | None:
    fitted = {variant for b, variant in models if b == benchmark}
    return REFERENCE if REFERENCE in fitted else ("all" if "all" in fitted else None)


def _strongest_pairs(importance: pd.DataFrame, n: int = 2) -> list[str]:
    pairs = importance[importance.order == 2].dropna(subset=["importance"])
    return pairs.nlargest(n, "importance").term.tolist()


def strongest_pairs(importance: pd.DataFrame, benchmark: str, n: int = 2) -> list[str]:
    """The `n` largest pairwise terms of the benchmark's headline forest (V, else `all`)."""
    table = importance[(importance.benchmark == benchmark) & (importance.lens == FANOVA)]
    headline = figures.headline_variant(table)
    return _strongest_pairs(table[table.variant == headline], n) if headline else []


def write(analysis: Results, out: Path, storage: str) -> Path:
    """Every table (see Results), figures/*.png and *.pdf, and REPORT.md under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    analysis.write_tables(out)
    sections = [_overview(analysis, storage)]
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


def _overview(analysis: Results, storage: str) -> str:
    tables = ", ".join(f"`{name}.csv`" for name in Results.__dataclass_fields__)
    lines = [
        "# LSTM variants: analysis report",
        f"Storage `{display_url(storage)}`, {analysis.trials.benchmark.nunique()} benchmark(s). "
        f"Written by `odyssey report`; next to this file: {tables} and `figures/` (PNG and "
        "PDF). `study.analysis.read_results(folder)` loads every table.",
        "## State of the study",
    ]
    for benchmark in analysis.trials.benchmark.unique():
        lines += _state_section(analysis, benchmark)
    lines += [
        "## How to read this report",
        "\n".join(f"- {line}" for line in HOW_TO_READ),
        DIVERGED_POLICY,
    ]
    return "\n\n".join(lines)


def _state_section(analysis: Results, benchmark: str) -> list[str]:
    """Where the study stands: trials per variant by state, rounds, the hidden sizes the
    complete trials cover, and which findings cannot be made yet and why."""
    runs = analysis.trials[analysis.trials.benchmark == benchmark]
    studies = analysis.studies[analysis.studies.benchmark == benchmark].set_index("variant")
    order = variant_order(runs.variant.unique())
    rows = []
    for variant in order:
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
    table = pd.DataFrame(rows)
    complete = runs[runs.state == "COMPLETE"]
    planned = pd.to_numeric(table.planned, errors="coerce")
    if planned.notna().all():
        done = f"{len(complete):,} of {int(planned.sum()):,} planned trials are complete"
    else:
        done = f"{len(complete):,} trials are complete (how many are planned is not recorded)"
    lines = [
        f"### {benchmark}",
        f"{done}; {int(table.running.sum())} running, {int(table.waiting.sum())} waiting "
        "(complete, running and waiting are counted apart; requeued rows are the failed or "
        "interrupted attempts of configurations that were queued again).",
        rounds_line(complete_rounds(runs, analysis.studies), _band_size(studies)),
        _markdown(table),
        _hidden_sizes_line(complete),
    ]
    missing = _not_yet(analysis, benchmark)
    if missing:
        lines.append("Not possible yet:\n\n" + "\n".join(f"- {line}" for line in missing))
    return lines


def _band_size(studies: pd.DataFrame) -> int | None:
    sizes = studies.band_size.dropna().unique() if "band_size" in studies else []
    return int(sizes[0]) if len(sizes) == 1 else None


def complete_rounds(runs: pd.DataFrame, studies: pd.DataFrame) -> int | None:
    """Rounds complete on one benchmark, as the runner orders them (`study.runner.rounds`): its
    configurations by index and hidden size, cut into bands of the studies' `band_size`.
    None where the studies do not record one band size."""
    band = _band_size(studies[studies.benchmark.isin(runs.benchmark.unique())])
    if band is None or band < 1:
        return None
    indexed = runs[runs.config_index.notna() & runs.hidden_size.notna()]
    sizes = dict(zip(indexed.config_index.astype(int), indexed.hidden_size.astype(int)))
    complete = indexed[indexed.state == "COMPLETE"]
    done = [
        dict.fromkeys(complete[complete.variant == v].config_index.astype(int), True)
        for v in runs.variant.unique()
    ]
    return rounds.complete_rounds(done, rounds.rounds(sizes, band))


def rounds_line(rounds: int | None, band_size: int | None) -> str:
    """The state section's line on rounds, from the number of complete rounds (a round: one
    band of configurations trained in every variant)."""
    if rounds is None:
        return "Rounds: the studies do not record a band size, so rounds are not counted."
    return (
        f"Rounds complete: {rounds} (a round is one band of up to {band_size} configurations, "
        "complete in every variant)."
    )


def _hidden_sizes_line(complete: pd.DataFrame) -> str:
    sizes = complete.hidden_size.dropna().astype(float)
    if sizes.empty:
        return "No complete trial yet: no hidden size is covered."
    param = next(p for p in cover(SPACE, complete) if p.name == "hidden_size")
    share = coverage(complete, param)
    return (
        f"The complete trials cover hidden sizes {int(sizes.min())}–{int(sizes.max())} of the "
        f"searched {param.low:g}–{param.high:g} ({share:.0%} of its log range); per variant in "
        "the table."
    )


def _not_yet(analysis: Results, benchmark: str) -> list[str]:
    """The findings that cannot be made yet, each with why."""
    runs = analysis.trials[analysis.trials.benchmark == benchmark]
    summary = analysis.summary[analysis.summary.benchmark == benchmark].set_index("variant")
    table = analysis.checks[analysis.checks.benchmark == benchmark].set_index("variant")
    lines = []
    order = variant_order(runs.variant.unique())
    empty = [v for v in order if summary.n_trials.get(v, 0) == 0]
    if empty:
        lines.append(
            f"{', '.join(empty)}: no complete trial yet, so in no comparison and no forest."
        )
    if REFERENCE not in summary.index or summary.n_trials.get(REFERENCE, 0) == 0:
        lines.append(f"No complete trial of {REFERENCE}: no variant can be compared with it.")
    else:
        few = [
            v
            for v in order
            if v != REFERENCE
            and v not in empty
            and min(summary.n_top[v], summary.n_top[REFERENCE]) < MIN_FOR_VERDICT
        ]
        compared = [v for v in order if v != REFERENCE and v not in empty]
        paired = summary.n_paired.reindex(compared)
        if compared and set(few) == set(compared) and not (paired >= MIN_FOR_VERDICT).any():
            lines.insert(
                0,
                "No verdict of any kind yet: the study is too small for one (every comparison "
                "below has too few trials).",
            )
        if few:
            n = math.ceil((MIN_FOR_VERDICT - 0.5) / TOP_FRACTION)
            lines.append(
                f"The paper's comparison with {REFERENCE} (top {TOP_FRACTION:.0%}, Welch): no "
                f"verdict for {', '.join(few)}: fewer than {MIN_FOR_VERDICT} top trials on a "
                f"side (a variant needs {n} complete trials for {MIN_FOR_VERDICT})."
            )
        if summary.n_paired.isna().all():
            lines.append(
                "A paired comparison: the studies do not share one sample of configurations "
                f'(study attribute `sample` = "{SHARED}"), so there is none.'
            )
        else:
            few = [
                v
                for v in order
                if v in summary.index
                and pd.notna(summary.n_paired[v])
                and summary.n_paired[v] < MIN_FOR_VERDICT
            ]
            if few:
                lines.append(
                    f"The paired comparison with {REFERENCE}: no verdict for {', '.join(few)}: "
                    f"fewer than {MIN_FOR_VERDICT} configurations complete in both where one "
                    "of the two beats chance."
                )
    has_reference = REFERENCE in table.index and table.n_complete.get(REFERENCE, 0) > 0
    headline = REFERENCE if has_reference else "all"
    if headline in table.index:
        row = table.loc[headline]
        whose = "V's" if headline == REFERENCE else "the"
        for param in SPACE:
            share = row[f"cover_{param.name}"]
            if share < COVERED:
                lines.append(
                    f"{figures.LABELS[param.name].capitalize()}: {whose} complete trials span "
                    f"{share:.0%} of its {'log ' if param.log else ''}range (at least "
                    f"{COVERED:.0%} needed): its importance, marginal and interactions are not "
                    "compared with the paper (not covered yet)."
                )
    fanova = analysis.importance[
        (analysis.importance.benchmark == benchmark) & (analysis.importance.lens == FANOVA)
    ]
    fits = fanova.groupby("variant", sort=False).oob_r2.first()
    weak = [v for v in figures.importance_rows(fanova) if fits[v] < figures.OOB_MEANINGFUL]
    if weak:
        lines.append(
            f"Importances of {', '.join(weak)}: the forest's out-of-bag R² is below "
            f"{figures.OOB_MEANINGFUL}, so they are not meaningful yet."
        )
    return lines


def _benchmark_section(analysis: Results, benchmark: str, out: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", benchmark)
    metric = metric_of(benchmark)
    runs = analysis.trials[analysis.trials.benchmark == benchmark]
    summary = analysis.summary[analysis.summary.benchmark == benchmark]
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
    parts.append(_metric_sentence(benchmark))

    def figure(fig, kind: str) -> str:
        return str(figures.save(fig, out / f"figures/{name}-{kind}").relative_to(out))

    parts += _checks_section(analysis, benchmark)

    box = figure(figures.top_boxplot(runs, summary, benchmark), "top")
    n_tests = int(summary.p_value.notna().sum())
    welch_columns = [
        "variant", "n_trials", "n_top", "top_mean", "top_std", "best", "top_diff", "p_value",
        "p_holm", "significant", "significant_holm", "direction",
    ]  # fmt: skip
    parts += [
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
        _markdown(summary[welch_columns]),
        "\n".join(f"- {s}" for s in _variant_findings(summary, benchmark)),
    ]
    parts += _paired_section(summary, benchmark, figure)
    parts += _parameters_section(runs, benchmark)

    parts.append("### Learning curves")
    curves = analysis.curves[analysis.curves.benchmark == benchmark]
    if curves.empty:
        parts.append(
            "No per-epoch values in this storage (it was written before trials stored their "
            "learning curves): no learning curves."
        )
    else:
        plot = figure(figures.learning_curves(curves, benchmark), "curves")
        parts += [
            f"Validation {metric.name} over epochs: per variant, the median over the complete "
            "trials that trained that epoch (fewer as trials stop) and the curve of the "
            "variant's best trial; dashed: chance.",
            f"![learning curves]({plot})",
        ]

    lenses = analysis.importance[analysis.importance.benchmark == benchmark]
    importance = lenses[lenses.lens == FANOVA]
    if importance.empty:
        parts.append("Too few complete trials with a test metric for fANOVA.")
        parts += _time_section(runs, benchmark, figure)
        return "\n\n".join(parts)
    cover_of = _coverage_of(analysis.checks, benchmark)
    parts += _importance_section(lenses, benchmark, figure(
        figures.importance_bars(lenses, benchmark), "importance"
    ), cover_of)  # fmt: skip

    marginals = analysis.marginals[analysis.marginals.benchmark == benchmark]
    headline = figures.headline_variant(importance)
    curves_png = figure(figures.marginal_curves(marginals, benchmark), "marginals")
    parts += [
        "### Marginal performance (Figure 4)",
        f"The predicted {metric.label()} against each hyperparameter, averaged over the others, "
        f"±1 standard deviation over the forest's trees: {headline}"
        + (", and the forest pooled over all variants (dashed)" if headline != "all" else "")
        + ". Each curve is drawn in colour only over the range its forest's trials cover; "
        "beyond it, in grey, the forest only extrapolates.",
        f"![marginals]({curves_png})",
    ]
    r2 = importance[importance.variant == headline].oob_r2.iloc[0]
    if r2 < figures.OOB_MEANINGFUL:
        parts.append(
            f"{headline}'s forest does not fit (out-of-bag R² {r2:.2f} < "
            f"{figures.OOB_MEANINGFUL}): these curves describe the forest, not the variant, "
            "and are no finding."
        )
    findings = _marginal_findings(marginals, headline, metric.name, cover_of(headline))
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

    parts += _time_section(runs, benchmark, figure)
    return "\n\n".join(parts)


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


# ---- checks ---------------------------------------------------------------------------------


def _checks_section(analysis: Results, benchmark: str) -> list[str]:
    table = analysis.checks[analysis.checks.benchmark == benchmark]
    runs = analysis.trials[analysis.trials.benchmark == benchmark]
    pooled = table[table.variant == "all"].iloc[0]
    lines = [_protocol_sentence(pooled)]
    if np.isfinite(pooled.share_epoch_cap):
        lines.append(
            f"Of {pooled.n_complete} complete trials, {pooled.share_epoch_cap:.0%} stopped at "
            f"the epoch cap, {pooled.share_early_stop:.0%} by early stopping and "
            f"{pooled.share_diverged:.0%} diverged."
        )
    if np.isfinite(pooled.share_best_at_last):
        sentence = (
            f"{pooled.share_best_at_last:.0%} had their best validation epoch at their last epoch"
        )
        if pooled.share_best_at_last >= STILL_IMPROVING:
            sentence += (
                ": most trials were still improving when they stopped, so the budget (the "
                "epoch cap), not the variant, may limit these results"
            )
        lines.append(sentence + ".")
    if np.isfinite(pooled.share_at_chance):
        lines.append(
            f"{pooled.share_at_chance:.0%} of complete trials are no better than chance "
            f"({pooled.chance:.4g}): they learned nothing from the input, and stay in every "
            "statistic as results of the random search."
        )
    metric = metric_of(benchmark)
    if metric.blow_up is not None and np.isfinite(pooled.share_blew_up):
        blown = int(runs.blew_up.fillna(False).sum())
        per_variant = table[(table.variant != "all") & (table.share_blew_up > 0)]
        lines.append(
            f"{pooled.share_blew_up:.0%} of complete trials ({blown}) blew up: their best "
            f"validation {metric.name} is above {metric.blow_up:.4g}, more than "
            f"{BLOW_UP_MARGIN - 1:.0%} worse than the untrained reference ({metric.cap:.4g}); "
            "finite, so not `diverged`. Every test metric above the reference enters the "
            f"forests, marginals and PED-ANOVA as {metric.cap:.4g} (a trial at 5,000 learned "
            "no less than one at the untrained level; uncapped, a few such trials decide the "
            "forest); the top-10 % comparison and the paired one use the raw values."
            + (
                " Per variant: "
                + ", ".join(f"{r.variant} {r.share_blew_up:.0%}" for r in per_variant.itertuples())
                + "."
                if blown
                else ""
            )
        )
    top = int(pooled.n_top)
    for param in EDGE_PARAMS:
        low_bound, high_bound = edge_bounds(runs, param)
        for end, bound, word in (("low", low_bound, "bottom"), ("high", high_bound, "top")):
            share = pooled[f"top_{param}_{end}"]
            if not np.isfinite(share):
                continue
            label = figures.LABELS[param]
            where = f"{'≤' if end == 'low' else '≥'} {bound:.2g}"
            if f"{param} {end}" in pooled.edge_flags.split("; "):
                lines.append(
                    f"The best trials press against the {word} of the {label} range: "
                    f"{share:.0%} of the {top} top trials have a {label} in its outer "
                    f"{EDGE:.0%} ({where}), where uniform sampling puts {EDGE:.0%}. The range, "
                    "not the variant, may be the limit."
                )
            elif share >= EDGE_FLAG / 2:
                lines.append(
                    f"{share:.0%} of the {top} top trials have a {label} {where} (the outer "
                    f"{EDGE:.0%} of its range; {EDGE:.0%} expected)."
                )
    flagged = table[(table.variant != "all") & (table.edge_flags != "")]
    if len(flagged):
        lines.append(
            "Per variant, the top trials press against a range edge in: "
            + "; ".join(f"{row.variant} ({row.edge_flags})" for row in flagged.itertuples())
            + "."
        )
    columns = [
        "variant",
        "n_complete",
        "share_epoch_cap",
        "share_best_at_last",
        "share_at_chance",
        "n_top",
        "top_learning_rate_high",
        "top_hidden_size_high",
        "top_one_minus_momentum_low",
        "edge_flags",
    ]
    return [
        "### Budget and search space",
        "\n".join(f"- {line}" for line in lines),
        _markdown(table[columns]),
        "All columns are in `checks.csv`; `top_*_low`/`top_*_high`: share of the best "
        f"{TOP_FRACTION:.0%} of each variant in the outer {EDGE:.0%} of that parameter's "
        "(log) range at the low/high end.",
    ]


def _protocol_sentence(pooled: pd.Series) -> str:
    if not any(pooled[k] for k in ("preset", "max_epochs", "patience", "loss_reduction")):
        return "Protocol: not recorded in this storage."
    parts = [f"preset `{pooled.preset}`" if pooled.preset else "preset not recorded"]
    for key, text in (
        ("max_epochs", "at most {} epochs"),
        ("patience", "patience {}"),
        ("batch_size", "batch size {}"),
    ):
        if pooled[key]:
            parts.append(text.format(pooled[key]))
    reduction = pooled.loss_reduction
    if reduction in REDUCTIONS:
        parts.append(REDUCTIONS[reduction])
    elif reduction:
        parts.append(f"loss reduction {reduction}")
    elif pooled.preset:  # written by this tool before it recorded the reduction
        parts.append(
            "loss reduction not recorded (this tool averaged over frames until it recorded it, "
            "a deviation from the paper's sum)"
        )
    else:
        parts.append("loss reduction not recorded")
    deviations = [
        f"{key.replace('_', ' ')} {pooled[key]} (paper: {value})"
        for key, value in PAPER_PROTOCOL.items()
        if pooled[key] and pooled[key] != str(value)
    ]
    text = "Protocol: " + ", ".join(parts) + "."
    if deviations:
        text += " Deviations from the paper's protocol: " + ", ".join(deviations) + "."
    return text


# ---- findings -------------------------------------------------------------------------------


def _variant_findings(summary: pd.DataFrame, benchmark: str) -> list[str]:
    reference = summary[summary.variant == REFERENCE]
    if reference.empty:
        return [f"No {REFERENCE} study: nothing to compare against."]
    dataset, stand_in = PAPER_DATASET.get(benchmark), STAND_IN.get(benchmark)
    ref_mean = reference.top_mean.iloc[0]
    findings = []
    for row in summary[summary.variant != REFERENCE].itertuples():
        if np.isnan(row.p_value):
            findings.append(
                f"{row.variant} cannot be tested (fewer than 2 top trials with a test metric, "
                f"here or in {REFERENCE})."
            )
            continue
        means = f"top mean {row.top_mean:.4g} vs {ref_mean:.4g}, Welch p = {row.p_value:.3g}"
        fewest = int(min(row.n_top, reference.n_top.iloc[0]))
        paper = PAPER_DIRECTION.get(dataset or stand_in or "", {}).get(row.variant)
        said = "significantly worse" if paper else "not significantly different"
        if fewest < MIN_FOR_VERDICT:
            sentence = (
                f"{row.variant} against {REFERENCE}: {means}; no verdict from {fewest} top "
                f"trials (at least {MIN_FOR_VERDICT} a side; the paper had 20)"
            )
            if paper is not None:
                sentence += f". Paper on {dataset or stand_in}: {said}"
            findings.append(sentence + ".")
            continue
        if row.direction:
            sentence = (
                f"{row.variant} is significantly {row.direction} than {REFERENCE} by the "
                f"paper's criterion ({means}); "
                + (
                    f"after Holm's correction too (p = {row.p_holm:.3g})"
                    if row.significant_holm
                    else f"not after Holm's correction (p = {row.p_holm:.3g})"
                )
            )
        else:
            sentence = (
                f"{row.variant} is not significantly different from {REFERENCE} ({means}; "
                f"Holm p = {row.p_holm:.3g})"
            )
        if paper is not None and dataset:
            agree = "agrees" if paper == row.direction else "differs"
            sentence += f". Paper on {dataset}: {said} — {agree}"
        elif paper is not None:
            sentence += f". Paper on {stand_in} (context only): {said}"
        findings.append(sentence + ".")
    return findings


def _paired_section(summary: pd.DataFrame, benchmark: str, figure) -> list[str]:
    """The configuration-by-configuration comparison, where the studies share their sample."""
    rows = summary[(summary.variant != REFERENCE) & summary.n_paired.notna()]
    if rows.empty:
        return []
    metric = metric_of(benchmark)
    chance = (
        f"chance ({metric.chance:.4g})" if metric.chance is not None else "no known chance level"
    )
    plot = figure(figures.paired_differences(summary, benchmark), "paired")
    findings = []
    for row in rows.itertuples():
        n = int(row.n_paired)
        if n == 0:
            findings.append(f"{row.variant}: no configuration complete in both yet.")
            continue
        text = f"{row.variant} − {REFERENCE} over {n} configuration{'s' * (n > 1)}: median "
        text += f"{row.paired_median:+.3g}"
        if np.isfinite(row.paired_low):
            text += f" (95 % interval {row.paired_low:+.3g} to {row.paired_high:+.3g})"
        if np.isfinite(row.wilcoxon_p):
            text += f", Wilcoxon p = {row.wilcoxon_p:.3g}"
        if n < MIN_FOR_VERDICT:
            text += f"; no verdict from {n} (at least {MIN_FOR_VERDICT})"
        elif row.paired_direction:
            text += f": {row.paired_direction} than {REFERENCE}"
        else:
            text += f": not significantly different from {REFERENCE}"
        findings.append(text + ".")
    columns = ["variant", "n_paired", "paired_median", "paired_low", "paired_high"]
    columns += ["wilcoxon_p", "paired_direction"]
    return [
        "### Paired comparison",
        "Every variant of this benchmark trained the same configurations (a shared sample), so "
        f"each variant is also compared with {REFERENCE} configuration by configuration: over "
        f"the configurations complete in both where at least one of the two beats {chance}, "
        f"the median of the variant's {metric.label()} minus {REFERENCE}'s, a 95 % bootstrap "
        f"interval of that median (10,000 resamples, seeded) and Wilcoxon's signed-rank p "
        f"(a verdict where p < {ALPHA} and at least {MIN_FOR_VERDICT} configurations). It uses "
        "every configuration, not the top 10 %: it asks whether the variant is better or worse "
        "at the same hyperparameters, the paper's test whether its best trials are.",
        f"![paired]({plot})",
        _markdown(rows[columns]),
        "\n".join(f"- {s}" for s in findings),
    ]


def _parameters_section(runs: pd.DataFrame, benchmark: str) -> list[str]:
    """Parameters of each variant at 100 units on this benchmark, and the formula."""
    if benchmark not in SHAPES:
        return []
    inputs, outputs, directions = SHAPES[benchmark]
    rows = []
    for variant in variant_order(runs.variant.unique()):
        if variant not in variants.PRESETS:
            continue
        lstm = variants.build(variant, inputs, 100, bidirectional=directions == 2)
        layer = lstm.n_params()[0]
        head = directions * 100 * outputs + outputs
        rows.append({"variant": variant, "recurrent": layer, "output": head, "total": layer + head})
    if not rows:
        return []
    table = pd.DataFrame(rows)
    table[["recurrent", "output", "total"]] = table[["recurrent", "output", "total"]].map(
        lambda n: f"{n:,}"
    )
    direction = "each of 2 directions" if directions == 2 else "one direction"
    return [
        "### Parameters at 100 units",
        f"Trainable parameters with N = 100 units, M = {inputs} inputs and K = {outputs} "
        f"outputs ({direction}). Per direction the recurrent layer has B·N·(M + N + 1) "
        "weights and biases, B the blocks with weights (the block input and each gate with "
        "weights of its own: 4 for V, 3 without one gate or with a coupled forget gate), plus "
        "G·N peepholes (G gates with weights) and, with full gate recurrence, (G·N)² "
        f"gate-to-gate weights; the output layer has {directions}·N·K + K. The table is the "
        "code's own count (`n_params`), which also covers cells outside the paper's nine.",
        _markdown(table),
    ]


def _coverage_of(table: pd.DataFrame, benchmark: str):
    """A function of a variant (or `all`) giving each parameter's covered share of its range."""
    rows = table[table.benchmark == benchmark].set_index("variant")

    def shares(variant: str) -> dict[str, float]:
        if variant not in rows.index:
            return {}
        return {p.name: float(rows.loc[variant, f"cover_{p.name}"]) for p in SPACE}

    return shares


def _importance_section(lenses: pd.DataFrame, benchmark: str, png: str, cover_of) -> list[str]:
    metric = metric_of(benchmark)
    importance = lenses[lenses.lens == FANOVA]
    ped = lenses[lenses.lens == PED_ANOVA]
    headline = figures.headline_variant(importance)
    parts = [
        "### Hyperparameter importance (Figure 5)",
        f"fANOVA of the {metric.label()} over a random forest per variant ({REFERENCE} first, "
        "the paper's headline) and one pooled over all variants (`all`), in the space the "
        "parameters were sampled in (log10 for hidden size, learning rate and 1 − momentum), "
        "with the standard deviation over the forest's trees as error bars. R² is each "
        "forest's out-of-bag R². Beside it, Optuna's PED-ANOVA "
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
    for variant, title in ((headline, f"#### {headline}"), ("all", "#### All variants pooled")):
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
        parts += [title, _markdown(table), _fit_sentence(rows, "these importances")]
    shares = _shares_by_variant(importance)
    weak = shares[shares.oob_r2 < figures.OOB_MEANINGFUL].variant.tolist()
    parts += ["#### Per variant (fANOVA)", _markdown(shares)]
    if weak:
        parts.append(
            f"For {', '.join(weak)} the forest's out-of-bag R² is below "
            f"{figures.OOB_MEANINGFUL}: it predicts held-out trials hardly better than their "
            "mean, so the importances of those rows are not meaningful."
        )
    findings = _importance_findings(importance, benchmark, cover_of(headline))
    parts.append("\n".join(f"- {s}" for s in findings))
    return parts


def _fit_sentence(rows: pd.DataFrame, what: str) -> str:
    r2, n = rows.oob_r2.iloc[0], int(rows.n_trials.iloc[0])
    text = f"Forest fit: out-of-bag R² = {r2:.2f} over {n} trials."
    if r2 < figures.OOB_MEANINGFUL:
        text += (
            f" Below {figures.OOB_MEANINGFUL}, {what} are not meaningful: the forest predicts "
            "held-out trials hardly better than their mean (a forest fitted to noise still "
            "splits the variance among the parameters)."
        )
    return text


def _shares_by_variant(importance: pd.DataFrame) -> pd.DataFrame:
    """One row per forest: its fit and the main-effect shares, and the pairs' sum."""
    rows = []
    for variant in figures.importance_rows(importance):
        part = importance[importance.variant == variant]
        row = {"variant": variant, "n_trials": int(part.n_trials.iloc[0])}
        row["oob_r2"] = part.oob_r2.iloc[0]
        row |= dict(zip(part[part.order == 1].term, part[part.order == 1].importance))
        row["pairs"] = part[part.order == 2].importance.sum()
        rows.append(row)
    return pd.DataFrame(rows)


def _importance_findings(
    importance: pd.DataFrame, benchmark: str, covered: dict[str, float]
) -> list[str]:
    dataset, stand_in = PAPER_DATASET.get(benchmark), STAND_IN.get(benchmark)
    headline = figures.headline_variant(importance)
    rows = importance[importance.variant == headline]
    pooled = importance[importance.variant == "all"]
    main = rows[rows.order == 1].set_index("term").importance
    pairs = rows[rows.order == 2].set_index("term").importance
    pooled_main = pooled[pooled.order == 1].set_index("term").importance
    if main.isna().all():
        return ["The test metric does not vary over the trials: no variance to attribute."]
    fits = rows.oob_r2.iloc[0] >= figures.OOB_MEANINGFUL
    order = list(main.sort_values(ascending=False).index)
    hidden = _ordinal(order.index("hidden_size") + 1) if "hidden_size" in order else "absent"
    whose = "V's" if headline == REFERENCE else "the pooled"

    def share(term: str) -> str:
        text = f"{main.get(term, np.nan):.1%}"
        if headline != "all" and term in pooled_main:
            text += f" (pooled over all variants: {pooled_main[term]:.1%})"
        return text

    def note(text: str, agrees: bool, params: tuple[str, ...]) -> str:
        short = [p for p in params if covered.get(p, 0.0) < COVERED]
        if dataset and short:
            names = " and ".join(figures.LABELS[p] for p in short)
            return f" (paper: {text}; not covered yet: the trials span too little of {names})"
        if dataset and fits:
            return f" (paper: {text} — {'agrees' if agrees else 'differs'})"
        if dataset:
            return f" (paper: {text}; no verdict, the forest does not fit)"
        if stand_in:
            return f" (paper on {stand_in}, context only: {text})"
        return ""

    findings = [
        f"The learning rate explains {share('learning_rate')} of {whose} variance"
        + note("more than two thirds", main.get("learning_rate", 0) > 2 / 3, ("learning_rate",))
        + ".",
        f"Ranked by main effect: {', '.join(order)}; hidden size is {hidden}"
        + note("second", order[1:2] == ["hidden_size"], ("hidden_size",))
        + ".",
        f"Momentum (1 − momentum) explains {share('one_minus_momentum')}"
        + note(
            "almost nothing",
            main.get("one_minus_momentum", 1) < 0.05,
            ("one_minus_momentum",),
        )
        + f"; input noise explains {share('input_noise')}"
        + note("small", main.get("input_noise", 1) < 0.1, ("input_noise",))
        + ".",
    ]
    if pairs.notna().any():
        top = pairs.idxmax()
        findings.append(
            f"Pairwise interactions together explain {pairs.sum():.1%} and all higher-order "
            f"terms {max(0.0, 1 - main.sum() - pairs.sum()):.1%}; the largest pair is "
            f"{top.replace(':', ' × ')} ({pairs[top]:.1%})"
            + note(
                "interactions small, the largest learning rate × hidden size",
                top in ("learning_rate:hidden_size", "hidden_size:learning_rate"),
                ("learning_rate", "hidden_size"),
            )
            + "."
        )
    return findings


def _marginal_findings(
    marginals: pd.DataFrame, variant: str, metric: str, covered: dict[str, float]
) -> list[str]:
    """What the headline's marginals say, read only over the range its trials cover."""
    table = marginals[(marginals.variant == variant) & marginals.covered.astype(bool)]
    findings = []
    curve = table[table.param == "learning_rate"].reset_index(drop=True)
    if len(curve):
        low, span = curve["mean"].min(), curve["mean"].max() - curve["mean"].min()
        basin = curve[curve["mean"] <= low + 0.1 * span].value
        best = curve.value[curve["mean"].idxmin()]
        text = (
            f"Predicted performance of {variant} is best at learning rate {best:.2g}; within "
            f"10 % of the curve's range of its best from {basin.min():.2g} to "
            f"{basin.max():.2g}"
        )
        if covered.get("learning_rate", 0.0) < COVERED:
            text += " (paper: a broad basin of good learning rates; not covered yet)."
        else:
            text += " (paper: a broad basin of good learning rates)."
        findings.append(text)
    for name, paper in (
        ("hidden_size", "bigger networks help, with diminishing returns"),
        ("input_noise", "noise mostly hurts"),
    ):
        curve = table[table.param == name]
        if curve.empty:
            continue
        label = figures.LABELS[name]
        span = f"{curve.value.min():.3g}–{curve.value.max():.3g}"
        if covered.get(name, 0.0) < COVERED:
            findings.append(
                f"The trials cover {label} {span} only ({covered.get(name, 0.0):.0%} of its "
                f"range): the marginal is not read beyond it (paper: {paper}; not covered yet)."
            )
            continue
        quarter = max(1, len(curve) // 4)
        low, high = curve["mean"].iloc[:quarter].mean(), curve["mean"].iloc[-quarter:].mean()
        findings.append(
            f"The predicted test {metric} averages {low:.4g} over the lowest quarter of the "
            f"covered {label} range ({span}) and {high:.4g} over the highest "
            f"({'better' if high < low else 'worse'} when larger; paper: {paper})."
        )
    return findings


def _time_section(runs: pd.DataFrame, benchmark: str, figure) -> list[str]:
    timed = runs.assign(epoch_seconds=trial_seconds(runs) / runs.epochs.astype(float))
    timed = timed[timed.epoch_seconds.notna() & timed.hidden_size.notna()]
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
        f"the hidden size is {rho:.2f} (paper: bigger networks cost more time).",
        f"- Engine: trials by device: {devices}. The storage does not record the machine or "
        "what else ran on it: times from one machine under varying load, or from several "
        "machines, are comparable only roughly.",
    ]


def _ordinal(n: int) -> str:
    return {1: "first", 2: "second", 3: "third", 4: "fourth"}.get(n, f"{n}th")


def _markdown(frame: pd.DataFrame) -> str:
    """A GitHub table; floats to 4 significant digits, NaN and NA as empty cells."""

    def cell(value) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return ""
        if isinstance(value, float | np.floating):
            return f"{value:.4g}"
        return str(value)

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])
