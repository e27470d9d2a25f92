"""What `odyssey report` says, on synthetic storages with known answers: the paper's criterion
beside Holm's, the forests' out-of-bag fit, budget and search-range checks, stand-in
benchmarks, learning curves, readable and reproducible figures, safe defaults, masked
passwords, and the tables the notebooks read."""

import os
import re
import sys
import uuid
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import sqlalchemy
from matplotlib.backends.backend_agg import FigureCanvasAgg
from scipy import stats

from study.analysis import (
    analyse,
    checks,
    default_out,
    figures,
    fit_trials,
    load_storage,
    load_trials,
    read_results,
    write,
)
from study.analysis.checks import is_pressing
from study.cli import main
from study.errors import UserError
from study.storage import display_url, open_storage
from synthetic_study import fill, fill_top

POSTGRES = os.environ.get("ODYSSEY_TEST_POSTGRES_URL")
V = [1.0, 1.1, 1.2, 1.3]
# NFG: p ≈ 0.034 alone, but not after Holm over three tests; NOAF: far worse; CIFG: as V.
TOPS = {
    "V": V,
    "NFG": [x + 0.25 for x in V],
    "NOAF": [x + 1.0 for x in V],
    "CIFG": list(V),
}
EDGE_LR = 9e-3  # the top trials' learning rate: in the top 5 % of log10 [1e-6, 1e-2]


def quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


@pytest.fixture(scope="module")
def tops_storage(tmp_path_factory) -> str:
    """jsb and its stand-in digits-framewise, 4 variants × 40 trials whose 4 best have the
    test metrics TOPS and a learning rate of EDGE_LR; every trial ran all 20 epochs."""
    url = f"sqlite:///{tmp_path_factory.mktemp('tops') / 'study.db'}"
    for benchmark in ("jsb", "digits-framewise"):
        fill_top(url, benchmark, TOPS, n_trials=40, top_params={"learning_rate": EDGE_LR})
    return url


