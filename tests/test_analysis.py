"""The analysis on synthetic storages with known effects: loading, top selection, Welch and
Holm, the variant verdicts, failed and diverged trials, and the `odyssey report` files.
tests/test_report.py checks what the report says (criteria, forest fit, checks, stand-ins,
curves, figures, defaults)."""

import math
import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from scipy import stats

from study.analysis import (
    COLUMNS,
    holm,
    load_trials,
    read_results,
    split_study_name,
    summarize,
    top_trials,
    welch,
)
from study.analysis.trials import SkippedStudy
from study.cli import main
from study.errors import UserError
from study.runner.search import SEARCH_SPACE, TrialRecord
from synthetic_study import SHIFTS, fill, quiet
from variants import PAPER_VARIANTS

VARIANTS = [v for v in PAPER_VARIANTS if v in SHIFTS]  # synthetic_storage's, in the paper's order


@pytest.fixture(scope="module")
def trials(synthetic_storage) -> pd.DataFrame:
    return quiet(load_trials, synthetic_storage)


# ---- statistics against independent values ------------------------------------------------


def test_holm_against_hand_computed_values():
    # sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 → max(0.06, 0.04) = 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([np.nan, 0.02, 0.5]), [np.nan, 0.04, 0.5])
    np.testing.assert_allclose(holm([0.6, 0.7]), [1.0, 1.0])
    assert holm([]).shape == (0,)


def test_welch_against_the_textbook_formula_and_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 0.5, 12), rng.normal(1.4, 0.1, 7)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    got_t, got_p = welch(a, b)
    assert got_t == pytest.approx(t)
    assert got_p == pytest.approx(2 * stats.t.sf(abs(t), df))
    assert got_p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert np.isnan(welch(a[:1], b)[1]) and np.isnan(welch(a, [np.nan, 1.0])[0])


def _frame(values, states=None):
    n = len(values)
    return pd.DataFrame({"trial": range(n), "state": states or ["COMPLETE"] * n, "value": values})


@pytest.mark.parametrize(("n", "expected"), [(200, 20), (111, 11), (25, 3), (5, 2), (1, 1)])
def test_top_is_the_best_tenth_at_least_two(n, expected):
    values = np.random.default_rng(n).permutation(n).astype(float)
    top = top_trials(_frame(values))
    assert len(top) == expected
    assert sorted(top.value) == list(range(expected))


def test_top_ranks_only_complete_trials_on_validation_value():
    frame = _frame(
        [5.0, 0.1, np.nan, 3.0, 1.0, 2.0], ["COMPLETE", "FAIL", "FAIL", *["COMPLETE"] * 3]
    )
    assert top_trials(frame).trial.tolist() == [4, 5]


# ---- the storage ----------------------------------------------------------------------------


def test_trials_table_counts_failed_and_diverged(trials):
    assert list(trials.columns) == COLUMNS
    assert str(trials.hidden_size.dtype) == "Int64" and str(trials.population.dtype) == "float64"
    complete = trials[trials.state == "COMPLETE"]
    np.testing.assert_allclose(complete.momentum, 1 - complete.one_minus_momentum)
    assert (complete.preset == "quick").all() and (complete.population == 4).all()
    assert (complete.max_epochs == 20).all() and (complete.loss_reduction == "sum").all()
    assert list(trials.variant.unique()) == VARIANTS
    per_variant = trials.groupby("variant").state.value_counts().unstack()
    assert (per_variant.COMPLETE == 40).all() and (per_variant.FAIL == 3).all()
    assert trials.groupby("variant").diverged.sum().eq(2).all()
    failed = trials[trials.state == "FAIL"]
    assert failed.value.isna().all() and failed.test_metric.isna().all()
    assert failed.learning_rate.notna().all()  # a FAIL row keeps its configuration
    complete = trials[trials.state == "COMPLETE"]
    assert complete.momentum.between(0, 0.99 + 1e-12).all()  # 1 − U_log(0.01, 1)
    assert complete.momentum.min() < 0.3 and complete.momentum.max() > 0.9


