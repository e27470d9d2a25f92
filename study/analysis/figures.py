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
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

from .fanova import SPACE
from .metrics import metric_of
from .stats import REFERENCE, TOP_FRACTION, top_trials
from .trials import trial_seconds, variant_order

DIRECTION_COLOURS = {"worse": "#d62728", "better": "#2ca02c", "": "#c6dbef"}
REFERENCE_COLOUR = "#6baed6"
LABELS = {
    "learning_rate": "learning rate",
    "hidden_size": "hidden size",
    "one_minus_momentum": "1 − momentum",
    "input_noise": "input noise std",
}
LOG_PARAMS = {p.name for p in SPACE if p.log}
OOB_MEANINGFUL = 0.5  # below this out-of-bag R², a forest's importances are not meaningful
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
    """Test metric of each variant's top trials (the paper's Figure 3). Colour: the paper's
    criterion (Welch, uncorrected p < 0.05); * marks it, ** marks p < 0.05 after Holm too."""
    runs = trials[trials.benchmark == benchmark]
    order = variant_order(runs.variant.unique())
    top = pd.concat([top_trials(runs[runs.variant == v]) for v in order])
    rows = summary[summary.benchmark == benchmark].set_index("variant")
    direction = rows.direction.fillna("")
    palette = {v: DIRECTION_COLOURS[direction.get(v, "")] for v in order}
    palette[REFERENCE] = REFERENCE_COLOUR
    fig = Figure(layout="constrained", figsize=(max(6.5, 1.4 + 0.8 * len(order)), 4.6))
    ax = fig.subplots()
    top = top[top.test_metric.notna()]
    if top.empty:
        ax.text(0.5, 0.5, "no test metric recorded", ha="center", transform=ax.transAxes)
        return fig
    sns.boxplot(
        data=top, x="variant", y="test_metric", hue="variant", order=order, palette=palette,
        legend=False, showfliers=False, ax=ax,
    )  # fmt: skip
    rng = np.random.default_rng(JITTER_SEED)  # seeded: identical runs, identical figures
    position = {v: i for i, v in enumerate(order)}
    x = top.variant.map(position).to_numpy(float) + rng.uniform(-0.12, 0.12, len(top))
    ax.scatter(x, top.test_metric, s=9, color="black", zorder=3)
    for v in order:
        if v in rows.index and rows.significant.get(v, False):
            stars = "**" if rows.significant_holm.get(v, False) else "*"
            ax.text(position[v], 0.97, stars, transform=ax.get_xaxis_transform(),
                    ha="center", va="top", fontsize=14)  # fmt: skip
    ax.set_title(f"{benchmark}: best {TOP_FRACTION:.0%} of each variant's trials")
    ax.set_xlabel("")
    ax.set_ylabel(_metric_axis(benchmark) + ", lower is better")
    handles = [
        Patch(color=REFERENCE_COLOUR, label=f"{REFERENCE} (reference)"),
        Patch(color=DIRECTION_COLOURS["worse"], label="worse than V"),
        Patch(color=DIRECTION_COLOURS["better"], label="better than V"),
        Patch(color=DIRECTION_COLOURS[""], label="not different"),
        Line2D([], [], ls="", marker="$*$", ms=9, color="black",
               label="* p < 0.05, Welch, uncorrected (the paper's criterion)"),
        Line2D([], [], ls="", marker="$**$", ms=14, color="black",
               label="** p < 0.05 also after Holm's correction"),
    ]  # fmt: skip
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2,
              fontsize=8, frameon=False)  # fmt: skip
    return fig


def importance_rows(importance: pd.DataFrame) -> list[str]:
    """Variants in the paper's order (V, the paper's headline, first), then `all`."""
    variants = [v for v in importance.variant.unique() if v != "all"]
    return variant_order(variants) + (["all"] if (importance.variant == "all").any() else [])


