"""REPORT.md and the figures of an analysis (`odyssey report`), beside its tables.

It reads as the paper would be read: variants judged by the paper's criterion (Welch,
uncorrected p < 0.05) with Holm's correction beside it; importances and marginals of V (the
paper's headline) with the pooled forest beside them, each with its out-of-bag fit; checks of
the training budget and the search range; and stand-in benchmarks given the paper's findings
as context only, never a verdict. The tables are computed in `tables.py`; the sentences that
set a study's findings beside the paper's are `findings.py`'s, what the paper found is the
data of `paper.py`.
"""

from __future__ import annotations

import math
import re
import shutil
import signal
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy
from scipy import stats

from ..benchmarks.metrics import BLOW_UP_MARGIN, PAPER_DATASET, SHAPES, STAND_IN, metric_of
from ..errors import Interrupted
from ..runner.storage import display_url, sqlite_name
from ..training.protocol import PROTOCOLS
from . import figures, paper
from .checks import (
    COVERED,
    EDGE,
    EDGE_FLAG,
    EDGE_PARAMS,
    PROTOCOL,
    STILL_IMPROVING,
    coverage,
    edge_bounds,
)
from .fanova import SPACE, cover
from .findings import importance_findings, marginal_findings, variant_findings
from .results import FANOVA, PED_ANOVA, Results
from .stats import ALPHA, MIN_FOR_VERDICT, REFERENCE, SHARED, TOP_FRACTION
from .tables import (
    band_size,
    complete_rounds,
    covered_shares,
    headline_of,
    importance_rows,
    parameter_counts,
    shares_by_variant,
    state_table,
)
from .trials import timed_trials, variant_order

_UNITS = 100  # per direction, in the table of parameter counts
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


