"""The paper's figures from the analysis tables. Every function returns a matplotlib Figure
built without pyplot (no display, no global state); `save` writes it as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from .fanova import Fanova
from .stats import REFERENCE, TOP_FRACTION, top_trials
from .trials import variant_order

DIRECTION_COLOURS = {"worse": "#d62728", "better": "#2ca02c", "": "#9ecae1"}
LABELS = {
    "learning_rate": "learning rate",
    "hidden_size": "hidden size",
    "one_minus_momentum": "1 − momentum",
    "input_noise": "input noise std",
}


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def _log_axis(axis, set_scale) -> None:
    """A log axis labelled at 1-2-5 steps (no crowded minor labels)."""
    set_scale("log")
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def top_boxplot(trials: pd.DataFrame, summary: pd.DataFrame, benchmark: str) -> Figure:
    """Test metric of each variant's top trials (the paper's Figure 3); boxes coloured and
    starred where the variant differs significantly from V after Holm's correction."""
    runs = trials[trials.benchmark == benchmark]
    order = variant_order(runs.variant.unique())
    top = pd.concat([top_trials(runs[runs.variant == v]) for v in order])
    direction = summary[summary.benchmark == benchmark].set_index("variant").direction
    palette = {v: DIRECTION_COLOURS[direction.get(v, "")] for v in order}
    palette[REFERENCE] = "#6baed6"
    fig = Figure(layout="constrained", figsize=(1.0 + 0.8 * len(order), 4.0))
    ax = fig.subplots()
    top = top[top.test_metric.notna()]
    if top.empty:
        ax.text(0.5, 0.5, "no test metric recorded", ha="center", transform=ax.transAxes)
        return fig
    sns.boxplot(
        data=top, x="variant", y="test_metric", hue="variant", order=order, palette=palette,
        legend=False, showfliers=False, ax=ax,
    )  # fmt: skip
    sns.stripplot(data=top, x="variant", y="test_metric", order=order, color="black", size=3, ax=ax)
    for i, v in enumerate(order):
        if direction.get(v, ""):
            ax.text(i, 0.97, "*", transform=ax.get_xaxis_transform(), ha="center", fontsize=16)
    ax.set_title(
        f"{benchmark}: test metric of the best {TOP_FRACTION:.0%} of trials "
        "(* differs from V, Welch + Holm, p < 0.05)"
    )
    ax.set_xlabel("")
    ax.set_ylabel("test metric (lower is better)")
    return fig


def importance_bars(importance: pd.DataFrame, benchmark: str) -> Figure:
    """Share of variance per hyperparameter, pairwise interactions and the higher-order
    remainder, pooled (`all`) and per variant (the paper's Figure 5)."""
    table = importance[importance.benchmark == benchmark]
    rows = ["all"] + variant_order(v for v in table.variant.unique() if v != "all")
    mains = list(dict.fromkeys(table[table.order == 1].term))
    shares = pd.DataFrame(index=rows, columns=[*mains, "pairwise", "higher order"], dtype=float)
    for variant in rows:
        part = table[table.variant == variant]
        for term in mains:
            shares.loc[variant, term] = part[part.term == term].importance.sum()
        shares.loc[variant, "pairwise"] = part[part.order == 2].importance.sum()
        explained = shares.loc[variant, [*mains, "pairwise"]].sum()
        shares.loc[variant, "higher order"] = max(0.0, 1.0 - explained)
    fig = Figure(layout="constrained", figsize=(8.0, 0.9 + 0.35 * len(rows)))
    ax = fig.subplots()
    left = np.zeros(len(rows))
    colours = sns.color_palette("tab10", len(mains)) + ["#888888", "#dddddd"]
    for column, colour in zip(shares.columns, colours):
        values = shares[column].fillna(0).to_numpy()
        ax.barh(rows, values, left=left, color=colour, label=LABELS.get(column, column))
        left += values
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of variance of the test metric (fANOVA)")
    ax.set_title(f"{benchmark}: hyperparameter importance")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, frameon=False)
    return fig


def marginal_curves(model: Fanova, benchmark: str) -> Figure:
    """Predicted test metric against each hyperparameter, averaged over the others, with a
    ±1 std band over the forest's trees (the paper's Figure 4)."""
    fig = Figure(layout="constrained", figsize=(3.2 * len(model.space), 3.2))
    axes = fig.subplots(1, len(model.space), sharey=True)
    for ax, param in zip(np.atleast_1d(axes), model.space):
        curve = model.marginal(param.name)
        ax.plot(curve.value, curve["mean"], color="C0")
        ax.fill_between(
            curve.value, curve["mean"] - curve["std"], curve["mean"] + curve["std"], alpha=0.3
        )
        if param.log:
            _log_axis(ax.xaxis, ax.set_xscale)
        ax.set_xlabel(LABELS.get(param.name, param.name))
    np.atleast_1d(axes)[0].set_ylabel("predicted test metric")
    fig.suptitle(f"{benchmark}: marginal predicted performance (±1 std over trees)")
    return fig


def interaction_heatmaps(model: Fanova, pairs: list[str], benchmark: str) -> Figure:
    """Predicted test metric over two hyperparameters at a time, for the given `a:b` terms
    (the paper's Figure 6)."""
    fig = Figure(layout="constrained", figsize=(4.8 * len(pairs), 3.8))
    axes = np.atleast_1d(fig.subplots(1, len(pairs)))
    for ax, term in zip(axes, pairs):
        first, second = term.split(":")
        x, y, mean, _ = model.marginal_2d(first, second)
        mesh = ax.pcolormesh(y, x, mean, shading="nearest", cmap="viridis_r")
        fig.colorbar(mesh, ax=ax, label="predicted test metric")
        for name, axis, set_scale in (
            (first, ax.yaxis, ax.set_yscale),
            (second, ax.xaxis, ax.set_xscale),
        ):
            if next(p for p in model.space if p.name == name).log:
                _log_axis(axis, set_scale)
        ax.set_ylabel(LABELS.get(first, first))
        ax.set_xlabel(LABELS.get(second, second))
        ax.set_title(f"{LABELS.get(first, first)} × {LABELS.get(second, second)}")
    fig.suptitle(f"{benchmark}: strongest pairwise interactions")
    return fig


def time_vs_size(trials: pd.DataFrame, benchmark: str) -> Figure:
    """Training wall time of each trial against its hidden size, by variant."""
    runs = trials[(trials.benchmark == benchmark) & trials.seconds.notna()]
    fig = Figure(layout="constrained", figsize=(6.5, 4.0))
    ax = fig.subplots()
    sns.scatterplot(
        data=runs, x="hidden_size", y="seconds", hue="variant",
        hue_order=variant_order(runs.variant.unique()), s=14, ax=ax,
    )  # fmt: skip
    _log_axis(ax.xaxis, ax.set_xscale)
    ax.set_yscale("log")
    ax.set_xlabel("hidden size")
    ax.set_ylabel("training time [s]")
    ax.set_title(f"{benchmark}: training time against hidden size")
    ax.legend(fontsize=7, ncol=2)
    return fig
