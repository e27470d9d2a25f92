"""REPORT.md's state of the study, one per benchmark: trials per variant by state, rounds,
the coverage of the search range (the bands of hidden sizes trained and missing, the share of
each parameter's range sampled), and the findings that cannot be made yet, each with why."""

from __future__ import annotations

import math

import pandas as pd

from . import figures, markdown
from .checks import (
    COVERED,
    band_size,
)
from .fanova import SPACE, cover
from .results import FANOVA, Results
from .stats import MIN_FOR_VERDICT, REFERENCE, SHARED, TOP_FRACTION, finished
from .tables import complete_rounds, importance_rows, round_table, state_table
from .trials import variant_order


def section(view: Results, benchmark: str) -> list[str]:
    """Where the study of one benchmark (`view`: its tables, `Results.of_benchmark`) stands:
    trials per variant by state, rounds, the hidden sizes the complete trials cover, and which
    findings cannot be made yet and why."""
    runs, studies = view.trials, view.studies
    table = state_table(view, benchmark)
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
        rounds_line(complete_rounds(runs, studies), band_size(studies)),
        markdown.table(table),
        _hidden_sizes_line(complete, _sampled_hidden_sizes(view)),
        *_coverage_lines(view),
    ]
    yet = "" if finished(view.summary) else " yet"  # once final, nothing missing will come
    missing = _not_yet(view, yet)
    if missing:
        lines.append(f"Not possible{yet}:\n\n" + "\n".join(f"- {line}" for line in missing))
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


def _hidden_sizes_line(complete: pd.DataFrame, sampled: float) -> str:
    """The hidden sizes the complete trials reach, and the share of the log range sampled
    (`sampled`: the checks' `cover_hidden_size`, within the bands trained so far)."""
    sizes = complete.hidden_size.dropna().astype(float)
    if sizes.empty:
        return "No complete trial yet: no hidden size is covered."
    param = next(p for p in cover(SPACE, complete) if p.name == "hidden_size")
    return (
        f"The complete trials reach hidden sizes {int(sizes.min())}–{int(sizes.max())} of the "
        f"searched {param.low:g}–{param.high:g}, and sample {sampled:.0%} of its log range "
        "(per variant in the table)."
    )


def _sampled_hidden_sizes(view: Results) -> float:
    """The share of the hidden size's log range all complete trials sample (checks, `all`)."""
    table = view.checks.set_index("variant")
    return float(table.cover_hidden_size.get("all", 0.0))


def _coverage_lines(view: Results) -> list[str]:
    """The bands of hidden sizes trained and missing (rounds), and the share of each
    parameter's (log) range the headline's complete trials sample."""
    table = view.checks.set_index("variant")
    lines = []
    bands = round_table(view.trials, view.studies)
    if len(bands):
        shown = bands.assign(complete=bands.complete.map({True: "yes", False: "no"}))
        missing = (
            "; hidden sizes between the bands trained are not sampled yet, so a finding on "
            "hidden size over them is not covered yet"
            if not bands.complete.all()
            else ""
        )
        lines += [
            "The rounds, in the order they train (a round is done when every variant has "
            f"completed its configurations){missing}:",
            markdown.table(shown.drop(columns=["low", "high"])),
        ]
    headline = REFERENCE if REFERENCE in table.index else "all"
    if headline in table.index:
        shares = ", ".join(
            f"{figures.LABELS[p.name]} {table.loc[headline, f'cover_{p.name}']:.0%}" for p in SPACE
        )
        lines.append(
            f"Share of each parameter's {'log ' if any(p.log for p in SPACE) else ''}range "
            f"that {'V' if headline == REFERENCE else 'all'}'s complete trials sample: {shares} "
            f"(below {COVERED:.0%}, its findings are 'not covered yet')."
        )
    return lines


def _not_yet(view: Results, yet: str) -> list[str]:
    """The findings that cannot be made (`yet`: " yet" while trials are still to come),
    each with why."""
    summary = view.summary.set_index("variant")
    table = view.checks.set_index("variant")
    lines = _not_yet_compared(summary, variant_order(view.trials.variant.unique()))
    has_reference = REFERENCE in table.index and table.n_complete.get(REFERENCE, 0) > 0
    headline = REFERENCE if has_reference else "all"
    if headline in table.index:
        lines += _not_yet_covered(table.loc[headline], "V's" if has_reference else "the")
    fanova = view.importance[view.importance.lens == FANOVA]
    fits = fanova.groupby("variant", sort=False).held_out_r2.first()
    weak = [v for v in importance_rows(fanova) if fits[v] < figures.FIT_MEANINGFUL]
    if weak:
        lines.append(
            f"Importances of {', '.join(weak)}: the forest's held-out R² is below "
            f"{figures.FIT_MEANINGFUL}, so they are not meaningful{yet}."
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
            f"fewer than {MIN_FOR_VERDICT} configurations complete in both."
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
