"""How long a benchmark's studies have left, from the storage's own measured timings.

The rule, per study (one variant of one benchmark):

- **Seconds per trial-epoch** are fitted on its complete trials by least squares as a
  parabola in the hidden size H, f(H) = a + b H + c H^2: a step's fixed cost, its
  products with the input and pointwise work, its recurrent products (a trial's `seconds`
  are its share of its population's time, so they add up to worker-seconds; on the
  committed JSB study a line leaves up to 1.6 x the scatter, and a + c H^2 misfits V). A
  study has a fit once it has MIN_TRIALS complete trials over at least three hidden sizes;
  before that its time is "unknown yet", and so is every total it is part of. So is it
  where the fit, extrapolated from the sizes trained so far, gives a trial left a cost of
  zero or less.
- **Epochs left**: a waiting trial trains E, the mean epochs of the study's complete trials
  (early stopping sets them; they barely depend on H); a running trial that has trained e
  epochs has left the mean of E_j - e over the complete trials with E_j > e (none left
  where no complete trial trained longer).
- **Compute left** C = sum_i r_i f(H_i) over the waiting and running trials (r_i their epochs
  left). Its variance adds four independent parts: the fit's, g' S g with
  g = sum_i r_i (1, H_i, H_i^2) and S the covariance of (a, b, c); each trial's scatter
  about the curve, s^2 sum_i r_i^2 (s^2 the residual variance); each waiting trial's
  epochs, s_E^2 sum_w f(H_w)^2 (s_E the spread of the complete trials' epochs); and their
  mean's, s_E^2 / n (sum_w f(H_w))^2. The studies' fits are independent: their C and
  variances add.
- **Wall time** = C / W at W workers: the workers train populations side by side and the
  trials' seconds are already their shares. The tail of a round, when fewer populations
  than workers are left, is not counted, so it is a lower bound.

The running round is the earliest round (`study.runner.rounds`) with a trial waiting or
running, as the runner takes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from .rounds import configurations, rounds
from .search import own_seconds

MIN_TRIALS = 5  # three coefficients and two degrees of freedom for their scatter


def powers(hidden: np.ndarray) -> np.ndarray:
    """The fit's regressors of each hidden size: (1, H, H^2)."""
    return np.power.outer(np.asarray(hidden, dtype=float), np.arange(3))


@dataclass(frozen=True)
class Fit:
    """Seconds per trial-epoch of one study as a parabola in the hidden size, and the
    epochs of its complete trials."""

    coef: np.ndarray  # (a, b, c): f(H) = a + b H + c H^2
    cov: np.ndarray  # their covariance
    residual_var: float  # s^2, a trial's scatter about the line
    epochs_mean: float
    epochs_var: float  # s_E^2
    epochs: tuple[int, ...]  # of the complete trials
    n: int

    def seconds_per_epoch(self, hidden: np.ndarray) -> np.ndarray:
        return powers(hidden) @ self.coef

    def epochs_left(self, trained: int) -> float:
        """Epochs left of a trial that has trained `trained` (0: a waiting trial)."""
        if trained == 0:
            return self.epochs_mean
        longer = [e - trained for e in self.epochs if e > trained]
        return sum(longer) / len(longer) if longer else 0.0


def fit(trials: Sequence[FrozenTrial]) -> Fit | None:
    """The study's fit from its complete trials that record seconds and epochs; None with
    fewer than MIN_TRIALS of them or fewer than three hidden sizes."""
    points = []
    for trial in trials:
        seconds, epochs = own_seconds(trial.user_attrs), trial.user_attrs.get("epochs")
        if trial.state == TrialState.COMPLETE and seconds and epochs:
            points.append((trial.params["hidden_size"], seconds / epochs, epochs))
    if len(points) < MIN_TRIALS or len({h for h, _, _ in points}) < 3:
        return None
    hidden, rate, epochs = (np.array(column, dtype=float) for column in zip(*points))
    highest_first, cov = np.polyfit(hidden, rate, 2, cov=True)  # cov scaled by s^2
    residual_var = float(np.sum((rate - np.polyval(highest_first, hidden)) ** 2)) / (len(rate) - 3)
    return Fit(
        coef=highest_first[::-1],
        cov=cov[::-1, ::-1],
        residual_var=residual_var,
        epochs_mean=float(epochs.mean()),
        epochs_var=float(epochs.var(ddof=1)),
        epochs=tuple(int(e) for e in epochs),
        n=len(points),
    )


