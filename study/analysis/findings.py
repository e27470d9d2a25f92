"""The sentences of REPORT.md that set a study's findings beside the paper's (`paper.py`):
a verdict, agrees or differs, on the paper's own datasets where the trials suffice for one;
the paper's words as context only on a stand-in. The verdict table that opens the report and
the reading of Welch's test beside the paired one are here too."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..benchmarks.metrics import PAPER_DATASET, STAND_IN
from . import figures, paper
from .checks import COVERED
from .stats import ALPHA, MIN_FOR_VERDICT, REFERENCE
from .tables import headline_of

# The paper's cell of a variant it did not study (a cell of the family, a '-fb' arm, a '+'
# combination): not "not different", which is a finding of the paper.
NOT_STUDIED = "not in the paper"


def variant_findings(summary: pd.DataFrame, benchmark: str) -> list[str]:
    """One sentence per variant on its comparison with V, beside the paper's verdict (a
    verdict itself only on the paper's own datasets)."""
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
        verdict = paper.DIRECTION.get(dataset or stand_in or "", {}).get(row.variant)
        said = "significantly worse" if verdict else "not significantly different"
        if fewest < MIN_FOR_VERDICT:
            sentence = (
                f"{row.variant} against {REFERENCE}: {means}; no verdict from {fewest} top "
                f"trials (at least {MIN_FOR_VERDICT} a side; the paper had {paper.TOP_TRIALS})"
            )
            if verdict is not None:
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
        if verdict is not None and dataset:
            sentence += f". Paper on {dataset}: {said} — {row.paper_agreement}"
            if row.paper_agreement == "inconclusive":
                sentence += (
                    f" (Welch detects a difference of {row.mde:.3g} with 80 % power here; "
                    "no significant result is no evidence against the paper)"
                )
            if row.provisional:
                sentence += ", provisional until the study is complete"
        elif verdict is not None:
            sentence += f". Paper on {stand_in} (context only): {said}"
        findings.append(sentence + ".")
    return findings


def importance_findings(
    importance: pd.DataFrame, benchmark: str, covered: dict[str, float]
) -> list[str]:
    """The headline forest's importances, each beside the paper's words (Figure 5)."""
    headline = headline_of(importance.variant)
    rows = importance[importance.variant == headline]
    main = rows[rows.order == 1].set_index("term").importance
    pairs = rows[rows.order == 2].set_index("term").importance
    if main.isna().all():
        return ["The test metric does not vary over the trials: no variance to attribute."]
    fits = rows.held_out_r2.iloc[0] >= figures.FIT_MEANINGFUL
    order = list(main.sort_values(ascending=False).index)
    hidden = _ordinal(order.index("hidden_size") + 1) if "hidden_size" in order else "absent"
    rank = paper.RANKING.index("hidden_size") + 1
    whose = "V's" if headline == REFERENCE else "the pooled"

    def share(term: str) -> str:
        return f"{main.get(term, np.nan):.1%}"

    def note(says: str, agrees: bool, params: tuple[str, ...]) -> str:
        return _beside_paper(says, agrees, params, covered, benchmark, fits)

    def claim(term: str) -> str:
        said = paper.SHARES[term]
        return note(said.says, said.agrees(main.get(term, np.nan)), (term,))

    findings = [
        f"The learning rate explains {share('learning_rate')} of {whose} variance"
        + claim("learning_rate")
        + ".",
        f"Ranked by main effect: {', '.join(order)}; hidden size is {hidden}"
        + note(_ordinal(rank), order[rank - 1 : rank] == ["hidden_size"], ("hidden_size",))
        + ".",
        f"Momentum (1 − momentum) explains {share('one_minus_momentum')}"
        + claim("one_minus_momentum")
        + f"; input noise explains {share('input_noise')}"
        + claim("input_noise")
        + ".",
    ]
    if pairs.notna().any():
        top = pairs.idxmax()
        findings.append(
            f"Pairwise interactions together explain {pairs.sum():.1%} and all higher-order "
            f"terms {max(0.0, 1 - main.sum() - pairs.sum()):.1%}; the largest pair is "
            f"{top.replace(':', ' × ')} ({pairs[top]:.1%})"
            + note(paper.PAIRS, set(top.split(":")) == set(paper.LARGEST_PAIR), paper.LARGEST_PAIR)
            + "."
        )
    return findings


