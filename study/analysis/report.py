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
`budget.py` (the budget and search-space checks), `comparison.py` (each variant against V:
Welch and the paired test), `family.py` (the arms beyond the paper's nine, beside the
literature's claims of `literature.py`) and `forests.py` (importances, marginals,
interactions); Markdown helpers: `markdown.py`. This module writes the folder and puts the
sections in order.
"""

from __future__ import annotations

import re
import shutil
import signal
import tempfile
import threading
from pathlib import Path

import pandas as pd
import sqlalchemy
from scipy import stats

from ..benchmarks.metrics import BLOW_UP_MARGIN, PAPER_DATASET, SHAPES, STAND_IN, metric_of
from ..errors import Interrupted
from ..runner.storage import display_url, sqlite_name
from . import answer, budget, comparison, family, figures, forests, markdown, paper, state
from .checks import (
    COVERED,
)
from .results import FANOVA, Results
from .stats import MIN_FOR_VERDICT, REFERENCE, TOP_FRACTION
from .tables import (
    UNITS,
    parameter_counts,
)
from .trials import timed_trials, variant_order

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
    """Every table (see Results), figures/*.png and *.pdf, and REPORT.md under `out`.

    They are written into a temporary folder inside `out`, then swapped in: an interrupt
    or an error while writing leaves the previous report as it was. Other files in `out`
    (a storage, logs) stay."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".report-new-", dir=out))
    try:
        analysis.write_tables(staging)
        views = {b: analysis.of_benchmark(b) for b in analysis.trials.benchmark.unique()}
        sections = [_overview(views, storage, out)]
        for benchmark, view in views.items():
            sections.append(_benchmark_section(view, benchmark, staging))
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


def _overview(views: dict[str, Results], storage: str, out: Path) -> str:
    """The first screen of every benchmark, the state of the study and how to read the report
    (`views`: each benchmark's tables, `Results.of_benchmark`)."""
    tables = ", ".join(f"`{name}.csv`" for name in Results.__dataclass_fields__)
    lines = ["# LSTM variants: analysis report"]
    if out.resolve().parent.name == "results" and (out.parent / "README.md").is_file():
        lines.append(
            "What this study is and how far it has come, in two minutes: "
            "[results/README.md](../README.md)."
        )
    for benchmark, view in views.items():
        lines += answer.section(view, benchmark)
    lines += [
        f"Storage `{display_url(storage)}`, {len(views)} benchmark(s). "
        f"Written by `odyssey report`; next to this file: {tables} and `figures/` (PNG and "
        "PDF). `study.analysis.read_results(folder)` loads every table.",
        "## State of the study",
    ]
    for benchmark, view in views.items():
        lines += state.section(view, benchmark)
    lines += [
        "## How to read this report",
        "\n".join(f"- {line}" for line in HOW_TO_READ),
        DIVERGED_POLICY,
    ]
    return "\n\n".join(lines)


def _benchmark_section(view: Results, benchmark: str, out: Path) -> str:
    """The part of REPORT.md on one benchmark (`view`: its tables, `Results.of_benchmark`); its
    figures go to `out`/figures/."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", benchmark)

    def figure(fig, kind: str) -> str:
        return str(figures.save(fig, out / f"figures/{name}-{kind}").relative_to(out))

    parts = _heading(benchmark)
    parts += budget.section(view, benchmark)
    parts += comparison.variants_section(view.trials, view.summary, benchmark, figure)
    parts += comparison.paired_section(view.summary, benchmark, figure)
    parts += family.section(view, benchmark, figure)
    parts += _parameters_section(view.trials, benchmark)
    parts += _curves_section(view.curves, benchmark, figure)
    if (view.importance.lens == FANOVA).any():
        parts += forests.importance_section(view, benchmark, figure)
        parts += forests.marginals_section(view, benchmark, figure)
    else:
        parts.append("Too few complete trials with a test metric for fANOVA.")
    parts += _time_section(view.trials, benchmark, figure)
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


def _parameters_section(runs: pd.DataFrame, benchmark: str) -> list[str]:
    """Parameters of each variant at UNITS units on this benchmark, and the formula."""
    if benchmark not in SHAPES:
        return []
    inputs, outputs, directions = SHAPES[benchmark]
    table = parameter_counts(variant_order(runs.variant.unique()), benchmark, UNITS)
    if table.empty:
        return []
    table[["recurrent", "output", "total"]] = table[["recurrent", "output", "total"]].map(
        lambda n: f"{n:,}"
    )
    direction = "each of 2 directions" if directions == 2 else "one direction"
    return [
        f"### Parameters at {UNITS} units",
        f"Trainable parameters with N = {UNITS} units, M = {inputs} inputs and K = {outputs} "
        f"outputs ({direction}). Per direction the recurrent layer has B·N·(M + N + 1) "
        "weights and biases, B the blocks with weights (the block input and each gate with "
        "weights of its own: 4 for V, 3 without one gate or with a coupled forget gate), plus "
        "G·N peepholes (G gates with weights) and, with full gate recurrence, (G·N)² "
        f"gate-to-gate weights; the output layer has {directions}·N·K + K. The table is the "
        "code's own count (`n_params`), which also covers cells outside the paper's nine.",
        markdown.table(table),
    ]


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
