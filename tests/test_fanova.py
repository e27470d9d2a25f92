"""fANOVA against analytic variance decompositions, brute-force integration of the forest's
own predictions, and Optuna's evaluator."""

import itertools

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution

from study.analysis.fanova import SPACE, Fanova, Param
from study.runner.search import SEARCH_SPACE

UNIT3 = [Param(f"x{i}", 0.0, 1.0, log=False) for i in range(3)]


def sampled(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """n configurations drawn as the runner draws them (hidden sizes whole)."""
    frame = pd.DataFrame({p.name: p.from_unit(rng.uniform(size=n)) for p in SPACE})
    return frame.assign(hidden_size=frame.hidden_size.round())


def uniform_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.uniform(size=(n, 3)), columns=["x0", "x1", "x2"])


def shares(model: Fanova) -> pd.Series:
    return model.importance().set_index("term").importance


def test_step_function_matches_analytic_shares():
    # f = a·[x0>.5] + b·[x1>.3] + c·[x0>.5]·[x2>.5]: trees represent it almost exactly.
    a, b, c = 1.0, 1.0, 2.0
    X = uniform_frame(2000)
    A, B, C = (X.x0 > 0.5) * 1.0, (X.x1 > 0.3) * 1.0, (X.x2 > 0.5) * 1.0
    y = a * A + b * B + c * A * C
    parts = {
        "x0": (a + c / 2) ** 2 / 4,
        "x1": b**2 * 0.21,
        "x2": (c / 2) ** 2 / 4,
        "x0:x2": c**2 / 16,
    }
    total = sum(parts.values())
    got = shares(Fanova(X, y, UNIT3, n_trees=16))
    for term in ["x0", "x1", "x2", "x0:x1", "x0:x2", "x1:x2"]:
        assert got[term] == pytest.approx(parts.get(term, 0.0) / total, abs=0.01), term


def test_smooth_function_matches_analytic_shares():
    # f = a·x0 + b·x1² + c·x0·x2 on U(0,1)³ (x0·x2 has main parts .5·x0 and .5·x2).
    a, b, c = 1.0, 2.0, 3.0
    X = uniform_frame(3000, seed=1)
    y = a * X.x0 + b * X.x1**2 + c * X.x0 * X.x2
    parts = {
        "x0": (a + c / 2) ** 2 / 12,
        "x1": b**2 * (1 / 5 - 1 / 9),
        "x2": (c / 2) ** 2 / 12,
        "x0:x2": c**2 / 144,
    }
    total = sum(parts.values())
    got = shares(Fanova(X, y, UNIT3, n_trees=32))
    for term in ["x0", "x1", "x2", "x0:x1", "x0:x2", "x1:x2"]:
        assert got[term] == pytest.approx(parts.get(term, 0.0) / total, abs=0.03), term


def test_one_tree_equals_brute_force_integration_of_its_predictions():
    X = uniform_frame(60, seed=2)
    y = np.sin(6 * X.x0) * X.x1 + X.x2**2 + 0.1 * np.random.default_rng(2).normal(size=60)
    model = Fanova(X, y, UNIT3, n_trees=1)
    tree = model.forest.estimators_[0]
    # Every cell between consecutive thresholds is constant for the tree: evaluate one point each.
    cells = []
    for d in range(3):
        cuts = np.unique(np.r_[0.0, tree.tree_.threshold[tree.tree_.feature == d], 1.0])
        cells.append(((cuts[1:] + cuts[:-1]) / 2, np.diff(cuts)))
    grid = np.array(list(itertools.product(*(mid for mid, _ in cells))))
    f = tree.predict(grid).reshape([len(mid) for mid, _ in cells])
    w = [size for _, size in cells]
    mean = np.einsum("ijk,i,j,k->", f, *w)
    total = np.einsum("ijk,i,j,k->", (f - mean) ** 2, *w)
    marg = [
        np.einsum("ijk,j,k->i", f, w[1], w[2]),
        np.einsum("ijk,i,k->j", f, w[0], w[2]),
        np.einsum("ijk,i,j->k", f, w[0], w[1]),
    ]
    main = [w[d] @ (marg[d] - mean) ** 2 for d in range(3)]
    expected = {f"x{d}": main[d] / total for d in range(3)}
    for a, b in itertools.combinations(range(3), 2):
        other = 3 - a - b
        joint = np.tensordot(f, w[other], axes=([other], [0]))  # axes (a, b)
        pure = joint - marg[a][:, None] - marg[b][None, :] + mean
        expected[f"x{a}:x{b}"] = w[a] @ pure**2 @ w[b] / total
    got = shares(model)
    for term, value in expected.items():
        assert got[term] == pytest.approx(value, rel=1e-9, abs=1e-12), term
    assert (model.importance()["std"] == 0).all()


def test_log_parameters_are_decomposed_in_log_space():
    # log10(lr) ~ U(-6, -2) has variance 16/12; 4·noise with noise ~ U(0, 1) also 16/12.
    rng = np.random.default_rng(3)
    n = 2000
    frame = sampled(rng, n)
    y = np.log10(frame.learning_rate) + 4 * frame.input_noise
    got = shares(Fanova(frame, y, SPACE, n_trees=16))
    assert got["learning_rate"] == pytest.approx(0.5, abs=0.03)
    assert got["input_noise"] == pytest.approx(0.5, abs=0.03)
    assert got["hidden_size"] < 0.01 and got["one_minus_momentum"] < 0.01