@pytest.fixture(scope="module")
def tops_report(tops_storage, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tops-report")
    assert quiet(main, ["report", "--storage", tops_storage, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def tops(tops_report):
    return read_results(tops_report)


def section(text: str, benchmark: str) -> str:
    """The part of REPORT.md about one benchmark."""
    start = text.index(f"\n## {benchmark} ")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


# ---- 1. both criteria -------------------------------------------------------------------


def test_uncorrected_and_holm_criteria_disagree_as_computed(tops):
    summary = tops.summary[tops.summary.benchmark == "jsb"].set_index("variant")
    p = {v: stats.ttest_ind(TOPS[v], V, equal_var=False).pvalue for v in ["NFG", "NOAF", "CIFG"]}
    assert 0.0167 < p["NFG"] < 0.05 and p["NOAF"] < 0.001 and p["CIFG"] == pytest.approx(1.0)
    np.testing.assert_allclose(summary.loc[list(p), "p_value"], list(p.values()))
    # Holm: the smallest p times 3, the next times 2, the last times 1 (monotone).
    assert summary.loc["NFG", "p_holm"] == pytest.approx(2 * p["NFG"])
    assert summary.loc["NFG", ["significant", "significant_holm", "direction"]].tolist() == [
        True,
        False,
        "worse",
    ]
    assert summary.loc["NOAF", ["significant", "significant_holm"]].tolist() == [True, True]
    assert summary.loc["CIFG", ["significant", "significant_holm", "direction"]].tolist() == [
        False,
        False,
        "",
    ]


def test_report_gives_the_papers_verdict_with_holm_beside(tops_report):
    jsb = section((tops_report / "REPORT.md").read_text(), "jsb")
    assert re.search(
        r"NFG is significantly worse than V by the paper's criterion \(top mean [\d.]+ vs "
        r"[\d.]+, Welch p = 0\.0\d+\); not after Holm's correction \(p = 0\.0[6-9]\d*\)\. "
        r"Paper on JSB: significantly worse — agrees\.",
        jsb,
    )
    assert "NOAF is significantly worse than V by the paper's criterion" in jsb
    assert "after Holm's correction too" in jsb
    assert "CIFG is not significantly different from V" in jsb
    assert "| significant | significant_holm | direction |" in jsb


def test_figure_3_marks_both_criteria(tops):
    fig = figures.top_boxplot(tops.trials, tops.summary, "jsb")
    ax = fig.axes[0]
    order = [t.get_text() for t in ax.get_xticklabels()]
    assert order == [f"{v}\nn = 4" for v in TOPS]  # every variant, n under its name
    stars = {order[round(t.get_position()[0])].split()[0]: t.get_text() for t in ax.texts}
    assert stars == {"NFG": "*", "NOAF": "**"}
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("uncorrected" in t for t in legend) and any("Holm" in t for t in legend)


# ---- 3. forest fit -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    """A pure-noise storage (the metric ignores every parameter), without learning curves."""
    folder = tmp_path_factory.mktemp("noise")
    url = f"sqlite:///{folder / 'study.db'}"
    fill(url, "jsb", {"V": 0.0, "NFG": 0.0, "NP": 0.0}, n_trials=40, pure_noise=True, curves=False)
    out = folder / "report"
    trials, epochs, studies = quiet(load_storage, url)
    quiet(write, analyse(trials, epochs, studies), out, url)
    return out


def test_a_forest_fitted_to_noise_says_so(noise):
    table = pd.read_csv(noise / "importance.csv").query("lens == 'fanova'")
    assert (table.oob_r2 < 0.3).all()
    text = (noise / "REPORT.md").read_text()
    assert text.count("these importances are not meaningful") == 2  # V's table and pooled
    assert "For V, NFG, NP, all the forest's out-of-bag R² is below 0.5" in text
    assert "agrees" not in text.split("### Hyperparameter importance")[1]
    assert "no verdict, the forest does not fit" in text
    marginals = text.split("### Marginal performance")[1]
    assert "V's forest does not fit (out-of-bag R²" in marginals and "no finding" in marginals


def test_a_forest_fitted_to_signal_fits(tmp_path):
    url = f"sqlite:///{tmp_path / 'signal.db'}"
    fill(url, "jsb", {"V": 0.0}, n_trials=80)
    model = fit_trials(load_trials(url))
    assert model.oob_r2 == pytest.approx(model.forest.oob_score_) and model.oob_r2 > 0.7
    trials, epochs, studies = quiet(load_storage, url)
    quiet(write, analyse(trials, epochs, studies), tmp_path / "report", url)
    text = (tmp_path / "report" / "REPORT.md").read_text()
    assert "predicts held-out trials hardly better" not in text
    assert "no finding" not in text.split("### Marginal performance")[1]


# ---- 4. budget and search space -----------------------------------------------------------


def test_budget_shares_have_known_values(tmp_path):
    url = f"sqlite:///{tmp_path / 'budget.db'}"
    # Per variant: trials 0, 1 diverged; every third (2, 5, …) stopped early at epoch 13.
    fill(url, "jsb", {"V": 0.0, "NFG": 0.3}, n_trials=30, n_diverged=2, n_failed=2)
    table = checks(load_trials(url)).set_index("variant")
    assert table.index.tolist() == ["V", "NFG", "all"]
    row = table.loc["all"]
    assert row[["preset", "max_epochs", "patience", "batch_size", "loss_reduction"]].tolist() == [
        "quick",
        "20",
        "5",
        "1",
        "sum",
    ]
    assert row.n_complete == 60 and row.n_top == 6
    assert row.share_early_stop == pytest.approx(20 / 60)
    assert row.share_diverged == pytest.approx(4 / 60)
    assert row.share_epoch_cap == pytest.approx(36 / 60)
    assert row.share_best_at_last == pytest.approx(40 / 60)
    assert row.share_at_chance == 0 and row.chance == 10.98


def test_best_trials_at_the_range_edge_are_flagged(tops, tops_report):
    table = tops.checks[tops.checks.benchmark == "jsb"].set_index("variant")
    assert (table.top_learning_rate_high == 1.0).all() and (table.top_learning_rate_low == 0).all()
    assert (table.edge_flags == "learning_rate high").all()
    assert (table.share_best_at_last == 1.0).all() and (table.share_epoch_cap == 1.0).all()
    assert table.loc["all", "share_at_chance"] == pytest.approx(36 / 40)  # 10 + i ≥ 10.98
    jsb = section((tops_report / "REPORT.md").read_text(), "jsb")
    assert (
        "The best trials press against the top of the learning rate range: 100% of the 16 top "
        "trials have a learning rate in its outer 5% (≥ 0.0063)" in jsb
    )
    assert "The range, not the variant, may be the limit." in jsb
    assert "most trials were still improving when they stopped" in jsb
    assert "90% of complete trials are no better than chance (10.98)" in jsb
    assert "Deviations from the paper's protocol: max epochs 20 (paper: 150)" in jsb


@pytest.mark.parametrize(
    ("k", "n", "pressing"), [(4, 4, True), (1, 4, False), (30, 1000, False), (9, 36, True)]
)
def test_pressing_needs_a_large_and_unlikely_share(k, n, pressing):
    assert is_pressing(k, n) is pressing


# ---- 5. stand-ins -------------------------------------------------------------------------


def test_stand_ins_get_context_not_verdicts(tops_report):
    text = (tops_report / "REPORT.md").read_text()
    digits = section(text, "digits-framewise")
    assert digits.startswith("\n## digits-framewise (a stand-in for the paper's TIMIT)")
    assert "digits-framewise is not TIMIT" in digits
    assert "Paper on TIMIT (context only): significantly worse" in digits
    assert "agrees" not in digits and "differs" not in digits
    assert "(the paper's TIMIT)" not in digits
    assert "agrees" in section(text, "jsb")


# ---- 6. learning curves -------------------------------------------------------------------


def test_learning_curves_are_the_median_and_the_best_trial(tops, tops_report):
    curves = tops.curves[(tops.curves.benchmark == "jsb") & (tops.curves.variant == "NFG")]
    assert curves.epoch.tolist() == list(range(1, 21)) and (curves.n_trials == 40).all()
    # Curves fall to the trial's value at its last epoch.
    values = [x + 0.25 for x in V] + [10.0 + i for i in range(4, 40)]
    first = 1 + 2 * (1 - 1 / 20) ** 2  # the synthetic curve's factor at epoch 1 of 20
    assert curves.median_valid.iloc[0] == pytest.approx(first * np.median(values))
    assert curves.median_valid.iloc[-1] == pytest.approx(np.median(values))
    assert (curves.best_trial == 0).all()
    assert curves.best_valid.iloc[[0, -1]].tolist() == pytest.approx([first * 1.25, 1.25])
    assert curves.best_test.iloc[-1] == pytest.approx(1.25)
    assert (tops_report / "figures" / "jsb-curves.png").is_file()


def test_storages_without_curves_draw_none(noise):
    assert read_results(noise).curves.empty
    assert not (noise / "figures" / "jsb-curves.png").exists()
    assert "No per-epoch values in this storage" in (noise / "REPORT.md").read_text()


# ---- 7. figures ---------------------------------------------------------------------------


def drawn(fig):
    FigureCanvasAgg(fig).draw()
    return fig


def visible_labels(ax, axis):
    low, high = sorted(getattr(ax, f"get_{axis}lim")())
    ticks = getattr(ax, f"get_{axis}ticklabels")()
    return [t for t in ticks if t.get_text() and low <= t.get_position()[axis == "y"] <= high]


def all_figures(results: object) -> list:
    return [
        figures.top_boxplot(results.trials, results.summary, "jsb"),
        figures.importance_bars(results.importance, "jsb"),
        figures.marginal_curves(results.marginals, "jsb"),
        figures.interaction_heatmaps(results.interactions, "jsb"),
        figures.learning_curves(results.curves, "jsb"),
        figures.time_vs_size(results.trials, "jsb"),
    ]


def test_log_axes_have_decade_ticks_that_do_not_overlap(tops):
    checked = 0
    for fig in map(drawn, all_figures(tops)):
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            for axis in "xy":
                if getattr(ax, f"get_{axis}scale")() != "log":
                    continue
                labels = visible_labels(ax, axis)
                assert len(labels) >= 2
                boxes = [t.get_window_extent(renderer) for t in labels]
                assert not any(a.overlaps(b) for a, b in zip(boxes, boxes[1:])), ax.get_title()
                name = getattr(ax, f"get_{axis}label")()
                if name == "learning rate":
                    assert [t.get_text() for t in labels] == [
                        "1e-6", "1e-5", "1e-4", "1e-3", "1e-2",
                    ]  # fmt: skip
                if name == "1 − momentum":
                    assert [t.get_text() for t in labels] == ["0.01", "0.1", "1"]
                checked += 1
    assert checked >= 7


def test_axes_name_the_metric_and_its_unit(tops):
    top, bars, marginals, heat, curves, time = all_figures(tops)
    assert top.axes[0].get_ylabel() == "test NLL per step (nats), lower is better"
    assert "test NLL per step (nats)" in bars.axes[0].get_xlabel()
    assert marginals.axes[0].get_ylabel() == "predicted test NLL per step (nats)"
    assert heat.axes[-1].get_ylabel() == "predicted test NLL per step (nats)"  # a colour bar
    assert curves.axes[0].get_ylabel() == "validation NLL per step (nats)"
    assert time.axes[0].get_ylabel() == "training time per trial-epoch (s)"
    digits = figures.top_boxplot(tops.trials, tops.summary, "digits-framewise")
    assert digits.axes[0].get_ylabel() == "test frame error rate, lower is better"


def test_training_time_is_per_trial_epoch(tops, tops_report):
    fig = figures.time_vs_size(tops.trials, "jsb")
    x, y = np.asarray(fig.axes[0].collections[0].get_offsets()).T
    # The synthetic population of 4 trains for 4 × 0.01 · hidden^1.5 s: 0.01 · hidden^1.5 for
    # each trial, over its 20 epochs.
    np.testing.assert_allclose(y, 0.01 * x**1.5 / 20)
    runs = tops.trials[tops.trials.benchmark == "jsb"]
    median = np.median(0.01 * runs.hidden_size.to_numpy(float) ** 1.5 / 20)
    text = (tops_report / "REPORT.md").read_text()
    assert f"A trial-epoch took {median:.3g} s in the median" in text
    assert "Engine: trials by device: cpu (160)." in text
    assert "cpu" in fig.axes[0].get_title()


def test_identical_runs_give_identical_files(tops_storage, tops_report, tmp_path):
    assert quiet(main, ["report", "--storage", tops_storage, "--out", str(tmp_path)]) == 0
    first = sorted(p.relative_to(tops_report) for p in tops_report.rglob("*") if p.is_file())
    second = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    # 8 tables and REPORT.md; 6 figures per benchmark as PNG and PDF, but no interactions on
    # digits-framewise, whose synthetic error rates above 1 are all capped at 1 (no variance)
    assert first == second and len(first) == 9 + 2 * 12 - 2
    for path in first:
        assert (tops_report / path).read_bytes() == (tmp_path / path).read_bytes(), path


# ---- 8. safe defaults ---------------------------------------------------------------------


def test_default_folder_is_named_after_the_storage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_out("sqlite:///results/odyssey.db") == Path("results/odyssey")
    assert default_out("sqlite:////data/runs/study.db") == Path("/data/runs/study")
    assert default_out("postgresql+psycopg2://me:pw@host/odyssey") == Path("results/odyssey")
    assert default_out("sqlite:///results.db") == Path("results-report")  # never results/
    assert default_out("sqlite:///results/study") == Path("results/study-report")


def test_report_without_out_leaves_results_untouched(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    committed = tmp_path / "results" / "REPORT.md"
    committed.parent.mkdir()
    committed.write_text("the committed reproduction\n")
    fill("sqlite:///results/odyssey.db", "jsb", {"V": 0.0, "NFG": 0.3}, n_trials=10)
    assert quiet(main, ["report", "--storage", "sqlite:///results/odyssey.db"]) == 0
    assert committed.read_text() == "the committed reproduction\n"
    assert sorted(p.name for p in committed.parent.iterdir()) == [
        "REPORT.md",
        "odyssey",
        "odyssey.db",
    ]
    assert (tmp_path / "results" / "odyssey" / "REPORT.md").is_file()
    assert "Report: results/odyssey/REPORT.md" in capsys.readouterr().out


def test_display_url_masks_the_password():
    assert display_url("postgresql+psycopg2://me:s3cret@db:5432/odyssey") == (
        "postgresql+psycopg2://me:***@db:5432/odyssey"
    )
    assert display_url("sqlite:///results/odyssey.db") == "sqlite:///results/odyssey.db"
    assert "s3cret" not in display_url("not a url://me:s3cret@host")


def test_a_password_appears_in_no_output_file(tops, tmp_path):
    url = "postgresql+psycopg2://me:s3cret@db.example:5432/odyssey"
    quiet(write, tops, tmp_path, url)
    text = (tmp_path / "REPORT.md").read_text()
    assert "postgresql+psycopg2://me:***@db.example:5432/odyssey" in text
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or b"s3cret" not in path.read_bytes(), path


def test_storage_errors_mask_the_password_and_hint_at_the_driver(monkeypatch):
    with pytest.raises(UserError) as err:
        open_storage("postgresql+psycopg2://me:s3cret@127.0.0.1:9/none")
    assert "s3cret" not in str(err.value) and "me:***@" in str(err.value)
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # as if the driver were not installed
    with pytest.raises(UserError) as err:
        open_storage("postgresql://me:s3cret@127.0.0.1:9/none")
    message = str(err.value)
    assert "s3cret" not in message and "\n" not in message
    assert "pip install -e '.[postgres]'" in message and "postgresql+psycopg2://" in message


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES, reason="set ODYSSEY_TEST_POSTGRES_URL (.ci/run does)")
def test_postgres_password_appears_in_no_output(tmp_path, capsys):
    url = sqlalchemy.engine.make_url(POSTGRES)
    if not url.password:
        pytest.skip("ODYSSEY_TEST_POSTGRES_URL has no password to hide")
    # CI's password is also its user's name: look for it where a URL would leak it.
    leaks = [f":{url.password}@", url.render_as_string(hide_password=False)]
    benchmark = f"mask{uuid.uuid4().hex[:8]}"  # its own studies, removed afterwards
    fill(POSTGRES, benchmark, {"V": 0.0, "NFG": 0.3}, n_trials=10)
    try:
        argv = ["report", "--storage", POSTGRES, "--benchmark", benchmark, "--out", str(tmp_path)]
        assert quiet(main, argv) == 0
        captured = capsys.readouterr()
        assert not any(leak in captured.out + captured.err for leak in leaks)
        for path in (p for p in tmp_path.rglob("*") if p.is_file()):
            assert not any(leak.encode() in path.read_bytes() for leak in leaks), path
        assert display_url(POSTGRES) in (tmp_path / "REPORT.md").read_text()
    finally:
        for variant in ("V", "NFG"):
            optuna.delete_study(study_name=f"{benchmark}/{variant}", storage=POSTGRES)


# ---- 9. tables for the notebooks ------------------------------------------------------------


def test_read_results_gives_what_the_report_computed(tops_storage, tops):
    analysis = analyse(*quiet(load_storage, tops_storage))
    pd.testing.assert_frame_equal(tops.trials, analysis.trials)
    for name in ["summary", "importance", "checks", "marginals", "interactions", "curves"]:
        ours, theirs = getattr(analysis, name), getattr(tops, name)
        assert list(theirs.columns) == list(ours.columns), name
        pd.testing.assert_frame_equal(
            theirs.reset_index(drop=True), ours.reset_index(drop=True), check_dtype=False
        )
    marginal = analysis.models["jsb", "V"].marginal("learning_rate")
    drawn = tops.marginals.query("benchmark == 'jsb' and variant == 'V'")
    np.testing.assert_allclose(drawn[drawn.param == "learning_rate"]["mean"], marginal["mean"])
    assert set(tops.interactions.variant) == {"V"}  # Figure 6 is V's, as Figure 4


def test_an_older_report_folder_reads_with_empty_new_tables(tops_report, tmp_path):
    for name in ["trials", "summary", "importance"]:
        (tmp_path / f"{name}.csv").write_bytes((tops_report / f"{name}.csv").read_bytes())
    results = read_results(tmp_path)
    assert results.marginals.empty and list(results.checks.columns)[:2] == ["benchmark", "variant"]


def test_no_verdict_of_any_kind_from_a_handful_of_top_trials():
    """p = 0.003 from 3 top trials a side: the p-value is printed, no verdict is given; from 4
    a side the same difference is a verdict."""
    from study.analysis import summarize
    from study.analysis.report import _variant_findings

    def trials(n_top):
        rows = []
        for variant, shift in (("V", 0.0), ("NFG", 1.0)):
            for i in range(10 * n_top):  # the best n_top are the top 10 %
                test = shift + (0.01 * i if i < n_top else 10.0 + i)
                rows.append({"benchmark": "jsb-original", "variant": variant, "trial": i,
                             "state": "COMPLETE", "value": test, "test_metric": test})  # fmt: skip
        return pd.DataFrame(rows)

    few = summarize(trials(3)).set_index("variant")
    assert few.loc["NFG", "p_value"] < 0.01 and few.loc["NFG", "n_top"] == 3
    assert not few.significant.any() and not few.significant_holm.any()
    assert (few.direction == "").all()
    (text,) = _variant_findings(few.reset_index(), "jsb-original")
    assert "no verdict from 3 top trials (at least 4 a side; the paper had 20)" in text
    assert "significantly worse than" not in text and "agrees" not in text
    assert "differs" not in text
    enough = summarize(trials(4)).set_index("variant")
    assert enough.loc["NFG", ["significant", "direction"]].tolist() == [True, "worse"]
    (text,) = _variant_findings(enough.reset_index(), "jsb-original")
    assert "NFG is significantly worse than V" in text and text.endswith("— agrees.")
