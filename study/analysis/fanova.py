"""Functional ANOVA over a random forest (Hutter, Hoos & Leyton-Brown, ICML 2014).

Each regression tree is a piecewise-constant function on a partition of the search box into
leaf boxes, so its marginals (the function averaged over all but a few parameters) and their
variances are exact sums over leaves. The forest's fraction of variance for a term is the mean
over trees of that tree's fraction; the spread over trees is the uncertainty.

The box is the space the parameters were sampled in (log10 for log-uniform ones), scaled to
the unit cube: integrating a log-uniform parameter on a linear scale would weigh its top
decade as 90 % of its range and understate its importance.

The forest's held-out R² says whether there is anything to decompose: a forest fitted to
noise still splits its variance among the parameters, but predicts held-out trials no better
than their mean. Out-of-bag R² holds a trial out only where no other row shares its
configuration; a forest pooled over the variants of a shared sample has every configuration
once per variant, so an out-of-bag trial has copies of its configuration in the bag and its R²
leaks. That forest takes the variant as a feature (its code, each variant an equal share of
the unit interval, so that averaging over it weighs the variants alike), and, on a shared
sample, its R² is cross-validated with whole configurations held out (`groups`, sklearn's
GroupKFold); on independent samples each trial is its own configuration, and out-of-bag R²
is right.

A forest says nothing about the part of the box no trial reached: `Fanova.support` gives the
range its rows cover in each parameter, and marginals mark their grid points inside it.

The sums over leaves run with one BLAS thread, so that a rerun gives the same bits (threaded
matrix products may add in another order).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from optuna.distributions import FloatDistribution, IntDistribution
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import r2_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from ..benchmarks.metrics import metric_of
from ..runner.search import SEARCH_SPACE


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: its sampled range and whether it was sampled in log10."""

    name: str
    low: float
    high: float
    log: bool

    @classmethod
    def of(cls, name: str, distribution: FloatDistribution | IntDistribution) -> Param:
        """The parameter as Optuna sampled it (the distribution every trial stores)."""
        return cls(name, float(distribution.low), float(distribution.high), distribution.log)

    def to_unit(self, values: np.ndarray) -> np.ndarray:
        lo, hi, x = self.low, self.high, np.asarray(values, dtype=np.float64)
        if self.log:
            lo, hi, x = np.log10(lo), np.log10(hi), np.log10(x)
        return (x - lo) / (hi - lo)

    def from_unit(self, unit: np.ndarray) -> np.ndarray:
        lo, hi = (np.log10(self.low), np.log10(self.high)) if self.log else (self.low, self.high)
        x = lo + np.asarray(unit, dtype=np.float64) * (hi - lo)
        return 10.0**x if self.log else x


# The space the runner samples, with its names: one_minus_momentum, not momentum.
SPACE: tuple[Param, ...] = tuple(Param.of(name, dist) for name, dist in SEARCH_SPACE.items())
VARIANT = "variant"  # the pooled forest's feature beside the hyperparameters
FOLDS = 5  # of the grouped cross-validation
OUT_OF_BAG = "out-of-bag"
GROUPED = f"{FOLDS}-fold, whole configurations held out"


def cover(space: Sequence[Param], frame: pd.DataFrame) -> tuple[Param, ...]:
    """`space` widened where `frame` holds values outside it (a foreign study's wider search)."""
    widened = []
    for p in space:
        values = frame[p.name].to_numpy(dtype=np.float64)
        values = values[np.isfinite(values) & ((values > 0) if p.log else True)]
        low = min(p.low, values.min()) if values.size else p.low
        high = max(p.high, values.max()) if values.size else p.high
        widened.append(Param(p.name, float(low), float(high), p.log))
    return tuple(widened)


