"""Synthetic `<benchmark>/<variant>` studies with known effects, written with Optuna directly
(no training): the analysis tests and notebooks run on them. Trials carry what the runner
stores: parameters over its search space, a `TrialRecord` and per-epoch validation metrics
as intermediate values."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict

import numpy as np
import optuna
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from study.runner.search import SEARCH_SPACE, TrialRecord

PROTOCOL = {"max_epochs": 20, "patience": 5, "batch_size": 1, "loss_reduction": "sum"}
POPULATION = 4
# The shifts of conftest.py's synthetic_storage: NFG worse, NP better, CIFG identical to V.
SHIFTS = {"V": 0.0, "NFG": 0.3, "NP": -0.3, "CIFG": 0.0}


def quiet(func, *args, **kwargs):
    """`func(...)` without the warnings the analysis gives (e.g. of the studies it skips),
    for tests that do not check them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


def metric(params: dict) -> float:
    """Lower is better: a basin in log learning rate, bigger nets help, noise hurts a little,
    momentum does nothing."""
    lr, hidden = np.log10(params["learning_rate"]), np.log10(params["hidden_size"])
    return 0.1 * (lr + 3.0) ** 2 - 0.3 * hidden + 0.1 * params["input_noise"] + 1.5


def sample(rng: np.random.Generator) -> dict:
    """Parameters drawn from the runner's search space (log-uniform where it is)."""
    params = {}
    for name, dist in SEARCH_SPACE.items():
        if dist.log:
            value = 10 ** rng.uniform(np.log10(dist.low), np.log10(dist.high))
        else:
            value = rng.uniform(dist.low, dist.high)
        params[name] = int(round(value)) if isinstance(dist, IntDistribution) else float(value)
    return params


def trial(
    params: dict,
    value: float,
    test: float,
    epochs: int = 20,
    best_epoch: int | None = None,
    diverged: bool = False,
    curves: bool = True,
    preset: str = "quick",
    protocol: dict | None = None,
) -> optuna.trial.FrozenTrial:
    """A COMPLETE trial as the runner stores it. Its curves fall from 3 × its result to the
    result at `best_epoch` (default: its last epoch) and stay there."""
    value, test = float(value), float(test)  # plain floats: a PostgreSQL driver takes no numpy
    best_epoch = epochs if best_epoch is None else best_epoch
    epoch = np.arange(1, epochs + 1)
    shape = 1 + 2 * np.clip(1 - epoch / best_epoch, 0, None) ** 2
    record = TrialRecord(
        test_metric=test,
        best_epoch=best_epoch,
        epochs=epochs,
        diverged=diverged,
        n_params=1000 + 10 * params["hidden_size"],
        seconds=float(0.01 * params["hidden_size"] ** 1.5),  # its own share of the time
        population=POPULATION,
        test_curve=[float(x) for x in test * shape],
        train_curve=[float(x) for x in 2 * value * shape],
        device="cpu",
        preset=preset,
        protocol=protocol or PROTOCOL,
        versions={"optuna": optuna.__version__},
    )
    attrs = asdict(record)
    intermediate = {int(e): float(v) for e, v in zip(epoch, value * shape)}
    if not curves:  # as stored before trials kept their curves
        del attrs["test_curve"], attrs["train_curve"]
        intermediate = {}
    return create_trial(
        params=params,
        distributions=SEARCH_SPACE,
        value=value,
        user_attrs=attrs,
        intermediate_values=intermediate,
    )


