"""Synthetic `<benchmark>/<variant>` studies with known effects, written with Optuna directly
(no training): the analysis tests and notebooks run on them."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

DISTRIBUTIONS = {
    "hidden_size": IntDistribution(20, 200, log=True),
    "learning_rate": FloatDistribution(1e-6, 1e-2, log=True),
    "one_minus_momentum": FloatDistribution(0.01, 1.0, log=True),
    "input_noise": FloatDistribution(0.0, 1.0),
}


def metric(params: dict) -> float:
    """Lower is better: a basin in log learning rate, bigger nets help, noise hurts a little,
    momentum does nothing."""
    lr, hidden = np.log10(params["learning_rate"]), np.log10(params["hidden_size"])
    return 0.1 * (lr + 3.0) ** 2 - 0.3 * hidden + 0.1 * params["input_noise"] + 1.5


def fill(
    storage: str,
    benchmark: str,
    shifts: dict[str, float],
    n_trials: int,
    seed: int = 0,
    n_failed: int = 0,
    n_diverged: int = 0,
    noise: float = 0.02,
) -> None:
    """One study per variant; each variant's metric is `metric` + its shift + Gaussian noise.
    The first `n_diverged` trials of each study are diverged (metric 3.0, flagged) and
    `n_failed` FAIL trials without values are added."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(seed)
    for variant, shift in shifts.items():
        study = optuna.create_study(storage=storage, study_name=f"{benchmark}/{variant}")
        trials = []
        for i in range(n_trials):
            params = {
                "hidden_size": int(round(10 ** rng.uniform(np.log10(20), np.log10(200)))),
                "learning_rate": float(10 ** rng.uniform(-6, -2)),
                "one_minus_momentum": float(10 ** rng.uniform(-2, 0)),
                "input_noise": float(rng.uniform()),
            }
            diverged = i < n_diverged
            test = 3.0 if diverged else metric(params) + shift + noise * rng.normal()
            attrs = {
                "test_metric": test,
                "best_epoch": 5,
                "epochs": 20,
                "diverged": diverged,
                "n_params": 1000 + 10 * params["hidden_size"],
                "seconds": 0.01 * params["hidden_size"] ** 1.5 * (1 + 0.1 * rng.uniform()),
            }
            value = test + noise * rng.normal()
            trials.append(
                create_trial(
                    params=params, distributions=DISTRIBUTIONS, value=value, user_attrs=attrs
                )
            )
        trials += [
            create_trial(params={}, distributions={}, state=TrialState.FAIL)
            for _ in range(n_failed)
        ]
        study.add_trials(trials)