@dataclass(frozen=True)
class _Leaves:
    """A tree as leaf boxes in the unit cube: lower/upper corners [L, d] and values [L]."""

    lo: np.ndarray
    hi: np.ndarray
    value: np.ndarray

    @classmethod
    def of(cls, tree, n_features: int) -> _Leaves:
        left, right = tree.children_left, tree.children_right
        feature, threshold = tree.feature, tree.threshold
        lo = np.zeros((tree.node_count, n_features))
        hi = np.ones((tree.node_count, n_features))
        frontier = np.array([0])
        while frontier.size:  # one depth level at a time, vectorised
            split = frontier[feature[frontier] >= 0]
            f, t = feature[split], threshold[split]
            for child, bound, pick in (
                (left[split], hi, np.minimum),
                (right[split], lo, np.maximum),
            ):
                lo[child], hi[child] = lo[split], hi[split]
                bound[child, f] = pick(t, bound[split, f])
            frontier = np.concatenate([left[split], right[split]])
        leaf = feature < 0
        return cls(lo[leaf], hi[leaf], tree.value[leaf, 0, 0])

    @property
    def width(self) -> np.ndarray:
        return self.hi - self.lo

    def weight_without(self, dims: Sequence[int]) -> np.ndarray:
        """Each leaf's value times its volume in the dimensions not in `dims`."""
        keep = [d for d in range(self.lo.shape[1]) if d not in dims]
        return self.value * np.prod(self.width[:, keep], axis=1)

    def contains(self, dim: int, points: np.ndarray) -> np.ndarray:
        """[L, n] indicator: leaf l's interval in `dim` holds point j (closed at 1)."""
        lo, hi = self.lo[:, dim, None], self.hi[:, dim, None]
        inside = (lo <= points) & ((points < hi) | ((hi >= 1.0) & (points >= 1.0)))
        return inside.astype(np.float64)

    def marginal_variances(self, subsets: Sequence[tuple[int, ...]]) -> dict:
        """Variance of the marginal a_S (the tree averaged over all dimensions not in S) for
        each S in `subsets`, and the total variance under the key ().

        With centred leaf values u_l and w_l = u_l · (l's volume outside S), the integral of
        a_S² is Σ_{l,l'} w_l w_l' Π_{d∈S} |l ∩ l'|_d: exact, and quadratic in the leaves.
        """
        volume = np.prod(self.width, axis=1)
        centred = self.value - volume @ self.value
        overlap = {}
        for dim in sorted({d for subset in subsets for d in subset}):
            lo, hi = self.lo[:, dim], self.hi[:, dim]
            length = np.minimum.outer(hi, hi)
            length -= np.maximum.outer(lo, lo)
            overlap[dim] = np.maximum(length, 0.0, out=length)
        variances = {(): float(volume @ centred**2)}
        for subset in subsets:
            keep = [d for d in range(self.lo.shape[1]) if d not in subset]
            w = centred * np.prod(self.width[:, keep], axis=1)
            shared = overlap[subset[0]]
            for d in subset[1:]:
                shared = shared * overlap[d]
            variances[subset] = float(w @ shared @ w)
        return variances


class Fanova:
    """Variance decomposition of `y` over the parameters of `space` (main effects and pairs).

    `frame` holds one column per parameter (in its natural units) and the rows' responses are
    `y`; rows with a missing parameter or response are dropped.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        y: np.ndarray | pd.Series,
        space: Sequence[Param] = SPACE,
        n_trees: int = 64,
        seed: int = 0,
        groups: np.ndarray | pd.Series | None = None,
    ) -> None:
        self.space = cover(space, frame)
        X = np.column_stack([p.to_unit(frame[p.name].to_numpy(float)) for p in self.space])
        y = np.asarray(y, dtype=np.float64)
        keep = np.isfinite(X).all(axis=1) & np.isfinite(y)
        if keep.sum() < 2:
            raise ValueError(f"fANOVA needs at least 2 complete rows, got {int(keep.sum())}")
        self.n_rows = int(keep.sum())
        self._support = np.stack([X[keep].min(axis=0), X[keep].max(axis=0)])  # [2, d], unit
        forest = RandomForestRegressor(
            n_estimators=n_trees, max_depth=64, min_samples_leaf=1, oob_score=True,
            random_state=seed,
        )  # fmt: skip
        with warnings.catch_warnings():  # a few rows without out-of-bag trees: R² from the rest
            warnings.simplefilter("ignore", UserWarning)
            self.forest = forest.fit(X[keep], y[keep])  # on the unit cube of `space`
        self.held_out, self.held_out_r2 = OUT_OF_BAG, self.oob_r2
        if groups is not None:
            self.held_out, self.held_out_r2 = (
                GROUPED,
                _grouped_r2(forest, X[keep], y[keep], np.asarray(groups)[keep]),
            )
        self._trees = [_Leaves.of(t.tree_, len(self.space)) for t in self.forest.estimators_]
        self._importance: pd.DataFrame | None = None

    @property
    def oob_r2(self) -> float:
        """Out-of-bag R² of the forest: how well it predicts trials it was not fitted on.
        Near zero or below, the forest has learned noise and its importances mean nothing."""
        return float(self.forest.oob_score_)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.space]

    def _index(self, name: str) -> int:
        return self.names.index(name)

    def support(self, name: str) -> tuple[float, float]:
        """The lowest and highest value of `name` among the rows the forest was fitted on,
        as fractions of its (log) range: the part of the box the forest has seen."""
        k = self._index(name)
        return float(self._support[0, k]), float(self._support[1, k])

    def _covered(self, name: str, grid: np.ndarray) -> np.ndarray:
        low, high = self.support(name)
        return (grid >= low - 1e-9) & (grid <= high + 1e-9)

    def importance(self) -> pd.DataFrame:
        """term, order (1 or 2), importance (mean fraction of variance), std (over trees)."""
        if self._importance is None:
            with threadpool_limits(1):
                self._importance = self._decompose()
        return self._importance

    def _decompose(self) -> pd.DataFrame:
        d = len(self.space)
        subsets = [(k,) for k in range(d)] + list(itertools.combinations(range(d), 2))
        fractions = []
        for leaves in self._trees:
            variance = leaves.marginal_variances(subsets)
            if variance[()] <= 0:  # a constant tree explains nothing and has no fractions
                continue
            main = [variance[(k,)] for k in range(d)]
            pairs = [max(0.0, variance[(a, b)] - main[a] - main[b]) for a, b in subsets[d:]]
            fractions.append(np.array(main + pairs) / variance[()])
        pairs = subsets[d:]
        terms = self.names + [f"{self.names[a]}:{self.names[b]}" for a, b in pairs]
        table = np.array(fractions).reshape(-1, len(terms))
        if not len(table):  # the response is constant: no variance to attribute
            table = np.full((1, len(terms)), np.nan)
        return pd.DataFrame(
            {
                "term": terms,
                "order": [1] * d + [2] * len(pairs),
                "importance": table.mean(axis=0),
                "std": table.std(axis=0),
            }
        )

    def marginal(self, name: str, n_points: int = 60) -> pd.DataFrame:
        """Predicted response averaged over the other parameters, on a grid of `name`.

        Columns: value (natural units), mean (over trees), std (over trees), covered (the
        value is within the range of the fitted rows, see `support`).
        """
        k = self._index(name)
        grid = np.linspace(0.0, 1.0, n_points)
        with threadpool_limits(1):
            per_tree = np.array([t.weight_without([k]) @ t.contains(k, grid) for t in self._trees])
        return pd.DataFrame(
            {
                "value": self.space[k].from_unit(grid),
                "mean": per_tree.mean(axis=0),
                "std": per_tree.std(axis=0),
                "covered": self._covered(name, grid),
            }
        )

    def marginal_2d(
        self, first: str, second: str, n_points: int = 40
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Grids of `first` and `second` (natural units), the mean and std over trees of
        the predicted response averaged over the other parameters, and whether both values
        are within the fitted rows' range (see `support`), each shaped [first, second]."""
        a, b = self._index(first), self._index(second)
        grid = np.linspace(0.0, 1.0, n_points)
        with threadpool_limits(1):
            per_tree = np.array(
                [
                    t.contains(a, grid).T
                    @ (t.weight_without([a, b])[:, None] * t.contains(b, grid))
                    for t in self._trees
                ]
            )
        covered = self._covered(first, grid)[:, None] & self._covered(second, grid)[None, :]
        return (
            self.space[a].from_unit(grid),
            self.space[b].from_unit(grid),
            per_tree.mean(axis=0),
            per_tree.std(axis=0),
            covered,
        )


