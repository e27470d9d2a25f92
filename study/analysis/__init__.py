"""Analysis of a study storage: the trials table, the paper's variant comparison (top 10 %,
Welch at an uncorrected p < 0.05, Holm beside it), functional ANOVA of the hyperparameters per
variant with each forest's out-of-bag fit, budget and search-range checks, learning curves,
figures and the report.

    >>> from study import analysis
    >>> trials = analysis.load_trials("sqlite:///results/odyssey.db")
    >>> summary = analysis.summarize(trials)          # one row per benchmark × variant
    >>> model = analysis.fit_trials(trials[trials.variant == "V"])
    >>> model.importance(), model.held_out_r2        # main effects and pairs; forest fit
    >>> results = analysis.read_results("results/odyssey")  # every table of a report folder
    >>> jsb = results.of_benchmark("jsb")             # the same tables, jsb's rows only
"""

from ..benchmarks.metrics import Metric, metric_of
from .checks import checks
from .curves import summarize_curves
from .fanova import SPACE, Fanova, Param, fit_trials
from .report import default_out, write
from .results import Results, read_results, read_tables
from .stats import holm, summarize, top_trials, welch
from .tables import Analysis, analyse
from .trials import (
    COLUMNS,
    load_storage,
    load_trials,
    read_trials,
    split_study_name,
    trial_seconds,
    variant_order,
)

__all__ = [
    "COLUMNS",
    "SPACE",
    "Analysis",
    "Fanova",
    "Metric",
    "Param",
    "Results",
    "analyse",
    "checks",
    "default_out",
    "fit_trials",
    "holm",
    "load_storage",
    "load_trials",
    "metric_of",
    "read_results",
    "read_tables",
    "read_trials",
    "split_study_name",
    "summarize",
    "summarize_curves",
    "top_trials",
    "trial_seconds",
    "variant_order",
    "welch",
    "write",
]
