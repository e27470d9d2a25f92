"""The first screen of REPORT.md, one per benchmark: how far the study has come (trials
against the plan, rounds, the hidden sizes not trained yet), V's level beside the published
one, the verdict table of `findings.verdict_table`, and where the arms beyond the paper are
discussed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..benchmarks.metrics import PAPER_DATASET, metric_of
from . import family, markdown, paper
from .findings import verdict_table
from .results import Results
from .stats import REFERENCE, TOP_FRACTION, finished
from .tables import round_table


def section(view: Results, benchmark: str) -> list[str]:
    """The report's first screen on one benchmark (`view`: its tables,
    `Results.of_benchmark`): progress, V's level beside the published one, and the verdict
    table."""
    runs, studies, summary = view.trials, view.studies, view.summary
    dataset = PAPER_DATASET.get(benchmark)
    title = f"## The answer{'' if finished(summary) else ' so far'}: {benchmark}"
    lines = [title + (f" (the paper's {dataset})" if dataset else "")]
    progress = [progress_line(runs, studies)]
    table = round_table(runs, studies)
    if len(table):
        missing = table[~table.complete].sort_values("low")
        progress.append(
            f"Rounds complete in every variant: {int(table.complete.sum())} of {len(table)}"
            + (
                f"; hidden sizes not yet trained in every variant: "
                f"{', '.join(missing['hidden sizes'])}"
                if len(missing)
                else ""
            )
            + "."
        )
    reference = summary[summary.variant == REFERENCE]
    if len(reference) and np.isfinite(reference.best.iloc[0]):
        ref = reference.iloc[0]
        metric = metric_of(benchmark)
        text = (
            f"{REFERENCE}'s best trial (ranked on validation) reaches a test {metric.name} of "
            f"**{ref.best:.4g}**; its best {TOP_FRACTION:.0%} ({ref.n_top} trials) average "
            f"**{ref.top_mean:.4g}**"
        )
        published = paper.PUBLISHED.get(dataset or "")
        if published:
            text += f" (published LSTMs on this split: {published[0]:g}–{published[1]:g})"
        progress.append(text + ".")
    lines.append(" ".join(progress))
    verdicts = verdict_table(summary, benchmark)
    if len(verdicts):
        lines += [
            f"Each variant against {REFERENCE}: the paper's test (Welch on the best "
            f"{TOP_FRACTION:.0%}, uncorrected; 'detectable' is the smallest difference it finds "
            "with 80 % power here), the paired test over every configuration both trained "
            "(median difference, its 95 % interval, Holm's p), how often each fails (test "
            f"{metric_of(benchmark).name} not below chance: variant vs {REFERENCE}, McNemar's "
            "p with Holm's correction) and the difference where both learned. Positive: worse than "
            f"{REFERENCE}. Columns and tests: `summary.csv`, the sections below.",
            markdown.table(verdicts),
        ]
    beyond = family.beyond_paper(summary.variant)
    if beyond:
        lines.append(
            f"{markdown.join_words(beyond)} {'is' if len(beyond) == 1 else 'are'} not in the "
            "paper: what the literature claims of them, their cost and a comparison at the same "
            f"number of parameters are in the section *Beyond the paper* of {benchmark} below."
        )
    return lines


def progress_line(runs: pd.DataFrame, studies: pd.DataFrame) -> str:
    """Complete trials against the plan, and the stored rows counted apart (waiting, running,
    and the attempts an interrupt sent back to the queue are rows, not trials)."""
    complete = int((runs.state == "COMPLETE").sum())
    planned = pd.to_numeric(studies.planned, errors="coerce") if "planned" in studies else None
    if planned is not None and len(planned) and planned.notna().all():
        text = f"**{complete:,} of {int(planned.sum()):,} planned trials are complete**"
    else:
        text = f"**{complete:,} trials are complete** (the plan is not recorded)"
    return text + f" ({len(runs):,} rows stored, waiting and requeued attempts included)."