def _grouped_r2(forest: RandomForestRegressor, X: np.ndarray, y: np.ndarray, groups) -> float:
    """R² of `forest`'s predictions of each row from a copy fitted without the row's group
    (FOLDS folds of whole groups); NaN with fewer than 2 groups."""
    folds = min(FOLDS, len(np.unique(groups)))
    if folds < 2:
        return np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        predicted = cross_val_predict(forest, X, y, groups=groups, cv=GroupKFold(folds))
    return float(r2_score(y, predicted))


def fit_trials(
    trials: pd.DataFrame,
    n_trees: int = 64,
    seed: int = 0,
    pooled: bool = False,
    shared: bool = False,
) -> Fanova:
    """fANOVA of the test metric over the COMPLETE trials of a trials table (see trials.py),
    as the paper did; diverged trials are results of the search and stay in. Test metrics
    are capped at the benchmark's untrained reference (see `capped_metric`). `pooled`: the
    trials are several variants', and the variant is a feature. `shared`: they trained one
    sample of configurations, and the held-out R² holds whole configurations out (by
    `config_index`; a trial without one is its own); otherwise every trial is a configuration
    of its own and out-of-bag R² holds it out."""
    complete = trials[trials.state == "COMPLETE"]
    if not pooled:
        return Fanova(complete, capped_metric(complete), n_trees=n_trees, seed=seed)
    names = sorted(complete.variant.unique())
    code = complete.variant.map({v: i + 0.5 for i, v in enumerate(names)})
    space = (*SPACE, Param(VARIANT, 0.0, float(len(names)), log=False))
    groups = None
    if shared:
        own = pd.Series(-1 - np.arange(len(complete)), index=complete.index)  # unique, negative
        groups = complete.config_index.astype("Float64").fillna(own).to_numpy(float)
    return Fanova(
        complete.assign(**{VARIANT: code}), capped_metric(complete), space, n_trees, seed, groups
    )


def capped_metric(trials: pd.DataFrame) -> np.ndarray:
    """The test metric of each trial, capped at its benchmark's untrained reference
    (`Metric.cap`: 61.0 nats on JSB): a trial that blew up to 5,000 nats learned as little as
    one at 61, and a forest fitted to the raw values spends itself on a few such trials."""
    levels = trials.benchmark.map({b: metric_of(b).cap for b in trials.benchmark.unique()})
    levels = levels.astype(float).fillna(np.inf).to_numpy()
    return np.minimum(trials.test_metric.to_numpy(float), levels)