def test_requeued_trials_are_told_from_failed_ones(tmp_path):
    url = f"sqlite:///{tmp_path / 'requeued.db'}"
    fill(url, "jsb", {"V": 0.0}, n_trials=5, n_failed=2)  # trials 5 and 6 FAIL
    study = optuna.load_study(study_name="jsb/V", storage=url)
    copy = study.trials[0]  # a complete copy of trial 5, as Optuna's retry records it
    study.add_trial(
        create_trial(
            params=copy.params,
            distributions=copy.distributions,
            value=copy.value,
            user_attrs=copy.user_attrs,
            system_attrs={"retry_history": [5]},
        )
    )
    trials = load_trials(url)
    assert trials.requeued.tolist() == [False] * 5 + [True, False, False]
    out = tmp_path / "report"
    assert main(["report", "--storage", url, "--out", str(out)]) == 0
    # variant, planned (not recorded), complete, running, waiting, failed, requeued, diverged
    assert "| V |  | 6 | 0 | 0 | 1 | 1 | 0 | 0 |" in (out / "REPORT.md").read_text()


def test_nonconforming_studies_are_ignored_with_a_warning(synthetic_storage):
    with pytest.warns(UserWarning, match="not-a-variant-study"):
        load_trials(synthetic_storage)
    assert split_study_name("digits-ctc/CIFG") == ("digits-ctc", "CIFG")
    assert split_study_name("jsb") is None and split_study_name("/V") is None


def test_verdicts_worse_better_and_identical(trials):
    summary = summarize(trials).set_index("variant")
    assert summary.loc["NFG", "direction"] == "worse"
    assert summary.loc["NP", "direction"] == "better"
    assert summary.loc["CIFG", "direction"] == ""
    assert summary.loc["V", "direction"] == "" and np.isnan(summary.loc["V", "p_value"])
    assert summary.significant.tolist() == [False, True, True, False]
    assert summary.significant_holm.tolist() == [False, True, True, False]
    complete = trials[trials.state == "COMPLETE"].groupby("variant").size()
    assert (summary.n_trials == complete[summary.index]).all() and (complete == 40).all()
    assert (summary.n_top == 4).all()
    # Holm over the three tests of the benchmark, on the Welch p-values of the top trials.
    tops = {v: top_trials(trials[trials.variant == v]).test_metric for v in SHIFTS}
    p = [welch(tops[v], tops["V"])[1] for v in ["NFG", "NP", "CIFG"]]
    np.testing.assert_allclose(summary.loc[["NFG", "NP", "CIFG"], "p_holm"], holm(p))
    assert summary.loc["NFG", "top_mean"] == pytest.approx(tops["NFG"].mean())


