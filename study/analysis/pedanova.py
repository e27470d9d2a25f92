"""The second importance lens: Optuna's PED-ANOVA (Watanabe et al., IJCAI 2023), the evaluator
optuna-dashboard shows, at the quantile of the paper's top-10 % analysis.

fANOVA asks how much of the variance of the predicted metric over the whole (log) box each
parameter explains; PED-ANOVA asks how differently each parameter is distributed among the
best 10 % of trials than among all of them (a Pearson divergence of Parzen estimates). A
parameter that separates good from useless trials over most of its range (the learning rate)
dominates the first; one the best trials concentrate in (a band of hidden sizes) can rank high
in the second. The values are the same capped test metrics the forests are fitted on.
"""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import create_trial

from ..runner.search import SEARCH_SPACE
from .fanova import SPACE, Param, capped_metric, cover

TARGET_QUANTILE = 0.1  # the paper's top 10 %


def ped_anova(trials: pd.DataFrame) -> pd.DataFrame:
    """term, importance (normalised to sum to 1) of each parameter by PED-ANOVA over the
    COMPLETE trials of a trials table, ranked on their capped test metric; NaN where fewer
    than 2 trials would make the top quantile."""
    complete = trials[trials.state == "COMPLETE"]
    values = capped_metric(complete)
    keep = np.isfinite(values)
    space = cover(SPACE, complete)
    distributions = {p.name: _distribution(p) for p in space}
    names = list(distributions)
    rows = complete[keep]
    frame = pd.DataFrame({"term": names, "importance": np.nan})
    if int(TARGET_QUANTILE * len(rows) + 0.5) < 2 or rows[names].isna().any(axis=None):
        return frame
    study = optuna.create_study()  # in memory
    study.add_trials(
        [
            create_trial(
                params={n: distributions[n].to_external_repr(row[n]) for n in names},
                distributions=distributions,
                value=float(value),
            )
            for (_, row), value in zip(rows.iterrows(), values[keep])
        ]
    )
    evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=TARGET_QUANTILE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shares = optuna.importance.get_param_importances(
            study, evaluator=evaluator, params=names, normalize=True
        )
    frame["importance"] = [float(shares[n]) for n in names]
    return frame


def _distribution(param: Param) -> FloatDistribution | IntDistribution:
    """The distribution `param` was sampled from (widened to a foreign study's values)."""
    if isinstance(SEARCH_SPACE[param.name], IntDistribution):
        return IntDistribution(round(param.low), round(param.high), log=param.log)
    return FloatDistribution(param.low, param.high, log=param.log)
