"""REPORT.md's section on the arms beyond the paper's nine variants and their '+' combinations
(the gated-RNN family, an arm with its own forget bias such as 'V-fb1'), one per benchmark
that has any: each arm against V the paper's way, and as such a comparison also needs.

- At a glance (`glance_table`): each arm's best trial, its top 10 % against V's (Welch), the
  paired difference, the failures, its parameters and its time per trial-epoch.
- The literature (`claims_table`): each claim of `literature.py` whose two arms the storage
  holds, judged by the paper's criterion, Welch on the top 10 % (the literature compares
  tuned networks), the paired test beside it, as `claim_verdict` says. A claim against V
  reads the summary's row; a claim between two other arms runs `stats.summarize` on those
  two alone, the second in V's place: the same tests and rules, Holm's p over that one
  comparison being the plain p.
- Cost (`cost_table`): parameters at UNITS units, the code's own count, and the measured
  seconds per trial-epoch with their median ratio, at the same configuration, to the clock's
  (`clock`: V's network timed in the same runs as the arms).
- At the same number of parameters (`band_table`, `figures.params_vs_metric`).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd

import variants

from ..benchmarks.metrics import SHAPES, metric_of
from ..training.arms import arm
from . import figures, markdown
from .findings import failures_cell, paired_cell, welch_cell
from .literature import BETTER, CLAIMS, NOT_WORSE
from .results import Results
from .stats import (
    ALPHA,
    MIN_FOR_VERDICT,
    REFERENCE,
    TOP_FRACTION,
    agreement,
    summarize,
    top_trials,
)
from .tables import UNITS, parameter_counts
from .trials import timed_trials, variant_order

BANDS = 6  # of equal width in log10 parameters, over the range the complete trials span
BAND_FRACTION = 0.25  # of an arm's trials in a band that score it
BAND_MINIMUM = 4  # trials of an arm in a band below which it has no score there


def beyond_paper(names) -> list[str]:
    """The arms among `names` outside the paper's nine variants and their '+' combinations:
    a cell of the family, or any arm with a forget bias of its own; in the paper's order.
    Names that are no arm of this tool (a foreign study) are left out."""
    found = []
    for name in variant_order(names):
        try:
            named = arm(name)
        except ValueError:
            continue
        cells = named.cell.split("+")
        if named.forget_bias is not None or any(c not in variants.PAPER_VARIANTS for c in cells):
            found.append(name)
    return found


def claim_verdict(expects: str, direction: str, enough: bool) -> str:
    """agrees / differs / inconclusive: `stats.agreement`'s rule, a claim in the paper's
    place. A BETTER claim is the paper's "worse" the other way round: "differs" needs a
    significant result against it, and no significant result is "inconclusive". A NOT_WORSE
    claim is the paper's "not different", but one-sided: a significantly better arm agrees
    with it."""
    if expects == NOT_WORSE and direction == BETTER:
        direction = ""
    return agreement(direction, BETTER if expects == BETTER else "", enough)


def claims_table(view: Results) -> pd.DataFrame:
    """One row per claim of `literature.CLAIMS` whose arm and counterpart are both in `view`
    (one benchmark's tables): the claim, the comparison's summary columns (the arm minus the
    counterpart), `fewest` top trials on a side, its `verdict` and whether it is
    `provisional` (a study of the benchmark has fewer complete trials than planned)."""
    runs, summary, studies = view.trials, view.summary, view.studies
    names = set(runs.variant)
    provisional = bool(summary.provisional.any())
    rows = []
    for claim in CLAIMS:
        if not {claim.arm, claim.against} <= names:
            continue
        if claim.against == REFERENCE:
            compared = summary
        else:  # the two alone, the counterpart in V's place
            pair = {claim.arm: claim.arm, claim.against: REFERENCE}
            compared = summarize(_renamed(runs, pair), _renamed(studies, pair))
        row = compared.set_index("variant").loc[claim.arm]
        fewest = int(min(row.n_top, compared.set_index("variant").n_top[REFERENCE]))
        verdict = claim_verdict(claim.expects, row.direction, fewest >= MIN_FOR_VERDICT)
        rows.append(
            vars(claim)
            | {column: row[column] for column in _COMPARED}
            | {"fewest": fewest, "verdict": verdict, "provisional": provisional}
        )
    columns = [*vars(CLAIMS[0]), *_COMPARED, "fewest", "verdict", "provisional"]
    return pd.DataFrame(rows, columns=columns)


_COMPARED = [
    "n_top", "top_diff", "p_value", "mde", "direction", "n_paired", "paired_median",
    "paired_low", "paired_high", "paired_p_holm", "paired_direction",
]  # fmt: skip


def _renamed(table: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """The rows of `table` whose variant is a key of `names`, renamed to its value."""
    kept = table[table.variant.isin(list(names))]
    return kept.assign(variant=kept.variant.map(names))


def clock(names) -> str:
    """The arm among `names` whose time per epoch the cost ratios divide by: V with a forget
    bias of its own where there is one (the bias changes no operation, so it computes exactly
    V's network, and it trained in the same runs as the other arms beyond the paper), else V.
    V's own trials may come from other runs (a reference storage, other slices under other
    loads), and a ratio to them would measure those runs as much as the cells."""
    for name in variant_order(names):
        with contextlib.suppress(ValueError):  # a foreign study is no arm
            if name != REFERENCE and arm(name).cell == REFERENCE:
                return name
    return REFERENCE


def cost_table(runs: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    """Per arm of one benchmark's trials: `params`, its trainable parameters at UNITS units
    (none on a benchmark without a known shape) and `params_ratio` to V's; `epoch_seconds`,
    the median over its complete trials of their seconds per epoch trained (`timed_trials`),
    from `n_timed` trials; and `cost_ratio`, the median over the `n_cost` configurations timed
    in both of the arm's seconds per epoch divided by the `clock`'s at the same configuration
    (the same hidden size). The ratio moves with the hidden size (a step's output layer, loss
    and input noise cost every arm alike, and weigh most in small networks), so it is
    also given over the configurations up to `split`, the median hidden size of those the
    clock timed (`cost_ratio_small`), and over those above it (`cost_ratio_large`)."""
    names = variant_order(runs.variant.unique())
    timer = clock(names)
    params = pd.Series(dtype=float)
    if benchmark in SHAPES:
        params = parameter_counts(names, benchmark, UNITS).set_index("variant").total
    timed = timed_trials(runs[runs.state == "COMPLETE"])
    indexed = timed[timed.config_index.notna()].sort_values("trial", kind="stable")
    first = indexed.drop_duplicates(["variant", "config_index"])  # should one have run twice
    seconds = first.pivot(index="config_index", columns="variant", values="epoch_seconds")
    hidden = first.groupby("config_index").hidden_size.first()
    reference = seconds[timer].dropna() if timer in seconds else pd.Series(dtype=float)
    split = hidden.reindex(reference.index).median()
    rows = []
    for name in names:
        own = timed.epoch_seconds[timed.variant == name]
        paired = seconds[name] if name in seconds else pd.Series(dtype=float)
        ratio = (paired / reference).dropna()
        small = (hidden.reindex(ratio.index) <= split).to_numpy()
        rows.append(
            {
                "variant": name,
                "params": params.get(name, np.nan),
                "params_ratio": params.get(name, np.nan) / params.get(REFERENCE, np.nan),
                "epoch_seconds": own.median() if len(own) else np.nan,
                "n_timed": len(own),
                "cost_ratio": ratio.median() if len(ratio) else np.nan,
                "n_cost": len(ratio),
                "split": split,
                "cost_ratio_small": ratio[small].median() if small.any() else np.nan,
                "cost_ratio_large": ratio[~small].median() if (~small).any() else np.nan,
                "clock": timer,
            }
        )
    return pd.DataFrame(rows)


def band_table(runs: pd.DataFrame, bands: int = BANDS) -> pd.DataFrame:
    """The best arm at each number of parameters, one row per band.

    The rule: the complete trials with a test metric and a parameter count (`n_params`, the
    trial's own) are cut into `bands` bands of equal width in log10 parameters, from the
    fewest any of them has to the most (band k holds [low, high), the last its upper edge
    too). In a band, an arm with at least BAND_MINIMUM trials there scores the mean test
    metric of its best BAND_FRACTION of them, ranked on validation as the paper ranks its top
    10 % (`stats.top_trials`: the test metric chooses nothing), so that neither one lucky
    trial nor the many bad learning rates of a random search decide; the `best` arm has the
    lowest score. Columns: band (1 = fewest parameters), low, high, `trials` in the band, one
    score per arm (NaN: too few trials) and `best` ("" where no arm scores)."""
    names = variant_order(runs.variant.unique())
    complete = runs[(runs.state == "COMPLETE") & runs.value.notna() & (runs.n_params > 0)]
    complete = complete[np.isfinite(complete.test_metric.to_numpy(float))]
    columns = ["band", "low", "high", "trials", *names, "best"]
    if complete.empty:
        return pd.DataFrame(columns=columns)
    logs = np.log10(complete.n_params.to_numpy(float))
    edges = np.linspace(logs.min(), logs.max(), bands + 1)
    band = np.clip(np.searchsorted(edges, logs, side="right") - 1, 0, bands - 1)
    rows = []
    for k in range(bands):
        inside = complete[band == k]
        row = {"band": k + 1, "low": 10 ** edges[k], "high": 10 ** edges[k + 1]}
        row["trials"] = len(inside)
        for name in names:
            own = inside[inside.variant == name]
            top = top_trials(own, BAND_FRACTION, minimum=1)
            row[name] = top.test_metric.mean() if len(own) >= BAND_MINIMUM else np.nan
        scores = pd.Series({name: row[name] for name in names}, dtype=float).dropna()
        row["best"] = scores.idxmin() if len(scores) else ""
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def glance_table(summary: pd.DataFrame, cost: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The section's opening table (REPORT.md's; the README's "Beyond the paper" is pasted
    from it): V, then each of `names`, in words and numbers to 2 decimals."""
    rows = summary.set_index("variant")
    cost = cost.set_index("variant")
    ref_top = int(rows.n_top[REFERENCE]) if REFERENCE in rows.index else 0
    table = []
    for name in [REFERENCE, *names]:
        if name not in rows.index:
            continue
        row = rows.loc[name]
        own = cost.loc[name] if name in cost.index else None
        record = {"arm": name, "best": _decimals(row.best), "top 10 %": _decimals(row.top_mean)}
        if name != REFERENCE:
            record["top 10 %"] += ": " + welch_cell(row, min(int(row.n_top), ref_top))
        record["paired vs V"] = "" if name == REFERENCE else paired_cell(row)
        record["failures"] = "" if name == REFERENCE else failures_cell(row)
        record[f"parameters at {UNITS} units"] = _with_ratio(
            own, "params", "params_ratio", "{:,.0f}", REFERENCE
        )
        timer = own.clock if own is not None else REFERENCE
        record["s per trial-epoch"] = _with_ratio(
            own, "epoch_seconds", "cost_ratio", "{:.3g} s", timer
        )
        table.append(record)
    return pd.DataFrame(table)


def _decimals(value: float) -> str:
    return f"{value:.2f}" if np.isfinite(value) else "none yet"


def _with_ratio(row, value: str, ratio: str, form: str, against: str) -> str:
    """`row[value]` as `form`, with its ratio to arm `against` beside it (none for that arm)."""
    if row is None or not np.isfinite(row[value]):
        return ""
    text = form.format(row[value])
    if row.name != against and np.isfinite(row[ratio]):
        text += f" (×{row[ratio]:.2f} {against})"
    return text


def section(view: Results, benchmark: str, figure) -> list[str]:
    """The part of REPORT.md on the arms of one benchmark beyond the paper (`view`: its
    tables, `Results.of_benchmark`); none where every arm is the paper's."""
    runs, summary = view.trials, view.summary
    names = beyond_paper(runs.variant.unique())
    if not names:
        return []
    metric = metric_of(benchmark)
    cost = cost_table(runs, benchmark)
    provisional = bool(summary.provisional.any())
    return [
        f"### Beyond the paper: {markdown.join_words(names)}",
        f"Arms the paper did not study, each against {REFERENCE} on the same configurations "
        f"where they share a sample: the best {metric.label()} among the best "
        f"{TOP_FRACTION:.0%} of the arm's trials (ranked on validation) and their mean, with "
        f"Welch's test against {REFERENCE}'s (the paper's criterion, uncorrected), the paired "
        "median difference with its 95 % interval and Holm's p, the failures (not below "
        f"chance: arm vs {REFERENCE}, McNemar's p with Holm's correction; then the "
        "difference where both learned), "
        f"and the cost below. Positive: worse than {REFERENCE}."
        + (" Every verdict is provisional: the study is not complete." if provisional else ""),
        markdown.table(glance_table(summary, cost, names)),
        *_claims_part(claims_table(view)),
        *_cost_part(cost, names),
        *_bands_part(runs, benchmark, figure),
    ]


def _claims_part(claims: pd.DataFrame) -> list[str]:
    head = "#### What the literature claims"
    if claims.empty:
        return [head, "No published claim compares two of these arms."]
    table = pd.DataFrame(
        {
            "source": [f"{r.source}, *{r.title}*" for r in claims.itertuples()],
            "claim": [f"{r.arm} {r.expects} than {r.against}" for r in claims.itertuples()],
            "published": claims.says,
            "Welch (top 10 %)": [welch_cell(r, r.fewest) for r in claims.itertuples()],
            "paired": [paired_cell(r) for r in claims.itertuples()],
            "verdict": [
                r.verdict + (" (provisional)" if r.provisional and r.verdict else "")
                for r in claims.itertuples()
            ],
        }
    )
    return [
        head,
        "Each claim is judged as the paper's findings are, by Welch's test on the best "
        f"{TOP_FRACTION:.0%} (p < {ALPHA}, uncorrected; the literature compares tuned "
        "networks, as the top trials are), the first arm minus the second: 'agrees' where the "
        "test finds what the claim expects; 'differs' only on a significant result against "
        "it; 'inconclusive' where the claim expects an effect and the test sees none (the "
        "smallest difference it detects with 80 % power is beside it) or where either side "
        f"has fewer than {MIN_FOR_VERDICT} top trials. 'Not worse' (the authors' "
        "'comparable', 'competitive') also agrees with a significantly better arm. The paired "
        f"test stands beside the verdict, not in it; between two arms neither of which is "
        f"{REFERENCE}, both tests are run on those two alone (Holm's p over one comparison is "
        "the plain p). A claim whose arms are not both in the storage is left out; the "
        "published numbers are one hand-tuned network each, not a random search.",
        markdown.table(table),
    ]


def _cost_part(cost: pd.DataFrame, names: list[str]) -> list[str]:
    rows = cost.set_index("variant").reindex([REFERENCE, *names]).dropna(how="all")
    timer = cost.clock.iloc[0] if len(cost) else REFERENCE
    split = cost.split.iloc[0] if len(cost) else np.nan
    median = f"{split:.0f}" if np.isfinite(split) else "the median"
    table = pd.DataFrame(
        {
            "arm": rows.index,
            f"parameters at {UNITS} units": rows.params.map(
                lambda n: f"{n:,.0f}" if np.isfinite(n) else ""
            ),
            "× V": rows.params_ratio,
            "s per trial-epoch (median)": rows.epoch_seconds,
            "trials timed": rows.n_timed,
            f"× {timer} at the same configuration (median)": rows.cost_ratio,
            f"at hidden sizes up to {median}": rows.cost_ratio_small,
            f"above {median}": rows.cost_ratio_large,
            "configurations": rows.n_cost,
        }
    )
    return [
        "#### Cost",
        f"Trainable parameters with {UNITS} units (the code's own count, as in the table of "
        "parameters below) and the measured training time: each complete trial's seconds per "
        "epoch trained (its share of its population's time), the median over the arm's "
        f"trials, and, configuration by configuration, the arm's time divided by {timer}'s "
        "at the same configuration (the same hidden size), the median over the configurations "
        "timed in both, then over the configurations up to and above their median hidden "
        "size: a step's output layer, loss and input noise cost every arm the same and weigh "
        "most in small networks, so what a cheaper cell saves grows with the hidden size. "
        + (
            f"{timer} computes exactly {REFERENCE}'s network (a forget bias changes no "
            "operation) and trained in the same runs as the other arms, so its time stands for "
            f"{REFERENCE}'s; {REFERENCE}'s own row says how its trials' times, from other runs, "
            "compare: a ratio far from 1 is those runs' machine or load, not the network. "
            if timer != REFERENCE
            else ""
        )
        + "Trials that ran on other machines, in other slices or under another load are as "
        "comparable as those runs were (the storage records neither).",
        markdown.table(table),
    ]


def _bands_part(runs: pd.DataFrame, benchmark: str, figure) -> list[str]:
    plot = figure(figures.params_vs_metric(runs, benchmark), "params")
    bands = band_table(runs)
    names = [c for c in bands.columns if c not in ("band", "low", "high", "trials", "best")]
    table = bands.assign(
        parameters=[f"{_count(lo)}–{_count(hi)}" for lo, hi in zip(bands.low, bands.high)]
    )[["band", "parameters", "trials", *names, "best"]]
    return [
        "#### At the same number of parameters",
        f"The {metric_of(benchmark).label()} of every complete trial against its number of "
        "parameters (log scale), one colour per arm; each line is the arm's lower envelope, "
        "the best it reached with at most that many parameters.",
        f"![parameters]({plot})",
        f"The best arm in each of {BANDS} bands of equal width in log parameters over the "
        f"range the trials span: in a band, an arm with at least {BAND_MINIMUM} trials there "
        f"scores the mean test metric of its best {BAND_FRACTION:.0%} of them, ranked on "
        "validation (the paper's way of choosing its top trials, not the test metric); empty: "
        "too few trials. A band's arms are of different hidden sizes: this asks which cell "
        "makes the best use of a budget of parameters, not which is best at a hidden size.",
        markdown.table(table),
    ]


def _count(n: float) -> str:
    """A parameter count in three digits: 950, 12.3k, 1.23M."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.3g}{suffix}"
    return f"{n:.0f}"