@dataclass(frozen=True)
class Left:
    """What is left of some trials: how many, and their compute in seconds with its standard
    deviation (None: unknown yet, a study among them has no fit)."""

    trials: int
    compute_s: float | None
    sd_s: float | None

    def __add__(self, other: Left) -> Left:
        known = self.compute_s is not None and other.compute_s is not None
        return Left(
            self.trials + other.trials,
            self.compute_s + other.compute_s if known else None,
            math.hypot(self.sd_s, other.sd_s) if known else None,
        )

    def wall_s(self, workers: int) -> float | None:
        return None if self.compute_s is None or workers < 1 else self.compute_s / workers


NOTHING = Left(0, 0.0, 0.0)


def left(trials: Sequence[FrozenTrial], study_fit: Fit | None) -> Left:
    """The compute left of a study's waiting and running `trials` (see the module's rule)."""
    pending = [t for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]
    if not pending:
        return NOTHING
    if study_fit is None:
        return Left(len(pending), None, None)
    f = study_fit
    epochs_left = np.array([f.epochs_left(len(t.intermediate_values)) for t in pending])
    hidden = np.array([t.params["hidden_size"] for t in pending], dtype=float)
    rate = f.seconds_per_epoch(hidden)
    if (rate <= 0).any():  # extrapolated past where the parabola means anything
        return Left(len(pending), None, None)
    waiting = np.array([t.state == TrialState.WAITING for t in pending])
    g = epochs_left @ powers(hidden)
    variance = (
        g @ f.cov @ g
        + f.residual_var * np.sum(epochs_left**2)
        + f.epochs_var * np.sum(rate[waiting] ** 2)
        + f.epochs_var / f.n * np.sum(rate[waiting]) ** 2
    )
    return Left(len(pending), float(epochs_left @ rate), math.sqrt(max(variance, 0.0)))


@dataclass(frozen=True)
class TimeLeft:
    """A benchmark's time left: per study, for the running round and for all its studies."""

    benchmark: str
    round: int | None  # the running round, 1-based; None when nothing is left
    rounds: int
    studies: dict[str, Left]
    this_round: Left
    total: Left

    def rows(self, workers: int) -> list[dict]:
        """Two rows, the running round's and the whole study's: trials, compute left in
        hours with its standard deviation, wall time left at `workers` workers."""
        return [
            {
                "benchmark": self.benchmark,
                "part": part,
                "round": self.round,
                "rounds": self.rounds,
                "trials": left.trials,
                "compute_hours": None if left.compute_s is None else left.compute_s / 3600,
                "compute_sd_hours": None if left.sd_s is None else left.sd_s / 3600,
                "workers": workers,
                "wall_hours": None if left.wall_s(workers) is None else left.wall_s(workers) / 3600,
            }
            for part, left in (("round", self.this_round), ("study", self.total))
        ]


def time_left(
    benchmark: str, trials_by_study: Mapping[str, Sequence[FrozenTrial]], band_sizes: Mapping
) -> TimeLeft:
    """The time left of a benchmark's studies (`trials_by_study`: name -> its trials;
    `band_sizes`: name -> its band size, the population K its rounds are cut by; a
    study that records none is one round)."""
    round_of, fits = {}, {}
    for name, trials in trials_by_study.items():
        sizes, _ = configurations(trials)
        round_of[name] = rounds(sizes, band_sizes.get(name) or max(len(sizes), 1))
        fits[name] = fit(trials)

    def round_index(name: str, trial: FrozenTrial) -> int:
        return round_of[name][trial.user_attrs.get("config_index", trial.number)]

    pending_rounds = [
        round_index(name, t)
        for name, trials in trials_by_study.items()
        for t in trials
        if t.state in (TrialState.WAITING, TrialState.RUNNING)
    ]
    current = min(pending_rounds, default=None)
    studies = {name: left(trials, fits[name]) for name, trials in trials_by_study.items()}
    this_round = NOTHING
    if current is not None:
        for name, trials in trials_by_study.items():
            members = [t for t in trials if round_index(name, t) == current]
            this_round += left(members, fits[name])
    total = NOTHING
    for part in studies.values():
        total += part
    n_rounds = max((max(r.values(), default=-1) + 1 for r in round_of.values()), default=0)
    return TimeLeft(
        benchmark=benchmark,
        round=None if current is None else current + 1,
        rounds=n_rounds,
        studies=studies,
        this_round=this_round,
        total=total,
    )