def _beside_paper(
    says: str,
    agrees: bool,
    params: tuple[str, ...],
    covered: dict[str, float],
    benchmark: str,
    fits: bool,
) -> str:
    """The paper's words `says` after a finding on `params`: whether the finding agrees, on
    the paper's own datasets where the forest fits and the trials cover the parameters (see
    `covered_shares`); as context only on a stand-in."""
    dataset, stand_in = PAPER_DATASET.get(benchmark), STAND_IN.get(benchmark)
    short = [p for p in params if covered.get(p, 0.0) < COVERED]
    if dataset and short:
        names = " and ".join(figures.LABELS[p] for p in short)
        return f" (paper: {says}; not covered yet: the trials span too little of {names})"
    if dataset and fits:
        return f" (paper: {says} — {'agrees' if agrees else 'differs'})"
    if dataset:
        return f" (paper: {says}; no verdict, the forest does not fit)"
    if stand_in:
        return f" (paper on {stand_in}, context only: {says})"
    return ""


def marginal_findings(
    marginals: pd.DataFrame, variant: str, metric: str, covered: dict[str, float]
) -> list[str]:
    """What the headline's marginals say, read only over the range its trials cover."""
    table = marginals[(marginals.variant == variant) & marginals.covered.astype(bool)]
    findings = []
    curve = table[table.param == paper.BASIN].reset_index(drop=True)
    if len(curve):
        low, span = curve["mean"].min(), curve["mean"].max() - curve["mean"].min()
        basin = curve[curve["mean"] <= low + 0.1 * span].value
        best = curve.value[curve["mean"].idxmin()]
        text = (
            f"Predicted performance of {variant} is best at {figures.LABELS[paper.BASIN]} "
            f"{best:.2g}; within 10 % of the curve's range of its best from {basin.min():.2g} "
            f"to {basin.max():.2g} (paper: {paper.MARGINALS[paper.BASIN]}"
        )
        if covered.get(paper.BASIN, 0.0) < COVERED:
            text += "; not covered yet"
        findings.append(text + ").")
    for name, says in paper.MARGINALS.items():
        if name == paper.BASIN:
            continue
        curve = table[table.param == name]
        if curve.empty:
            continue
        label = figures.LABELS[name]
        span = f"{curve.value.min():.3g}–{curve.value.max():.3g}"
        if covered.get(name, 0.0) < COVERED:
            findings.append(
                f"The trials cover {label} {span} only ({covered.get(name, 0.0):.0%} of its "
                f"range): the marginal is not read beyond it (paper: {says}; not covered yet)."
            )
            continue
        quarter = max(1, len(curve) // 4)
        low, high = curve["mean"].iloc[:quarter].mean(), curve["mean"].iloc[-quarter:].mean()
        findings.append(
            f"The predicted test {metric} averages {low:.4g} over the lowest quarter of the "
            f"covered {label} range ({span}) and {high:.4g} over the highest "
            f"({'better' if high < low else 'worse'} when larger; paper: {says})."
        )
    return findings


def _ordinal(n: int) -> str:
    return {1: "first", 2: "second", 3: "third", 4: "fourth"}.get(n, f"{n}th")


def verdict_table(summary: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    """The report's opening table, one row per variant against V: the paper's verdict, the
    paper's test (Welch on the top 10 %), the paired test, the failures and where both
    learned, and whether the study agrees with the paper (marked provisional until the study
    is complete). A variant the paper did not study reads NOT_STUDIED and has no agreement:
    the family section's literature table speaks for it. Numbers as text, to 2 decimals (the
    table is read, `summary.csv` is exact)."""
    dataset, stand_in = PAPER_DATASET.get(benchmark), STAND_IN.get(benchmark)
    verdicts = paper.DIRECTION.get(dataset or stand_in or "", {})
    paper_column = f"paper on {dataset}" if dataset else f"paper on {stand_in} (context)"
    reference = summary[summary.variant == REFERENCE]
    ref_top = int(reference.n_top.iloc[0]) if len(reference) else 0
    rows = []
    for row in summary[summary.variant != REFERENCE].itertuples():
        said = verdicts.get(row.variant)
        record = {"variant": row.variant}
        if dataset or stand_in:
            record[paper_column] = {"worse": "worse", "": "not different", None: NOT_STUDIED}[said]
        record["Welch (top 10 %)"] = welch_cell(row, min(row.n_top, ref_top))
        record["paired"] = paired_cell(row)
        record["failures"] = failures_cell(row)
        agreement = row.paper_agreement
        if agreement and row.provisional:
            agreement += " (provisional)"
        record["agreement"] = agreement
        rows.append(record)
    return pd.DataFrame(rows)


def welch_cell(row, fewest: int) -> str:
    """A summary row's Welch test (top 10 %) in a table cell: its verdict in bold, or why
    there is none (`fewest`: top trials on the smaller side)."""
    if not np.isfinite(row.p_value):
        return "no test"
    text = f"{row.top_diff:+.2f}, p {row.p_value:.2g}"
    if fewest < MIN_FOR_VERDICT:
        return f"no verdict from {fewest} top trials ({text})"
    if row.direction:
        return f"**{row.direction}** ({text})"
    return f"no difference seen ({text}; detectable: {row.mde:.2f})"


def paired_cell(row) -> str:
    """A summary row's paired test in a table cell: median [interval], Holm's p."""
    if pd.isna(row.n_paired):
        return ""
    if not np.isfinite(row.paired_median):
        return "no pair yet"
    text = f"{row.paired_median:+.2f}"
    if np.isfinite(row.paired_low):
        text += f" [{row.paired_low:+.2f}, {row.paired_high:+.2f}]"
    if np.isfinite(row.paired_p_holm):
        text += f", Holm p {row.paired_p_holm:.2g}"
    return f"**{row.paired_direction}** ({text})" if row.paired_direction else f"none ({text})"


def failures_cell(row) -> str:
    """A summary row's failure rates, McNemar's p (Holm's) and the difference where both
    learned."""
    if pd.isna(row.n_paired) or not np.isfinite(row.fail_rate):
        return ""
    text = f"{row.fail_rate:.0%} vs {row.fail_rate_ref:.0%} (Holm p {row.fail_p_holm:.2g})"
    if np.isfinite(row.learned_median):
        text += f"; both learned: {row.learned_median:+.2f}"
        if np.isfinite(row.learned_low):
            text += f" [{row.learned_low:+.2f}, {row.learned_high:+.2f}]"
    return text


def reconciliation(row) -> str:
    """One variant's paper's test beside its paired test (a summary row of a shared sample):
    what each says, and why they may differ."""
    name = row.variant
    parts = []
    if not np.isfinite(row.p_value):
        parts.append(f"{name}: no Welch test (too few top trials)")
    elif row.direction:
        parts.append(f"{name}: Welch finds its best trials {row.direction} ({row.top_diff:+.3g})")
    else:
        parts.append(
            f"{name}: Welch sees no difference at the top ({row.top_diff:+.3g}, p = "
            f"{row.p_value:.2g}), but with {row.n_top} top trials a side it would detect only "
            f"{row.mde:.3g} or more with 80 % power"
        )
    if pd.notna(row.top_overlap):
        parts[-1] += (
            f"; its top and {REFERENCE}'s share {int(row.top_overlap)} of their "
            f"{row.n_top} configurations"
        )
    if row.paired_direction:
        parts.append(
            f"configuration by configuration it is {row.paired_direction} "
            f"({row.paired_median:+.3g}, Holm p = {row.paired_p_holm:.2g})"
        )
    elif np.isfinite(row.paired_median):
        why = " (its interval includes 0)" if row.paired_p_holm < ALPHA else ""
        parts.append(
            f"configuration by configuration there is no verdict ({row.paired_median:+.3g}){why}"
        )
    if np.isfinite(row.fail_p_holm) and row.fail_p_holm < ALPHA:
        more = "more" if row.fail_rate > row.fail_rate_ref else "less"
        text = (
            f"it fails {more} often ({row.fail_rate:.0%} of configurations against "
            f"{row.fail_rate_ref:.0%}, McNemar p = {row.fail_p:.2g}, Holm p = "
            f"{row.fail_p_holm:.2g})"
        )
        if np.isfinite(row.learned_high) and (row.learned_low > 0 or row.learned_high < 0):
            better = "better" if row.learned_high < 0 else "worse"
            text += (
                f", and where both learn it is {better} ({row.learned_median:+.3g}, 95 % "
                f"interval {row.learned_low:+.3g} to {row.learned_high:+.3g})"
            )
        parts.append(text)
    return "; ".join(parts) + "."
