"""The paper's figures from the report's tables (trials, summary, importance, marginals,
interactions, curves), so that a folder written by `odyssey report` redraws every figure
without refitting a forest. Every function returns a matplotlib Figure built without pyplot
(no display, no global state); `save` writes it as PNG and PDF. Axes name the benchmark's
metric and unit; log axes are labelled at decades; box-plot jitter is seeded."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import (
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    NullLocator,
)

from ..benchmarks.metrics import metric_of
from .fanova import SPACE
from .stats import REFERENCE, TOP_FRACTION, top_trials
from .tables import headline_of, importance_rows
from .trials import timed_trials, variant_order

DIRECTION_COLOURS = {"worse": "#d62728", "better": "#2ca02c", "": "#c6dbef"}
REFERENCE_COLOUR = "#6baed6"
# How each searched parameter reads on an axis or in a sentence: its name in words, or these.
_WORDING = {"one_minus_momentum": "1 − momentum", "input_noise": "input noise std"}
LABELS = {p.name: _WORDING.get(p.name, p.name.replace("_", " ")) for p in SPACE}
LOG_PARAMS = {p.name for p in SPACE if p.log}
FIT_MEANINGFUL = 0.5  # below this held-out R², a forest's importances are not meaningful
JITTER_SEED = 0


def save(fig: Figure, path: Path) -> Path:
    """`path` as .png and .pdf (no creation date, so identical runs give identical files);
    returns the PNG's path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    png = path.with_suffix(".png")
    fig.savefig(png, dpi=120, bbox_inches="tight")
    fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight", metadata={"CreationDate": None})
    return png


def tick_label(value: float, scientific: bool = False) -> str:
    """Plain (0.01, 0.1, 1, 20, 200), or powers of ten as 1e-6 when `scientific`."""
    if value <= 0:
        return ""
    exponent = math.log10(value)
    if scientific and abs(exponent - round(exponent)) < 1e-9:
        return f"1e{round(exponent)}"
    return f"{value:g}"


def log_axis(axis, set_scale, low: float, high: float) -> None:
    """A log axis with a tick at every decade where the data span two decades or more (1e-6 …
    1e-2), else at 1-2-5 steps (20, 50, 100, 200); minor ticks unlabelled. Decades below 1e-3 or
    above 1e4 make the whole axis read 1e-6, 1e-5, …"""
    set_scale("log")
    wide = high > 0 and low > 0 and math.log10(high / low) >= 1.5
    scientific = low < 1e-3 or high >= 1e4
    subs = (1.0,) if wide else (1.0, 2.0, 5.0)
    axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=20))
    axis.set_major_formatter(FuncFormatter(lambda value, _: tick_label(value, scientific)))
    # unlabelled minor ticks at 2 and 5 of each decade (a few, not eight: cheap to draw)
    axis.set_minor_locator(
        LogLocator(base=10, subs=(2.0, 5.0), numticks=20) if wide else NullLocator()
    )
    axis.set_minor_formatter(NullFormatter())


def _metric_axis(benchmark: str, prefix: str = "test") -> str:
    return metric_of(benchmark).label(prefix)


