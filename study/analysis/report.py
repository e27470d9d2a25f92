"""`odyssey report`: trials, variant comparison, fANOVA, figures and REPORT.md for a storage."""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import figures
from .fanova import Fanova, fit_trials
from .stats import ALPHA, REFERENCE, TOP_FRACTION, summarize
from .trials import load_trials, read_trials, variant_order

# Which of the paper's datasets each benchmark stands for (PAPER.md §3, DESIGN.md).
PAPER_DATASET = {
    "jsb": "JSB",
    "jsb-original": "JSB",
    "digits-framewise": "TIMIT",
    "timit": "TIMIT",
    "digits-ctc": "IAM",
    "iam-ondb": "IAM",
}
# The paper's Figure 3 verdicts against V (PAPER.md §6): "worse" or "" (not different).
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
DIVERGED_POLICY = (
    "Diverged trials are COMPLETE results of the random search: they keep their best "
    "validation value and stay in the ranking and in the fANOVA, as the paper's trials would; "
    "failed, pruned and unfinished trials are counted but enter no statistic."
)


@dataclass
class Analysis:
    """Everything the report shows; the pooled fANOVA models drive the marginal figures."""

    trials: pd.DataFrame
    summary: pd.DataFrame
    importance: pd.DataFrame
    pooled: dict[str, Fanova]


def analyse(trials: pd.DataFrame, n_trees: int = 64, seed: int = 0) -> Analysis:
    """Variant comparison and fANOVA (pooled over variants as `all`, and per variant)."""
    tables, pooled = [], {}
    for benchmark, runs in trials.groupby("benchmark", sort=False):
        groups = [("all", runs)] + [
            (v, runs[runs.variant == v]) for v in variant_order(runs.variant.unique())
        ]
        for variant, group in groups:
            try:
                model = fit_trials(group, n_trees=n_trees, seed=seed)
            except ValueError:  # fewer than 2 usable trials: nothing to decompose
                continue
            if variant == "all":
                pooled[benchmark] = model
            tables.append(model.importance().assign(benchmark=benchmark, variant=variant))
    columns = ["benchmark", "variant", "term", "order", "importance", "std"]
    importance = pd.concat(tables)[columns] if tables else pd.DataFrame(columns=columns)
    return Analysis(trials, summarize(trials), importance.reset_index(drop=True), pooled)


def strongest_pairs(importance: pd.DataFrame, benchmark: str, n: int = 2) -> list[str]:
    pairs = importance[
        (importance.benchmark == benchmark)
        & (importance.variant == "all")
        & (importance.order == 2)
    ]
    return pairs.dropna(subset=["importance"]).nlargest(n, "importance").term.tolist()


