"""REPORT.md's checks of one benchmark: whether the budget (the epoch cap) or the search
range, rather than the variants, limits the study; the protocol the trials ran under and its
deviations from the paper's."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd

from ..benchmarks.metrics import BLOW_UP_MARGIN, metric_of
from ..training.protocol import PROTOCOLS
from . import figures, markdown
from .checks import (
    EDGE,
    EDGE_FLAG,
    EDGE_PARAMS,
    PROTOCOL,
    STILL_IMPROVING,
    edge_bounds,
)
from .results import Results
from .stats import TOP_FRACTION

REDUCTIONS = {
    "sum": "loss summed over the frames of a sequence",
    "mean": "loss averaged over the frames of a sequence",
}


def section(view: Results, benchmark: str) -> list[str]:
    """Whether the budget or the search range, rather than the variants, limits the study
    (`view`: the benchmark's tables, `Results.of_benchmark`)."""
    table, runs = view.checks, view.trials
    pooled = table[table.variant == "all"].iloc[0]
    lines = [protocol_sentence(pooled), *_ending_lines(table, runs, benchmark)]
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
        markdown.table(table[columns]),
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
            "usually finite, so not `diverged`; one that diverged before any finite "
            "validation value is here at +inf. Every test metric above the reference enters the "
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


def protocol_sentence(pooled: pd.Series) -> str:
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