def importance_bars(importance: pd.DataFrame, benchmark: str) -> Figure:
    """Share of variance per hyperparameter, pairwise interactions and the higher-order
    remainder, per variant (V first) and pooled (`all`) (the paper's Figure 5); each row
    labelled with its forest's out-of-bag R²."""
    table = importance[importance.benchmark == benchmark]
    rows = importance_rows(table)
    mains = list(dict.fromkeys(table[table.order == 1].term))
    shares = pd.DataFrame(index=rows, columns=[*mains, "pairwise", "higher order"], dtype=float)
    labels = []
    for variant in rows:
        part = table[table.variant == variant]
        for term in mains:
            shares.loc[variant, term] = part[part.term == term].importance.sum()
        shares.loc[variant, "pairwise"] = part[part.order == 2].importance.sum()
        explained = shares.loc[variant, [*mains, "pairwise"]].sum()
        shares.loc[variant, "higher order"] = max(0.0, 1.0 - explained)
        name = "all, pooled" if variant == "all" else variant
        r2 = part.oob_r2.iloc[0] if "oob_r2" in part and len(part) else np.nan
        weak = ", not meaningful" if r2 < OOB_MEANINGFUL else ""
        labels.append(f"{name} (R² {r2:.2f}{weak})" if np.isfinite(r2) else name)
    fig = Figure(layout="constrained", figsize=(8.5, 1.3 + 0.38 * len(rows)))
    ax = fig.subplots()
    left = np.zeros(len(rows))
    colours = sns.color_palette("tab10", len(mains)) + ["#888888", "#dddddd"]
    for column, colour in zip(shares.columns, colours):
        values = shares[column].fillna(0).to_numpy()
        ax.barh(labels, values, left=left, color=colour, label=LABELS.get(column, column))
        left += values
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"fraction of the variance of the {_metric_axis(benchmark)} (fANOVA)")
    ax.set_title(f"{benchmark}: hyperparameter importance (R²: the forest's out-of-bag fit)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
    return fig


def headline_variant(table: pd.DataFrame) -> str | None:
    """V where it was fitted (the paper's Figures 4–6 are about V), else the pooled `all`."""
    fitted = set(table.variant)
    return REFERENCE if REFERENCE in fitted else ("all" if "all" in fitted else None)


def marginal_curves(marginals: pd.DataFrame, benchmark: str) -> Figure:
    """Predicted test metric against each hyperparameter, averaged over the others, with a
    ±1 std band over the forest's trees (the paper's Figure 4): V, and the pooled forest of
    all variants beside it."""
    table = marginals[marginals.benchmark == benchmark]
    params = list(dict.fromkeys(table.param))
    headline = headline_variant(table)
    drawn = [headline] + (["all"] if headline != "all" and "all" in set(table.variant) else [])
    fig = Figure(layout="constrained", figsize=(3.3 * max(1, len(params)), 3.6))
    axes = np.atleast_1d(fig.subplots(1, max(1, len(params)), sharey=True))
    for ax, param in zip(axes, params):
        for variant, colour, style in zip(drawn, ("C0", "C1"), ("-", "--")):
            curve = table[(table.variant == variant) & (table.param == param)]
            label = "all variants, pooled" if variant == "all" else variant
            ax.plot(curve.value, curve["mean"], color=colour, ls=style, label=label)
            low, high = curve["mean"] - curve["std"], curve["mean"] + curve["std"]
            ax.fill_between(curve.value, low, high, color=colour, alpha=0.2, lw=0)
        if param in LOG_PARAMS:
            values = table[table.param == param].value
            log_axis(ax.xaxis, ax.set_xscale, values.min(), values.max())
        ax.set_xlabel(LABELS.get(param, param))
    axes[0].set_ylabel(f"predicted {_metric_axis(benchmark)}")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{benchmark}: marginal predicted performance (±1 std over trees)")
    return fig


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
        grid = part.pivot(index="first_value", columns="second_value", values="mean")
        mesh = ax.pcolormesh(grid.columns, grid.index, grid.to_numpy(), shading="nearest",
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
    fig.suptitle(f"{benchmark}: strongest pairwise interactions")
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
    for ax in axes.flat[len(order) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel(metric.label("validation"))
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{benchmark}: learning curves")
    return fig


def time_vs_size(trials: pd.DataFrame, benchmark: str) -> Figure:
    """Each trial's training time (its population's wall time divided by the population's
    size) against its hidden size, by variant."""
    runs = trials[trials.benchmark == benchmark].assign(trial_seconds=trial_seconds)
    runs = runs[runs.trial_seconds.notna() & runs.hidden_size.notna()]
    runs = runs.assign(hidden_size=runs.hidden_size.astype(float))
    fig = Figure(layout="constrained", figsize=(6.5, 4.2))
    ax = fig.subplots()
    sns.scatterplot(
        data=runs, x="hidden_size", y="trial_seconds", hue="variant",
        hue_order=variant_order(runs.variant.unique()), s=14, ax=ax,
    )  # fmt: skip
    if len(runs):
        log_axis(ax.xaxis, ax.set_xscale, runs.hidden_size.min(), runs.hidden_size.max())
        log_axis(ax.yaxis, ax.set_yscale, runs.trial_seconds.min(), runs.trial_seconds.max())
        ax.legend(fontsize=7, ncol=2)
    ax.set_xlabel("hidden size")
    ax.set_ylabel("training time per trial (s)")
    ax.set_title(f"{benchmark}: training time per trial against hidden size")
    return fig