def top_boxplot(trials: pd.DataFrame, summary: pd.DataFrame, benchmark: str) -> Figure:
    """Test metric of each variant's top trials (the paper's Figure 3), every variant of the
    storage in the paper's order with n under its name ("no trials yet" where it has no
    complete trial). Colour: the paper's criterion (Welch, uncorrected p < 0.05); * marks it,
    ** marks p < 0.05 after Holm too; neither from fewer than 4 top trials a side (the
    summary's `significant` says so)."""
    runs = trials[trials.benchmark == benchmark]
    order = variant_order(runs.variant.unique())
    top = pd.concat([top_trials(runs[runs.variant == v]) for v in order])
    top = top[top.test_metric.notna()]
    rows = summary[summary.benchmark == benchmark].set_index("variant")
    direction = rows.direction.fillna("")
    palette = {v: DIRECTION_COLOURS[direction.get(v, "")] for v in order}
    palette[REFERENCE] = REFERENCE_COLOUR
    fig = Figure(layout="constrained", figsize=(max(6.5, 1.4 + 0.8 * len(order)), 4.8))
    ax = fig.subplots()
    if top.empty:
        ax.text(0.5, 0.5, "no test metric recorded", ha="center", transform=ax.transAxes)
        return fig
    position = {v: i for i, v in enumerate(order)}
    drawn = [v for v in order if (top.variant == v).any()]
    boxes = ax.boxplot(
        [top.test_metric[top.variant == v] for v in drawn],
        positions=[position[v] for v in drawn],
        widths=0.8,
        showfliers=False,
        patch_artist=True,
        medianprops={"color": "#3f3f3f"},
        whiskerprops={"color": "#3f3f3f"},
        capprops={"color": "#3f3f3f"},
        boxprops={"edgecolor": "#3f3f3f"},
    )  # fmt: skip  (matplotlib's own: seaborn 0.13 passes it the deprecated `vert`)
    for patch, v in zip(boxes["boxes"], drawn):
        patch.set_facecolor(palette[v])
    rng = np.random.default_rng(JITTER_SEED)  # seeded: identical runs, identical figures
    x = top.variant.map(position).to_numpy(float) + rng.uniform(-0.12, 0.12, len(top))
    ax.scatter(x, top.test_metric, s=9, color="black", zorder=3)
    counts = top.variant.value_counts()
    for v in order:
        if v not in counts:
            ax.text(position[v], 0.5, "no trials yet", transform=ax.get_xaxis_transform(),
                    ha="center", va="center", rotation=90, fontsize=8, color="grey")  # fmt: skip
        elif v in rows.index and rows.significant.get(v, False):
            stars = "**" if rows.significant_holm.get(v, False) else "*"
            ax.text(position[v], 0.97, stars, transform=ax.get_xaxis_transform(),
                    ha="center", va="top", fontsize=14)  # fmt: skip
    ax.set_xticks(range(len(order)), [f"{v}\nn = {counts.get(v, 0)}" for v in order])
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_title(f"{benchmark}: best {TOP_FRACTION:.0%} of each variant's trials")
    ax.set_xlabel("")
    ax.set_ylabel(_metric_axis(benchmark) + ", lower is better")
    handles = [
        Patch(color=REFERENCE_COLOUR, label=f"{REFERENCE} (reference)"),
        Patch(color=DIRECTION_COLOURS["worse"], label="worse than V"),
        Patch(color=DIRECTION_COLOURS["better"], label="better than V"),
        Patch(color=DIRECTION_COLOURS[""], label="not different, or too few for a verdict"),
        Line2D([], [], ls="", marker="$*$", ms=9, color="black",
               label="* p < 0.05, Welch, uncorrected (the paper's criterion)"),
        Line2D([], [], ls="", marker="$**$", ms=14, color="black",
               label="** p < 0.05 also after Holm's correction"),
    ]  # fmt: skip
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2,
              fontsize=8, frameon=False)  # fmt: skip
    return fig


def paired_differences(summary: pd.DataFrame, benchmark: str) -> Figure:
    """Each variant minus V, two ways: the paper's difference of top-10 % means with Welch's
    95 % interval (* and ** as in Figure 3), and the median per-configuration difference over
    the shared sample with its 95 % sign-test interval (filled where the paired test gives a
    verdict: Holm's p < 0.05 and an interval that excludes 0). Variants without a value are
    listed with an empty row."""
    rows = summary[(summary.benchmark == benchmark) & (summary.variant != REFERENCE)]
    names = rows.variant.tolist()
    fig = Figure(layout="constrained", figsize=(9.0, 1.4 + 0.42 * max(1, len(names))))
    axes = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(names))
    panels = (
        ("top_diff", "top_diff_low", "top_diff_high", "direction",
         f"top {TOP_FRACTION:.0%}: difference of means (Welch 95 % interval)"),
        ("paired_median", "paired_low", "paired_high", "paired_direction",
         "paired: median per-configuration difference (sign-test 95 % interval)"),
    )  # fmt: skip
    for ax, (centre, low, high, verdict, title) in zip(axes, panels):
        ax.axvline(0.0, color="grey", lw=1)
        for i, row in enumerate(rows.itertuples()):
            value = getattr(row, centre)
            if not np.isfinite(value):
                ax.text(0.5, i, "none yet", transform=ax.get_yaxis_transform(), ha="center",
                        va="center", fontsize=8, color="grey")  # fmt: skip
                continue
            lo, hi = getattr(row, low), getattr(row, high)
            err = [[value - lo], [hi - value]] if np.isfinite(lo) else None
            said = getattr(row, verdict)
            colour = DIRECTION_COLOURS[said] if said else "black"
            ax.errorbar(value, i, xerr=err, fmt="o", color=colour,
                        mfc=colour if said else "white", capsize=3)  # fmt: skip
            if verdict == "direction" and row.significant:
                stars = "**" if row.significant_holm else "*"
                ax.annotate(stars, (value, i), xytext=(0, 5), textcoords="offset points",
                            ha="center", fontsize=11)  # fmt: skip
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(f"variant − {REFERENCE}, {_metric_axis(benchmark)}")
    axes[0].set_yticks(y, names)
    axes[0].set_ylim(len(names) - 0.5, -0.5)
    fig.suptitle(
        f"{benchmark}: each variant against {REFERENCE} (positive: worse; filled: a verdict)"
    )
    return fig