def fill(
    storage: str,
    benchmark: str,
    shifts: dict[str, float],
    n_trials: int,
    seed: int = 0,
    n_failed: int = 0,
    n_diverged: int = 0,
    noise: float = 0.02,
    pure_noise: bool = False,
    curves: bool = True,
) -> None:
    """One study per variant; each variant's metric is `metric` + its shift + Gaussian noise
    (only the noise, independent of the parameters, with `pure_noise`). The first
    `n_diverged` trials of each study are diverged (metric 3.0, flagged; learning rate above
    6e-3) and `n_failed` FAIL trials without values (configurations of their own) are added.
    Every third trial stops early (best epoch 8 of 13)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(seed)
    failing = np.random.default_rng([seed, 1])  # leaves the complete trials' draws as they were
    for variant, shift in shifts.items():
        study = optuna.create_study(storage=storage, study_name=f"{benchmark}/{variant}")
        trials = []
        for i in range(n_trials):
            params = sample(rng)
            diverged = i < n_diverged
            if diverged:  # as in real studies, at the top of the learning-rate range
                params["learning_rate"] = float(10 ** rng.uniform(-2.05, -2))
            signal = 1.0 if pure_noise else metric(params) + shift
            test = 3.0 if diverged else signal + noise * rng.normal()
            value = test + noise * rng.normal()
            epochs, best = (13, 8) if i % 3 == 2 else (20, 20)
            trials.append(trial(params, value, test, epochs, best, diverged, curves))
        trials += [
            create_trial(params=sample(failing), distributions=SEARCH_SPACE, state=TrialState.FAIL)
            for _ in range(n_failed)
        ]
        study.add_trials(trials)


def fill_top(
    storage: str | optuna.storages.BaseStorage,
    benchmark: str,
    tops: dict[str, list[float]],
    n_trials: int = 40,
    seed: int = 0,
    top_params: dict | None = None,
) -> None:
    """One study per variant whose best trials (on validation) have exactly the test metrics
    `tops[variant]`; the other trials are far worse. `top_params` overrides parameters of the
    top trials (e.g. a learning rate at the edge of the range)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(seed)
    for variant, values in tops.items():
        study = optuna.create_study(storage=storage, study_name=f"{benchmark}/{variant}")
        trials = []
        for i in range(n_trials):
            params = sample(rng)
            if i < len(values):
                params |= top_params or {}
                test = values[i]
            else:
                test = 10.0 + i
            trials.append(trial(params, test, test))
        study.add_trials(trials)


def fill_shared(
    storage: str | optuna.storages.BaseStorage,
    benchmark: str,
    tests: dict[str, dict[int, float]],
    n_configs: int,
    seed: int = 0,
    shared: bool = True,
    band_size: int | None = None,
    running: dict[str, list[int]] | None = None,
    record: Callable[[str, int], dict] | None = None,
) -> None:
    """One study per variant over one sample of `n_configs` configurations (index i has the
    same parameters in every variant), as a runner with a shared sample stores it:
    `tests[variant]` maps the indices complete in that variant to their test metric (the
    value is the same), `running[variant]` lists indices in training, and every other index
    waits. The studies record N, `sample` = "shared" (unless `shared` is False) and
    `band_size` where given. `record(variant, i)` gives fields of the TrialRecord of a
    complete trial to set instead of `trial`'s (`n_params`, `seconds`, `epochs`, ...)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(seed)
    configs = [sample(rng) for _ in range(n_configs)]
    for variant, done in tests.items():
        study = optuna.create_study(storage=storage, study_name=f"{benchmark}/{variant}")
        study.set_user_attr("n_trials", n_configs)
        if shared:
            study.set_user_attr("sample", "shared")
        if band_size is not None:
            study.set_user_attr("band_size", band_size)
        trials = []
        for index, params in enumerate(configs):
            if index in done:
                made = trial(params, done[index], done[index])
                made.user_attrs["config_index"] = index
                made.user_attrs.update(record(variant, index) if record else {})
            else:
                state = (
                    TrialState.RUNNING
                    if index in (running or {}).get(variant, [])
                    else TrialState.WAITING
                )
                made = create_trial(
                    params=params,
                    distributions=SEARCH_SPACE,
                    state=state,
                    user_attrs={"config_index": index},
                )
            trials.append(made)
        study.add_trials(trials)