def test_main_effects_agree_with_optuna_on_log_transformed_params():
    rng = np.random.default_rng(4)
    n = 200
    frame = sampled(rng, n)
    logs = np.log10(frame[["learning_rate", "hidden_size", "one_minus_momentum"]])
    y = 0.1 * (logs.learning_rate + 3.5) ** 2 - 0.8 * logs.hidden_size + 0.3 * frame.input_noise
    y = y + 0.02 * rng.normal(size=n)

    ours = shares(Fanova(frame, y, SPACE, n_trees=64, seed=0))
    main = ours[[p.name for p in SPACE]]
    main = main / main.sum()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    bounds = {p.name: np.log10([p.low, p.high]) if p.log else (p.low, p.high) for p in SPACE}
    distributions = {name: FloatDistribution(*bounds[name]) for name in bounds}
    transformed = logs.assign(input_noise=frame.input_noise)
    study.add_trials(
        [
            optuna.trial.create_trial(params=dict(row), distributions=distributions, value=value)
            for row, value in zip(transformed.to_dict("records"), y)
        ]
    )
    theirs = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
    )
    assert main["learning_rate"] > 0.2 and main["hidden_size"] > 0.2  # a non-trivial split
    for name, value in theirs.items():
        assert main[name] == pytest.approx(value, abs=0.02), name


def test_marginals_follow_the_function():
    rng = np.random.default_rng(5)
    n = 1000
    frame = sampled(rng, n)
    y = (np.log10(frame.learning_rate) + 4) ** 2 + frame.input_noise
    model = Fanova(frame, y, SPACE, n_trees=16)
    curve = model.marginal("learning_rate", n_points=41)
    assert list(curve.columns) == ["value", "mean", "std", "covered"]
    # 1000 log-uniform draws come within a grid step of both ends, not onto them
    assert curve.covered[1:-1].all()
    rate = SEARCH_SPACE["learning_rate"]  # the grid spans the sampled range
    assert curve.value.iloc[0] == pytest.approx(rate.low)
    assert curve.value.iloc[-1] == pytest.approx(rate.high)
    assert curve.value[curve["mean"].idxmin()] == pytest.approx(1e-4, rel=0.5)
    # Averaging over the other parameters leaves (log lr + 4)² + E[noise] = ... + 0.5.
    expected = (np.log10(curve.value) + 4) ** 2 + 0.5
    assert np.abs(curve["mean"] - expected).max() < 0.25
    assert (curve["std"] >= 0).all() and curve["std"].max() > 0

    x, z, mean, std, covered = model.marginal_2d("learning_rate", "input_noise", n_points=21)
    assert mean.shape == std.shape == covered.shape == (21, 21)
    expected_2d = (np.log10(x)[:, None] + 4) ** 2 + z[None, :]
    assert np.abs(mean - expected_2d).mean() < 0.2


def test_support_is_the_range_the_rows_cover():
    """Hidden sizes only 20 and 40: the rows cover log10(2) = 30.1 % of the log range
    20–200, so of a 61-point grid the first 19 points (i / 60 <= 0.301) are covered."""
    rng = np.random.default_rng(6)
    frame = sampled(rng, 200)
    frame["hidden_size"] = rng.choice([20, 40], 200)
    model = Fanova(frame, np.log10(frame.learning_rate), SPACE, n_trees=8)
    assert model.support("hidden_size") == pytest.approx((0.0, np.log10(2)))
    curve = model.marginal("hidden_size", n_points=61)
    assert curve.covered.sum() == 19 and curve.covered[:19].all()
    assert curve.value[curve.covered].max() <= 40 < curve.value[~curve.covered].min()
    *_, covered = model.marginal_2d("hidden_size", "learning_rate", n_points=61)
    rate = model.marginal("learning_rate", n_points=61).covered.to_numpy()
    assert (covered == curve.covered.to_numpy()[:, None] & rate[None, :]).all()


def test_constant_response_has_no_shares_and_too_few_rows_are_refused():
    X = uniform_frame(20)
    table = Fanova(X, np.ones(20), UNIT3, n_trees=4).importance()
    assert table.importance.isna().all()
    with pytest.raises(ValueError, match="at least 2"):
        Fanova(X.head(1), np.ones(1), UNIT3)


def test_out_of_bag_r2_tells_signal_from_noise():
    X = uniform_frame(400, seed=6)
    signal = Fanova(X, np.sin(6 * X.x0) + X.x1, UNIT3, n_trees=32)
    noise = Fanova(X, np.random.default_rng(6).normal(size=400), UNIT3, n_trees=32)
    assert signal.oob_r2 > 0.9 and noise.oob_r2 < 0.3
    assert noise.oob_r2 == noise.forest.oob_score_
    # The forest fitted to noise still splits "its" variance among the parameters.
    assert shares(noise)[["x0", "x1", "x2"]].sum() > 0.2