def importance_bars(importance: pd.DataFrame, benchmark: str) -> Figure:
    """The two lenses per variant (V first) and pooled (`all`): fANOVA's share of variance of
    each hyperparameter and of the pairwise interactions, ±1 std over the forest's trees, each
    row labelled with its forest's held-out R² (the paper's Figure 5); and PED-ANOVA's
    normalised importance of each hyperparameter among the top 10 %."""
    table = importance[importance.benchmark == benchmark]
    fanova, ped = table[table.lens == "fanova"], table[table.lens == "ped-anova"]
    rows = importance_rows(fanova)
    mains = list(dict.fromkeys(fanova[fanova.order == 1].term))
    labels = []
    for variant in rows:
        part = fanova[fanova.variant == variant]
        name = "all, pooled (variant a feature)" if variant == "all" else variant
        r2 = part.held_out_r2.iloc[0] if len(part) else np.nan
        weak = ", not meaningful" if r2 < FIT_MEANINGFUL else ""
        labels.append(f"{name} (R² {r2:.2f}{weak})" if np.isfinite(r2) else name)
    fig = Figure(layout="constrained", figsize=(11.0, 1.6 + 0.55 * len(rows)))
    axes = fig.subplots(1, 2, sharey=True, width_ratios=[5, 4])
    colours = dict(zip([*mains, "pairwise"], [*sns.color_palette("tab10", len(mains)), "#888888"]))
    y = np.arange(len(rows))
    for ax, lens_rows, terms, title in (
        (axes[0], fanova, [*mains, "pairwise"], "fANOVA (log space), ±1 std over trees"),
        (axes[1], ped, mains, f"PED-ANOVA, top {TOP_FRACTION:.0%} quantile (Optuna)"),
    ):
        height = 0.8 / len(terms)
        for j, term in enumerate(terms):
            values, errors = [], []
            for variant in rows:
                part = lens_rows[lens_rows.variant == variant]
                if term == "pairwise":
                    pairs = part[part.order == 2]
                    values.append(pairs.importance.sum() if len(pairs) else np.nan)
                    errors.append(np.nan)
                    continue
                hit = part[part.term == term]
                values.append(hit.importance.iloc[0] if len(hit) else np.nan)
                errors.append(hit["std"].iloc[0] if len(hit) else np.nan)
            offset = y - 0.4 + (j + 0.5) * height
            values, errors = np.asarray(values, float), np.asarray(errors, float)
            ax.barh(offset, np.nan_to_num(values), height=height, color=colours[term],
                    label=LABELS.get(term, term),
                    xerr=np.where(np.isfinite(errors), errors, 0.0) if np.isfinite(errors).any()
                    else None, error_kw={"lw": 0.8, "capsize": 1.5})  # fmt: skip
        ax.set_xlim(0, 1)
        ax.set_title(title, fontsize=10)
    axes[0].set_yticks(y, labels)
    axes[0].set_ylim(len(rows) - 0.5, -0.5)
    axes[0].set_xlabel(f"fraction of the variance of the {_metric_axis(benchmark)}")
    axes[1].set_xlabel("importance (normalised to sum to 1)")
    fig.suptitle(f"{benchmark}: hyperparameter importance (R²: the forest's held-out fit)")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=5, frameon=False)
    return fig


def marginal_curves(marginals: pd.DataFrame, benchmark: str) -> Figure:
    """Predicted test metric against each hyperparameter, averaged over the others, with a
    ±1 std band over the forest's trees (the paper's Figure 4): V's forest only (the pooled
    forest is averaged over variants that blow up, and would set the axis), or the pooled one
    where there is no V."""
    table = marginals[marginals.benchmark == benchmark]
    params = list(dict.fromkeys(table.param))
    headline = headline_of(table.variant)
    drawn = [headline]
    fig = Figure(layout="constrained", figsize=(3.3 * max(1, len(params)), 3.6))
    axes = np.atleast_1d(fig.subplots(1, max(1, len(params)), sharey=True))
    for ax, param in zip(axes, params):
        for variant, colour, style in zip(drawn, ("C0", "C1"), ("-", "--")):
            curve = table[(table.variant == variant) & (table.param == param)]
            label = "all variants, pooled" if variant == "all" else variant
            covered = _covered(curve)
            ax.plot(curve.value, curve["mean"], color="#bbbbbb", ls=style, lw=1)
            inside = curve["mean"].where(covered)  # NaN outside: the line breaks there
            ax.plot(curve.value, inside, color=colour, ls=style, label=label)
            low, high = curve["mean"] - curve["std"], curve["mean"] + curve["std"]
            ax.fill_between(curve.value, low, high, where=covered, color=colour, alpha=0.2,
                            lw=0)  # fmt: skip
        if param in LOG_PARAMS:
            values = table[table.param == param].value
            log_axis(ax.xaxis, ax.set_xscale, values.min(), values.max())
        ax.set_xlabel(LABELS.get(param, param))
    axes[0].set_ylabel(f"predicted {_metric_axis(benchmark)}")
    axes[0].plot([], [], color="#bbbbbb", label="beyond the trials' range")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{benchmark}: marginal predicted performance (±1 std over trees)")
    return fig