def write(analysis: Results, out: Path, storage: str) -> Path:
    """Every table (see Results), figures/*.png and *.pdf, and REPORT.md under `out`.

    They are written into a temporary folder inside `out`, then swapped in: an interrupt
    or an error while writing leaves the previous report as it was. Other files in `out`
    (a storage, logs) stay."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".report-new-", dir=out))
    try:
        analysis.write_tables(staging)
        sections = [_overview(analysis, storage)]
        for benchmark in analysis.trials.benchmark.unique():
            sections.append(_benchmark_section(analysis, benchmark, staging))
        (staging / "REPORT.md").write_text("\n\n".join(sections) + "\n")
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(err, KeyboardInterrupt):
            raise Interrupted(f"interrupted; the previous report in {out} is as it was") from None
        raise
    _swap_in(staging, out)
    return out / "REPORT.md"


def _swap_in(staging: Path, out: Path) -> None:
    """Each entry of `staging` takes the place of its namesake in `out` (figures/ as a
    whole), the old ones removed, with Ctrl-C and SIGTERM held meanwhile (they come just
    after): renames within one folder, so the swap takes a moment."""
    old = staging.with_name(staging.name.replace(".report-new-", ".report-old-"))
    main = threading.current_thread() is threading.main_thread()
    held = {signal.SIGINT, signal.SIGTERM}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, held) if main else None
    try:
        old.mkdir()
        for entry in staging.iterdir():
            if (out / entry.name).exists():
                (out / entry.name).rename(old / entry.name)
            entry.rename(out / entry.name)
        shutil.rmtree(old)
        staging.rmdir()
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def default_out(storage: str) -> Path:
    """The folder a report goes to without --out: named after the storage, beside a SQLite
    file (results/odyssey/ for sqlite:///results/odyssey.db), else results/<database>/. Never
    results/ itself, which holds the committed reproduction."""
    try:
        url = sqlalchemy.engine.make_url(storage)
    except Exception:  # open_storage has refused it already; keep a safe name anyway
        return Path("results") / "report"
    sqlite = url.get_backend_name() == "sqlite"
    database = Path((sqlite_name(url) if sqlite else url.database) or "")  # a file: URI's path
    if sqlite and database.name:
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
    studies = analysis.studies[analysis.studies.benchmark == benchmark]
    table = state_table(analysis, benchmark)
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
        rounds_line(complete_rounds(runs, analysis.studies), band_size(studies)),
        _markdown(table),
        _hidden_sizes_line(complete),
    ]
    missing = _not_yet(analysis, benchmark)
    if missing:
        lines.append("Not possible yet:\n\n" + "\n".join(f"- {line}" for line in missing))
    return lines


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
    lines = _not_yet_compared(summary, variant_order(runs.variant.unique()))
    has_reference = REFERENCE in table.index and table.n_complete.get(REFERENCE, 0) > 0
    headline = REFERENCE if has_reference else "all"
    if headline in table.index:
        lines += _not_yet_covered(table.loc[headline], "V's" if has_reference else "the")
    fanova = analysis.importance[
        (analysis.importance.benchmark == benchmark) & (analysis.importance.lens == FANOVA)
    ]
    fits = fanova.groupby("variant", sort=False).oob_r2.first()
    weak = [v for v in importance_rows(fanova) if fits[v] < figures.OOB_MEANINGFUL]
    if weak:
        lines.append(
            f"Importances of {', '.join(weak)}: the forest's out-of-bag R² is below "
            f"{figures.OOB_MEANINGFUL}, so they are not meaningful yet."
        )
    return lines


def _not_yet_compared(summary: pd.DataFrame, order: list[str]) -> list[str]:
    """The comparisons with V that give no verdict yet (`summary` indexed by variant)."""
    lines = []
    empty = [v for v in order if summary.n_trials.get(v, 0) == 0]
    if empty:
        lines.append(
            f"{', '.join(empty)}: no complete trial yet, so in no comparison and no forest."
        )
    if REFERENCE not in summary.index or summary.n_trials.get(REFERENCE, 0) == 0:
        lines.append(f"No complete trial of {REFERENCE}: no variant can be compared with it.")
        return lines
    compared = [v for v in order if v != REFERENCE and v not in empty]
    few = [v for v in compared if min(summary.n_top[v], summary.n_top[REFERENCE]) < MIN_FOR_VERDICT]
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
        return lines
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
    return lines


def _not_yet_covered(row: pd.Series, whose: str) -> list[str]:
    """The parameters the headline's complete trials (their checks row) span too little of."""
    lines = []
    for param in SPACE:
        share = row[f"cover_{param.name}"]
        if share < COVERED:
            lines.append(
                f"{figures.LABELS[param.name].capitalize()}: {whose} complete trials span "
                f"{share:.0%} of its {'log ' if param.log else ''}range (at least "
                f"{COVERED:.0%} needed): its importance, marginal and interactions are not "
                "compared with the paper (not covered yet)."
            )
    return lines


def _benchmark_section(analysis: Results, benchmark: str, out: Path) -> str:
    """The part of REPORT.md on one benchmark; its figures go to `out`/figures/."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", benchmark)

    def figure(fig, kind: str) -> str:
        return str(figures.save(fig, out / f"figures/{name}-{kind}").relative_to(out))

    runs = analysis.trials[analysis.trials.benchmark == benchmark]
    summary = analysis.summary[analysis.summary.benchmark == benchmark]
    parts = _heading(benchmark)
    parts += _checks_section(analysis, benchmark)
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
        _markdown(summary[welch_columns]),
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


# ---- checks ---------------------------------------------------------------------------------


def _checks_section(analysis: Results, benchmark: str) -> list[str]:
    """Whether the budget or the search range, rather than the variants, limits the study."""
    table = analysis.checks[analysis.checks.benchmark == benchmark]
    runs = analysis.trials[analysis.trials.benchmark == benchmark]
    pooled = table[table.variant == "all"].iloc[0]
    lines = [_protocol_sentence(pooled), *_ending_lines(table, runs, benchmark)]
    lines += _edge_lines(table, runs)
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


def _ending_lines(table: pd.DataFrame, runs: pd.DataFrame, benchmark: str) -> list[str]:
    """How the trials ended (`table`: the benchmark's checks): at the epoch cap, early,
    diverged; still improving; at chance; blown up."""
    pooled = table[table.variant == "all"].iloc[0]
    lines = []
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
    return lines


def _edge_lines(table: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """Where the top trials crowd an end of a parameter's range (`table`: the benchmark's
    checks), pooled and per variant."""
    pooled = table[table.variant == "all"].iloc[0]
    top = int(pooled.n_top)
    lines = []
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
    return lines


def _protocol_sentence(pooled: pd.Series) -> str:
    """The protocol the trials ran under (the pooled checks row) and where it deviates from
    the paper's (the `paper` preset)."""
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
    paper_protocol = PROTOCOLS["paper"]
    paper_values = {k: "none" if v is None else str(v) for k, v in asdict(paper_protocol).items()}
    deviations = [
        f"{key.replace('_', ' ')} {pooled[key]} (paper: {paper_values[key]})"
        for key in PROTOCOL
        if key != "preset" and pooled[key] and pooled[key] != paper_values[key]
    ]
    text = "Protocol: " + ", ".join(parts) + "."
    if deviations:
        text += " Deviations from the paper's protocol: " + ", ".join(deviations) + "."
    return text


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
        _markdown(table),
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
        "the paper's headline) and one pooled over all variants (`all`), in the space the "
        f"parameters were sampled in (log10 for {_and(logs)}), "
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
    shares = shares_by_variant(importance)
    weak = shares[shares.oob_r2 < figures.OOB_MEANINGFUL].variant.tolist()
    parts += ["#### Per variant (fANOVA)", _markdown(shares)]
    if weak:
        parts.append(
            f"For {', '.join(weak)} the forest's out-of-bag R² is below "
            f"{figures.OOB_MEANINGFUL}: it predicts held-out trials hardly better than their "
            "mean, so the importances of those rows are not meaningful."
        )
    covered = covered_shares(checks, benchmark, headline)
    findings = importance_findings(importance, benchmark, covered)
    parts.append("\n".join(f"- {s}" for s in findings))
    return parts


def _fit_sentence(rows: pd.DataFrame, what: str) -> str:
    """A forest's out-of-bag fit, and what it means for `what` when poor."""
    r2, n = rows.oob_r2.iloc[0], int(rows.n_trials.iloc[0])
    text = f"Forest fit: out-of-bag R² = {r2:.2f} over {n} trials."
    if r2 < figures.OOB_MEANINGFUL:
        text += (
            f" Below {figures.OOB_MEANINGFUL}, {what} are not meaningful: the forest predicts "
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


def _and(words: list[str]) -> str:
    """The words joined as in a sentence: "a, b and c"."""
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


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