def test_foreign_storage_with_missing_attributes(tmp_path):
    url = f"sqlite:///{tmp_path / 'foreign.db'}"
    study = optuna.create_study(storage=url, study_name="mnist/V")
    params = {"hidden_size": 50, "learning_rate": 1e-3, "one_minus_momentum": 0.1, "input_noise": 0}
    study.add_trial(
        create_trial(
            params=params,
            distributions=SEARCH_SPACE,
            value=0.5,
            user_attrs={"diverged": "no idea"},
        )
    )
    study.add_trial(
        create_trial(state=TrialState.RUNNING, params=params, distributions=SEARCH_SPACE)
    )
    trials = load_trials(url)
    assert len(trials) == 2 and trials.state.tolist() == ["COMPLETE", "RUNNING"]
    assert trials[["test_metric", "epochs", "seconds", "max_epochs"]].isna().all().all()
    assert trials[["device", "preset", "loss_reduction"]].isna().all().all()
    assert trials.diverged.isna().all() and trials.momentum.tolist() == [0.9, 0.9]
    summary = summarize(trials)
    assert summary.n_top.tolist() == [1] and np.isnan(summary.top_mean.iloc[0])
    # The report still writes every table and says what it could not do.
    assert main(["report", "--storage", url, "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "REPORT.md").read_text()
    assert "Too few complete trials with a test metric for fANOVA" in text
    assert (tmp_path / "report" / "figures" / "mnist-top.png").stat().st_size > 0
    assert "no verdict" not in text and "Protocol: not recorded" in text


def test_foreign_studies_are_skipped_with_one_line_each(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'mixed.db'}"
    fill(url, "jsb", {"V": 0.0}, n_trials=12)
    params = {"hidden_size": 50, "learning_rate": 1e-3, "one_minus_momentum": 0.1, "input_noise": 0}
    two = optuna.create_study(storage=url, study_name="jsb/NFG", directions=["minimize"] * 2)
    two.add_trial(create_trial(params=params, distributions=SEARCH_SPACE, values=[1.0, 2.0]))
    other = optuna.create_study(storage=url, study_name="jsb/CIFG")
    other.add_trial(
        create_trial(params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}, value=1.0)
    )
    with pytest.warns(SkippedStudy) as skipped:
        assert load_trials(url).variant.unique().tolist() == ["V"]
    assert len(skipped) == 2
    capsys.readouterr()
    assert main(["report", "--storage", url, "--out", str(tmp_path / "report")]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "odyssey report: skipped study jsb/NFG: not one of this tool's (its objectives are "
        "minimize, minimize, not one value to minimize)",
        "odyssey report: skipped study jsb/CIFG: not one of this tool's (its parameters are x, "
        "not hidden_size, learning_rate, one_minus_momentum, input_noise)",
    ]


CLI_DOCS = Path(__file__).parent.parent / "docs" / "cli.md"


def documented_names(marker: str) -> list[str]:
    """The names in backquotes between `<!-- marker -->` and `<!-- /marker -->` of
    docs/cli.md."""
    text = CLI_DOCS.read_text()
    start = text.index(f"<!-- {marker} -->")
    return re.findall(r"`(\w+)`", text[start : text.index(f"<!-- /{marker} -->", start)])


def test_one_trial_record_in_storage_table_and_docs(synthetic_storage, synthetic_report):
    record = [f.name for f in fields(TrialRecord)]
    assert documented_names("trial-record") == record
    assert documented_names("trials-columns") == COLUMNS
    header = (synthetic_report / "trials.csv").read_text().splitlines()[0]
    assert header.split(",") == COLUMNS
    # A trial stores its parameters and the record; the table has every parameter, momentum
    # beside them, and every attribute that is one value (not a curve, not a dictionary).
    stored = optuna.load_study(study_name="jsb/V", storage=synthetic_storage).trials[0]
    assert set(stored.params) == set(SEARCH_SPACE) and set(stored.user_attrs) == set(record)
    one_value = [k for k, v in stored.user_attrs.items() if not isinstance(v, (list, dict))]
    assert sorted(c for c in COLUMNS if c in stored.user_attrs) == sorted(one_value)
    params = [c for c in COLUMNS if c in SEARCH_SPACE or c == "momentum"]
    assert params == [*SEARCH_SPACE, "momentum"]


def test_unusable_storages_are_user_errors(tmp_path, synthetic_storage):
    with pytest.raises(UserError, match="no such SQLite file"):
        load_trials(f"sqlite:///{tmp_path / 'missing.db'}")
    with pytest.raises(UserError, match="cannot open storage"):
        load_trials("nosuchdialect://host/db")
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.create_study(storage=empty, study_name="jsb")
    with (
        pytest.raises(UserError, match="no <benchmark>/<variant> study"),
        pytest.warns(UserWarning),
    ):
        load_trials(empty)
    with pytest.raises(UserError, match="timit"), pytest.warns(UserWarning):
        load_trials(synthetic_storage, benchmarks=["timit"])


# ---- odyssey report -------------------------------------------------------------------------


TABLES = [
    "trials", "studies", "summary", "importance", "checks", "marginals", "interactions", "curves",
]  # fmt: skip
KINDS = ["curves", "importance", "interactions", "marginals", "time", "top"]


def test_report_writes_every_file(synthetic_report, trials):
    for name in [*(f"{t}.csv" for t in TABLES), "REPORT.md"]:
        assert (synthetic_report / name).stat().st_size > 0, name
    figures = sorted(p.name for p in (synthetic_report / "figures").iterdir())
    assert figures == sorted(f"jsb-{kind}.{ext}" for kind in KINDS for ext in ("pdf", "png"))
    for kind in KINDS:
        png, pdf = (synthetic_report / "figures" / f"jsb-{kind}.{ext}" for ext in ("png", "pdf"))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert pdf.read_bytes()[:5] == b"%PDF-"
    text = (synthetic_report / "REPORT.md").read_text()
    assert "Diverged trials are COMPLETE results" in text
    assert "NFG is significantly worse than V by the paper's criterion" in text
    assert "Paper on JSB: significantly worse — agrees" in text
    for kind in KINDS:
        assert f"(figures/jsb-{kind}.png)" in text


def test_report_tables_round_trip(synthetic_report, trials):
    results = read_results(synthetic_report)
    pd.testing.assert_frame_equal(results.trials, trials, check_dtype=True)
    assert results.summary.direction.tolist() == ["", "worse", "better", ""]
    assert results.summary.significant_holm.dtype == bool
    for name in TABLES:
        table = getattr(results, name)
        assert len(table) > 0 and table.benchmark.eq("jsb").all(), name
    # Integer hidden sizes are written as integers, not as 57.0.
    text = (synthetic_report / "trials.csv").read_text().splitlines()
    header = text[0].split(",")
    assert text[1].split(",")[header.index("hidden_size")].isdigit()


def test_importance_table_per_variant_then_pooled(synthetic_report):
    lenses = pd.read_csv(synthetic_report / "importance.csv")
    assert list(lenses.columns) == [
        "benchmark", "variant", "lens", "term", "order", "importance", "std", "held_out_r2",
        "held_out", "n_trials",
    ]  # fmt: skip
    assert lenses.variant.unique().tolist() == [*VARIANTS, "all"]
    # PED-ANOVA: main effects only, normalised, no forest; the learning-rate basin leads.
    ped = lenses[lenses.lens == "ped-anova"]
    assert (ped.order == 1).all() and ped["std"].isna().all() and ped.held_out_r2.isna().all()
    assert ped.groupby("variant").importance.sum().to_numpy() == pytest.approx(1.0)
    table = lenses[lenses.lens == "fanova"]
    assert table.variant.unique().tolist() == [*VARIANTS, "all"]
    assert table.groupby("variant").held_out_r2.nunique().eq(1).all()  # one value per forest
    # independent samples (each variant its own configurations): every trial its own
    assert (table.held_out == "out-of-bag").all()
    assert table.groupby("variant").n_trials.first().to_dict() == {
        **dict.fromkeys(VARIANTS, 40), "all": 160,
    }  # fmt: skip
    # The pooled forest has the variant as a fifth feature: 5 main effects and 10 pairs.
    pooled = table[table.variant == "all"].set_index("term")
    assert len(pooled) == 15 and (pooled.order == 2).sum() == 10
    assert "variant" in pooled.index and "learning_rate:variant" in pooled.index
    assert "hidden_size:learning_rate" in pooled.index  # pairs in the search space's order
    # The synthetic metric has a strong learning-rate basin; the variants shift it by 0.3.
    assert pooled.importance.idxmax() == "learning_rate"
    assert (pooled.importance >= 0).all() and pooled.loc["variant", "importance"] > 0.01


def test_report_filters_benchmarks_and_refuses_a_bad_storage(synthetic_storage, tmp_path, capsys):
    assert main(["report", "--storage", f"sqlite:///{tmp_path / 'no.db'}", "--out", "x"]) == 2
    assert "no such SQLite file" in capsys.readouterr().err
    argv = ["report", "--storage", synthetic_storage, "--out", str(tmp_path), "--benchmark", "x"]
    code = quiet(main, argv)
    assert code == 2