def _covered(table: pd.DataFrame) -> np.ndarray:
    """The table's `covered` flags; all True for tables written before they were recorded."""
    if "covered" not in table or table.covered.isna().all():
        return np.ones(len(table), dtype=bool)
    return table.covered.fillna(False).astype(bool).to_numpy()


def interaction_heatmaps(interactions: pd.DataFrame, benchmark: str) -> Figure:
    """Predicted test metric over two hyperparameters at a time, for the pairs in the table
    (the paper's Figure 6)."""
    table = interactions[interactions.benchmark == benchmark]
    terms = list(dict.fromkeys(table.term))
    fig = Figure(layout="constrained", figsize=(4.9 * max(1, len(terms)), 4.0))
    axes = np.atleast_1d(fig.subplots(1, max(1, len(terms))))
    for ax, term in zip(axes, terms):
        part = table[table.term == term]
        first, second = term.split(":")
        part = part.assign(covered=_covered(part))
        grid = part.pivot(index="first_value", columns="second_value", values="mean")
        inside = part.pivot(index="first_value", columns="second_value", values="covered")
        values = np.ma.masked_where(~inside.to_numpy(bool), grid.to_numpy())
        ax.set_facecolor("#dddddd")  # greyed where the trials did not reach
        mesh = ax.pcolormesh(grid.columns, grid.index, values, shading="nearest",
                             cmap="viridis_r", rasterized=True)  # fmt: skip
        fig.colorbar(mesh, ax=ax, label=f"predicted {_metric_axis(benchmark)}")
        for name, values, axis, set_scale in (
            (first, grid.index, ax.yaxis, ax.set_yscale),
            (second, grid.columns, ax.xaxis, ax.set_xscale),
        ):
            if name in LOG_PARAMS:
                log_axis(axis, set_scale, values.min(), values.max())
        ax.set_ylabel(LABELS.get(first, first))
        ax.set_xlabel(LABELS.get(second, second))
        variant = part.variant.iloc[0]
        which = "all variants, pooled" if variant == "all" else variant
        ax.set_title(f"{which}: {LABELS.get(first, first)} × {LABELS.get(second, second)}")
    fig.suptitle(f"{benchmark}: strongest pairwise interactions (grey: beyond the trials)")
    return fig


