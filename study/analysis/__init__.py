"""Analysis of a study storage: the trials table, the paper's variant comparison (top 10 %,
Welch, Holm), functional ANOVA of the hyperparameters, figures and the report.

    >>> from study import analysis
    >>> trials = analysis.load_trials("sqlite:///results/odyssey.db")
    >>> summary = analysis.summarize(trials)          # one row per benchmark × variant
    >>> model = analysis.fit_trials(trials[trials.benchmark == "jsb"])
    >>> model.importance()                            # main effects and pairs
"""

from .fanova import SPACE, Fanova, Param, fit_trials
from .report import Analysis, analyse, read_tables, write
from .stats import holm, summarize, top_trials, welch
from .trials import COLUMNS, load_trials, read_trials, split_study_name, variant_order

__all__ = [
    "COLUMNS",
    "SPACE",
    "Analysis",
    "Fanova",
    "Param",
    "analyse",
    "fit_trials",
    "holm",
    "load_trials",
    "read_tables",
    "read_trials",
    "split_study_name",
    "summarize",
    "top_trials",
    "variant_order",
    "welch",
    "write",
]