def write(analysis: Analysis, out: Path, storage: str) -> Path:
    """trials.csv, summary.csv, importance.csv, figures/*.png and REPORT.md under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    analysis.trials.to_csv(out / "trials.csv", index=False)
    analysis.summary.to_csv(out / "summary.csv", index=False)
    analysis.importance.to_csv(out / "importance.csv", index=False)
    sections = [_overview(analysis, storage)]
    for benchmark in analysis.trials.benchmark.unique():
        sections.append(_benchmark_section(analysis, benchmark, out))
    path = out / "REPORT.md"
    path.write_text("\n\n".join(sections) + "\n")
    return path


def cmd_report(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    start = time.perf_counter()
    trials = load_trials(args.storage, args.benchmark)
    path = write(analyse(trials), Path(args.out), args.storage)
    print(
        f"{len(trials)} trials of {trials.benchmark.nunique()} benchmark(s) analysed in "
        f"{time.perf_counter() - start:.1f} s: {path}"
    )
    return 0


# ---- REPORT.md ----------------------------------------------------------------------------


def _overview(analysis: Analysis, storage: str) -> str:
    trials = analysis.trials
    counts = trials.groupby(["benchmark", "variant"], sort=False).agg(
        trials=("trial", "size"),
        complete=("state", lambda s: int((s == "COMPLETE").sum())),
        diverged=("diverged", lambda s: int(s.fillna(False).sum())),
        failed=("state", lambda s: int((s == "FAIL").sum())),
        other=("state", lambda s: int((~s.isin(["COMPLETE", "FAIL"])).sum())),
    )
    lines = [
        "# LSTM variants: analysis report",
        f"Storage `{storage}`: {len(trials)} trials in {len(counts)} studies "
        f"({trials.benchmark.nunique()} benchmark(s)). Written by `odyssey report`; the "
        "tables are `trials.csv`, `summary.csv` and `importance.csv` next to this file.",
        "## Trials",
        DIVERGED_POLICY,
        _markdown(counts.reset_index()),
    ]
    return "\n\n".join(lines)


def _benchmark_section(analysis: Analysis, benchmark: str, out: Path) -> str:
    dataset = PAPER_DATASET.get(benchmark)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", benchmark)
    runs = analysis.trials[analysis.trials.benchmark == benchmark]
    summary = analysis.summary[analysis.summary.benchmark == benchmark]
    parts = [f"## {benchmark}" + (f" (the paper's {dataset})" if dataset else "")]

    box = figures.save(
        figures.top_boxplot(runs, summary, benchmark), out / f"figures/{name}-top.png"
    )
    parts += [
        "### Variants against V (Figure 3)",
        f"Test metric of the best {TOP_FRACTION:.0%} of each variant's complete trials (ranked "
        f"on validation, at least 2); Welch's t-test against {REFERENCE}, Holm-corrected over "
        f"the variants, significant at {ALPHA}.",
        f"![top trials]({box.relative_to(out)})",
        _markdown(summary.drop(columns="benchmark")),
        "\n".join(f"- {s}" for s in _variant_findings(summary, dataset)),
    ]

    model = analysis.pooled.get(benchmark)
    if model is None:
        parts.append("Too few complete trials with a test metric for fANOVA.")
        return "\n\n".join(parts)
    importance = analysis.importance[analysis.importance.benchmark == benchmark]
    bars = figures.save(
        figures.importance_bars(importance, benchmark), out / f"figures/{name}-importance.png"
    )
    curves = figures.save(
        figures.marginal_curves(model, benchmark), out / f"figures/{name}-marginals.png"
    )
    pooled = importance[importance.variant == "all"]
    parts += [
        "### Hyperparameter importance (Figure 5)",
        f"fANOVA of the test metric over {model.n_rows} complete trials of all variants "
        "(`all`) and per variant, in the space the parameters were sampled in (log10 for "
        "hidden size, learning rate and 1 − momentum).",
        f"![importance]({bars.relative_to(out)})",
        _markdown(pooled.drop(columns=["benchmark", "variant"])),
        "\n".join(f"- {s}" for s in _importance_findings(pooled, dataset)),
        "### Marginal performance (Figure 4)",
        f"![marginals]({curves.relative_to(out)})",
        "\n".join(f"- {s}" for s in _marginal_findings(model)),
    ]
    pairs = strongest_pairs(analysis.importance, benchmark)
    if pairs:
        heat = figures.save(
            figures.interaction_heatmaps(model, pairs, benchmark),
            out / f"figures/{name}-interactions.png",
        )
        parts += [
            "### Strongest interactions (Figure 6)",
            f"![interactions]({heat.relative_to(out)})",
        ]

    timed = runs[runs.seconds.notna() & runs.hidden_size.notna()]
    if len(timed) >= 2:
        plot = figures.save(figures.time_vs_size(runs, benchmark), out / f"figures/{name}-time.png")
        rho = stats.spearmanr(timed.hidden_size, timed.seconds).statistic
        parts += [
            "### Training time",
            f"![time]({plot.relative_to(out)})",
            f"- A trial trained for {timed.seconds.median():.3g} s in the median; the rank "
            f"correlation of training time with hidden size is {rho:.2f} (paper: bigger "
            "networks cost more time).",
        ]
    return "\n\n".join(parts)


def _variant_findings(summary: pd.DataFrame, dataset: str | None) -> list[str]:
    reference = summary[summary.variant == REFERENCE]
    if reference.empty:
        return [f"No {REFERENCE} study: nothing to compare against."]
    ref_mean = reference.top_mean.iloc[0]
    findings = []
    for row in summary[summary.variant != REFERENCE].itertuples():
        if np.isnan(row.p_holm):
            findings.append(
                f"{row.variant} cannot be tested (fewer than 2 top trials with a test metric, "
                f"here or in {REFERENCE})."
            )
            continue
        if row.direction:
            verdict = f"is significantly {row.direction} than {REFERENCE}"
        else:
            verdict = f"is not significantly different from {REFERENCE}"
        sentence = (
            f"{row.variant} {verdict} (top mean {row.top_mean:.4g} vs {ref_mean:.4g}, "
            f"Holm p = {row.p_holm:.3g})"
        )
        paper = PAPER_DIRECTION.get(dataset, {}).get(row.variant)
        if paper is not None:
            said = "significantly worse" if paper else "not significantly different"
            agree = "agrees" if paper == row.direction else "differs"
            sentence += f"; paper on {dataset}: {said} — {agree}"
        findings.append(sentence + ".")
    return findings


def _importance_findings(pooled: pd.DataFrame, dataset: str | None) -> list[str]:
    main = pooled[pooled.order == 1].set_index("term").importance
    pairs = pooled[pooled.order == 2].set_index("term").importance
    if main.isna().all():
        return ["The test metric does not vary over the trials: no variance to attribute."]
    ranked = main.sort_values(ascending=False)
    order = list(ranked.index)
    hidden = _ordinal(order.index("hidden_size") + 1) if "hidden_size" in order else "absent"
    paper = dataset is not None

    def share(term: str) -> str:
        return f"{main.get(term, np.nan):.1%}"

    def note(text: str, agrees: bool) -> str:
        return f" (paper: {text} — {'agrees' if agrees else 'differs'})" if paper else ""

    findings = [
        f"The learning rate explains {share('learning_rate')} of the variance"
        + note("more than two thirds", main.get("learning_rate", 0) > 2 / 3)
        + ".",
        f"Ranked by main effect: {', '.join(order)}; hidden size is {hidden}"
        + note("second", order[1:2] == ["hidden_size"])
        + ".",
        f"Momentum (1 − momentum) explains {share('one_minus_momentum')}"
        + note("almost nothing", main.get("one_minus_momentum", 1) < 0.05)
        + f"; input noise explains {share('input_noise')}"
        + note("small", main.get("input_noise", 1) < 0.1)
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
            )
            + "."
        )
    return findings


def _marginal_findings(model: Fanova) -> list[str]:
    findings = []
    curve = model.marginal("learning_rate")
    low, span = curve["mean"].min(), curve["mean"].max() - curve["mean"].min()
    basin = curve[curve["mean"] <= low + 0.1 * span].value
    best = curve.value[curve["mean"].idxmin()]
    findings.append(
        f"Predicted performance is best at learning rate {best:.2g}; "
        f"within 10 % of the curve's range of its best from {basin.min():.2g} to "
        f"{basin.max():.2g} (paper: a broad basin of good learning rates)."
    )
    for name, paper in (
        ("hidden_size", "bigger networks help"),
        ("input_noise", "noise mostly hurts"),
    ):
        curve = model.marginal(name, n_points=100)
        low, high = curve["mean"].iloc[:25].mean(), curve["mean"].iloc[-25:].mean()
        findings.append(
            f"The predicted test metric averages {low:.4g} over the lowest quarter of the "
            f"{name.replace('_', ' ')} range and {high:.4g} over the highest "
            f"({'better' if high < low else 'worse'} when larger; paper: {paper})."
        )
    return findings


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


def read_tables(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """trials, summary and importance as `odyssey report` wrote them into `folder`."""
    folder = Path(folder)
    trials = read_trials(folder / "trials.csv")
    summary = pd.read_csv(folder / "summary.csv", keep_default_na=False, na_values=[""])
    summary = summary.astype({"benchmark": str, "variant": str}).fillna({"direction": ""})
    importance = pd.read_csv(folder / "importance.csv", dtype={"benchmark": str, "variant": str})
    return trials, summary, importance