def learning_curves(curves: pd.DataFrame, benchmark: str) -> Figure:
    """Validation metric over epochs per variant: the median over the trials that trained
    each epoch and the variant's best trial; the chance level dashed where it is known."""
    table = curves[curves.benchmark == benchmark]
    order = variant_order(table.variant.unique())
    ncols = min(3, max(1, len(order)))
    nrows = max(1, math.ceil(len(order) / ncols))
    fig = Figure(layout="constrained", figsize=(3.4 * ncols, 2.6 * nrows + 0.6))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False))
    metric = metric_of(benchmark)
    for ax, variant in zip(axes.flat, order):
        part = table[table.variant == variant]
        ax.plot(part.epoch, part.median_valid, color="C0", label="median of trials")
        ax.plot(part.epoch, part.best_valid, color="C1", label="best trial")
        if metric.chance is not None:
            ax.axhline(metric.chance, color="grey", ls="--", lw=1, label="chance")
        ax.set_title(variant)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    low, high = _curve_range(table, metric.chance)
    if np.isfinite(low):
        axes.flat[0].set_ylim(low, high)  # shared by every panel
    for ax in axes.flat[len(order) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel(metric.label("validation"))
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{benchmark}: learning curves")
    return fig


def _curve_range(table: pd.DataFrame, chance: float | None) -> tuple[float, float]:
    """The metric range where variants differ: from the lowest curve value to half as far
    again above chance (so the chance line and trials near it show), or to the highest value
    where chance is unknown or below every curve; raised where needed so that every line of
    every panel reaches into it at its lowest point (a median of trials that never gets near
    chance still shows). Values beyond (untrained first epochs, blow-ups) run off the top."""
    lines = ["median_valid", "best_valid"]
    values = table[lines].to_numpy(float).ravel()
    values = values[np.isfinite(values)]
    if not len(values):
        return np.nan, np.nan
    low = values.min()
    if chance is not None and chance > low:
        span = chance - low
        high = chance + 0.5 * span
    else:
        span = max(values.max() - low, 1e-9)
        high = values.max() + 0.05 * span
    lowest = table.groupby("variant")[lines].min().to_numpy(float)  # each line's best point
    lowest = lowest[np.isfinite(lowest)]
    high = max(high, lowest.max() + 0.05 * span) if len(lowest) else high
    return low - 0.05 * span, high


def time_vs_size(trials: pd.DataFrame, benchmark: str) -> Figure:
    """Each trial's training time per epoch (its population's wall time divided by the
    population's size, over the epochs it trained) against its hidden size, by variant, with
    a marker per device."""
    runs = timed_trials(trials[trials.benchmark == benchmark])
    runs = runs.assign(
        hidden_size=runs.hidden_size.astype(float),
        device=runs.device.fillna("device not recorded"),
    )
    fig = Figure(layout="constrained", figsize=(6.5, 4.2))
    ax = fig.subplots()
    sns.scatterplot(
        data=runs, x="hidden_size", y="epoch_seconds", hue="variant", style="device",
        hue_order=variant_order(runs.variant.unique()), style_order=sorted(runs.device.unique()),
        s=14, ax=ax,
    )  # fmt: skip
    if len(runs):
        log_axis(ax.xaxis, ax.set_xscale, runs.hidden_size.min(), runs.hidden_size.max())
        log_axis(ax.yaxis, ax.set_yscale, runs.epoch_seconds.min(), runs.epoch_seconds.max())
        ax.legend(fontsize=7, ncol=2)
    ax.set_xlabel("hidden size")
    ax.set_ylabel("training time per trial-epoch (s)")
    devices = ", ".join(sorted(runs.device.unique()))
    ax.set_title(f"{benchmark}: time per trial-epoch against hidden size ({devices})")
    return fig


def params_vs_metric(trials: pd.DataFrame, benchmark: str) -> Figure:
    """Each complete trial's test metric against its number of parameters (`n_params`, log
    scale), one colour per arm (the paper's order), with each arm's lower envelope: the
    lowest test metric any of its trials reached with at most that many parameters. The
    metric axis spans the best trial to half as far again above chance (to the worst trial
    where chance is unknown): blown-up trials run off the top."""
    runs = trials[(trials.benchmark == benchmark) & (trials.state == "COMPLETE")]
    runs = runs[np.isfinite(runs.test_metric.to_numpy(float)) & (runs.n_params > 0)]
    fig = Figure(layout="constrained", figsize=(7.0, 4.6))
    ax = fig.subplots()
    if runs.empty:
        ax.text(0.5, 0.5, "no test metric recorded", ha="center", transform=ax.transAxes)
        return fig
    order = variant_order(runs.variant.unique())
    colours = dict(zip(order, sns.color_palette("tab10", len(order))))
    for variant in order:
        part = runs[runs.variant == variant].sort_values("n_params", kind="stable")
        x, y = part.n_params.to_numpy(float), part.test_metric.to_numpy(float)
        ax.scatter(x, y, s=9, color=colours[variant], alpha=0.45, lw=0)
        ax.step(x, np.minimum.accumulate(y), where="post", color=colours[variant], lw=1.6,
                label=variant)  # fmt: skip
    counts = runs.n_params.to_numpy(float)
    log_axis(ax.xaxis, ax.set_xscale, counts.min(), counts.max())
    metric = metric_of(benchmark)
    values = runs.test_metric.to_numpy(float)
    low = values.min()
    if metric.chance is not None and metric.chance > low:
        high = metric.chance + 0.5 * (metric.chance - low)
        ax.axhline(metric.chance, color="grey", ls="--", lw=1, label="chance")
    else:
        high = values.max()
    span = max(high - low, 1e-9)
    ax.set_ylim(low - 0.05 * span, high + 0.05 * span)
    ax.set_xlabel("trainable parameters (the trial's own count)")
    ax.set_ylabel(_metric_axis(benchmark) + ", lower is better")
    ax.legend(fontsize=8, ncol=2)
    ax.set_title(
        f"{benchmark}: test {metric.name} against parameters (lines: each arm's best so far)"
    )
    return fig
