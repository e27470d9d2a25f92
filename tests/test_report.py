"""What `odyssey report` says, on synthetic storages with known answers: the paper's criterion
beside Holm's, the forests' out-of-bag fit, budget and search-range checks, stand-in
benchmarks, learning curves, readable and reproducible figures, safe defaults, masked
passwords, and the tables the notebooks read."""

import json
import re
import shutil
import sys
import uuid
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import sqlalchemy
from matplotlib.backends.backend_agg import FigureCanvasAgg
from runs import POSTGRES
from scipy import stats

from study.analysis import (
    Fanova,
    analyse,
    checks,
    default_out,
    figures,
    fit_trials,
    load_storage,
    load_trials,
    read_results,
    summarize,
    write,
)
from study.analysis.budget import protocol_sentence
from study.analysis.checks import PROTOCOL, is_pressing
from study.analysis.state import rounds_line
from study.analysis.tables import complete_rounds
from study.cli import main
from study.errors import UserError
from study.runner import rounds
from study.runner.storage import display_url, open_storage
from synthetic_study import fill, fill_shared, fill_top, quiet, sample
from synthetic_study import metric as synthetic_metric
from synthetic_study import trial as synthetic_trial

V = [1.0, 1.1, 1.2, 1.3]
# NFG: p ≈ 0.034 alone, but not after Holm over three tests; NOAF: far worse; CIFG: as V.
TOPS = {
    "V": V,
    "NFG": [x + 0.25 for x in V],
    "NOAF": [x + 1.0 for x in V],
    "CIFG": list(V),
}
EDGE_LR = 9e-3  # the top trials' learning rate: in the top 5 % of log10 [1e-6, 1e-2]


@pytest.fixture(scope="module")
def tops_storage(tmp_path_factory) -> str:
    """jsb and its stand-in digits-framewise, 4 variants × 40 trials whose 4 best have the
    test metrics TOPS and a learning rate of EDGE_LR; every trial ran all 20 epochs."""
    url = f"sqlite:///{tmp_path_factory.mktemp('tops') / 'study.db'}"
    for benchmark in ("jsb", "digits-framewise"):
        fill_top(url, benchmark, TOPS, n_trials=40, top_params={"learning_rate": EDGE_LR})
    return url


@pytest.fixture(scope="module")
def tops_analysis(tops_storage):
    """What `odyssey report` computes for tops_storage; its forests are fitted once for the
    module (test_identical_runs_give_identical_files checks the command writes the same)."""
    return quiet(analyse, *quiet(load_storage, tops_storage))


@pytest.fixture(scope="module")
def tops_report(tops_storage, tops_analysis, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tops-report")
    quiet(write, tops_analysis, out, tops_storage)
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
    assert (table.held_out_r2 < 0.3).all()
    text = (noise / "REPORT.md").read_text()
    assert text.count("these importances are not meaningful") == 2  # V's table and pooled
    assert "For V, NFG, NP, all the forest's held-out R² is below 0.5" in text
    assert "agrees" not in text.split("### Hyperparameter importance")[1]
    assert "no verdict, the forest does not fit" in text
    marginals = text.split("### Marginal performance")[1]
    assert "V's forest does not fit (held-out R²" in marginals and "no finding" in marginals


def test_a_weak_forest_waits_for_trials_only_while_some_are_to_come(noise, tmp_path):
    """The noise storage records no plan, so nothing is to come: its weak forests are 'not
    meaningful'. With a plan of 80 trials a study, 40 of them complete, they are so 'yet'."""
    line = "Importances of V, NFG, NP, all: the forest's held-out R² is below 0.5, so they"
    finished = (noise / "REPORT.md").read_text().split("Not possible")[1]
    assert finished.startswith(":\n\n- ") and f"- {line} are not meaningful.\n" in finished
    shutil.copy(noise.parent / "study.db", tmp_path / "study.db")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    for variant in ("V", "NFG", "NP"):
        optuna.load_study(study_name=f"jsb/{variant}", storage=url).set_user_attr("n_trials", 80)
    trials, epochs, studies = quiet(load_storage, url)
    quiet(write, analyse(trials, epochs, studies), tmp_path / "report", url)
    planned = (tmp_path / "report" / "REPORT.md").read_text()
    planned = planned.split("Not possible")[1]
    assert planned.startswith(" yet:\n\n- ") and f"- {line} are not meaningful yet.\n" in planned


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
    # Each synthetic trial's own share of its population's time is 0.01 · hidden^1.5 s, over
    # its 20 epochs.
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


def test_read_results_gives_what_the_report_computed(tops_analysis, tops):
    analysis = tops_analysis
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


def test_a_benchmarks_view_is_the_analysis_of_that_benchmark_alone(tops_storage, tops_analysis):
    """Each section of REPORT.md reads one benchmark's view: every table of the two-benchmark
    analysis restricted to one benchmark is what analysing that benchmark's trials alone
    gives."""
    trials, epochs, studies = quiet(load_storage, tops_storage)
    tables = ["studies", "summary", "importance", "checks", "marginals", "interactions", "curves"]
    for benchmark in ["jsb", "digits-framewise"]:
        alone = quiet(
            analyse,
            trials[trials.benchmark == benchmark],
            epochs[epochs.benchmark == benchmark],
            studies[studies.benchmark == benchmark],
        )
        view = tops_analysis.of_benchmark(benchmark)
        assert type(view).__name__ == "Results"  # the fitted forests stay behind
        pd.testing.assert_frame_equal(view.trials, alone.trials)  # rows and index as they were
        for name in tables:
            ours, theirs = getattr(view, name), getattr(alone, name)
            assert set(ours.benchmark) <= {benchmark}, (benchmark, name)
            pd.testing.assert_frame_equal(  # dtype: an empty table's texts are `object`
                ours.reset_index(drop=True),
                theirs.reset_index(drop=True),
                check_dtype=False,
                obj=f"{benchmark} {name}",
            )


def test_an_older_report_folder_reads_with_empty_new_tables(tops_report, tmp_path):
    for name in ["trials", "summary", "importance"]:
        (tmp_path / f"{name}.csv").write_bytes((tops_report / f"{name}.csv").read_bytes())
    results = read_results(tmp_path)
    assert results.marginals.empty and list(results.checks.columns)[:2] == ["benchmark", "variant"]


def test_no_verdict_of_any_kind_from_a_handful_of_top_trials():
    """p = 0.003 from 3 top trials a side: the p-value is printed, no verdict is given; from 4
    a side the same difference is a verdict."""
    from study.analysis import summarize
    from study.analysis.findings import variant_findings as _variant_findings

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


# ---- 10. the report at any stage ------------------------------------------------------------


UNTRAINED = 88 * np.log(2)  # an untrained network on JSB: 0.5 for each of 88 keys


@pytest.fixture(scope="module")
def blown(tmp_path_factory):
    """40 trials each of V and NOAF with a learnable metric, and 5 more NOAF trials planted
    far beyond an untrained network (validation 200-600, test 300-700)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('blown') / 'study.db'}"
    fill(url, "jsb", {"V": 0.0, "NOAF": 0.3}, n_trials=40)
    rng = np.random.default_rng(3)
    planted = [
        synthetic_trial(sample(rng), 200.0 + 100 * i, 300.0 + 100 * i, diverged=False)
        for i in range(5)
    ]
    optuna.load_study(study_name="jsb/NOAF", storage=url).add_trials(planted)
    return url


def test_blown_up_trials_are_flagged_counted_and_shared(blown, capsys):
    trials = quiet(load_trials, blown)
    flagged = trials[trials.blew_up.astype(bool)]
    assert len(flagged) == 5 and set(flagged.variant) == {"NOAF"}
    assert (flagged.value >= 200).all() and not flagged.diverged.any()
    assert (trials[~trials.blew_up.astype(bool)].value < UNTRAINED).all()
    table = checks(trials).set_index("variant")
    assert table.share_blew_up.to_dict() == pytest.approx({"V": 0, "NOAF": 5 / 45, "all": 5 / 85})
    assert main(["status", "--storage", blown, "--json"]) == 0
    rows = {row["study"]: row for row in json.loads(capsys.readouterr().out)["studies"]}
    assert rows["jsb/NOAF"]["blew_up"] == 5 and rows["jsb/V"]["blew_up"] == 0


def test_forests_see_blown_up_trials_capped_at_the_untrained_level(blown):
    trials = quiet(load_trials, blown)
    noaf = trials[(trials.variant == "NOAF") & (trials.state == "COMPLETE")]
    model = fit_trials(noaf)
    by_hand = Fanova(noaf, np.minimum(noaf.test_metric, UNTRAINED))
    pd.testing.assert_frame_equal(model.importance(), by_hand.importance())
    # every leaf of every tree holds a mean of capped values
    assert max(tree.tree_.value.max() for tree in model.forest.estimators_) <= UNTRAINED + 1e-9
    raw = Fanova(noaf, noaf.test_metric)
    assert raw.oob_r2 < model.oob_r2  # five outliers decide an uncapped forest
    # The paper's top-10 % comparison ranks raw values: the planted trials are not at the top.
    summary = summarize(trials).set_index("variant")
    top = noaf.nsmallest(int(summary.loc["NOAF", "n_top"]), "value")
    assert summary.loc["NOAF", "top_mean"] == pytest.approx(top.test_metric.mean())


def test_paired_comparison_finds_a_known_effect(tmp_path):
    """NFG is V + 0.5 + 0.01 i on the ten configurations where V learns (V = 9 + 0.1 i) and
    V + 5, 5.1 and 5.2 on three where both sit above chance (10.98): over all 13
    configurations complete in both, the median difference is the 7th, 0.56, Wilcoxon's exact
    p for 13 positive differences 2 / 2^13, and the sign-test interval runs from the 3rd to the
    11th smallest (P(Binomial(13, 1/2) <= 2) = 0.011 <= 0.025 < P(<= 3)). Configuration 13,
    complete only in V, is left out; NP has three pairs (no verdict); CIFG's study has no
    shared sample (no paired values)."""
    url = f"sqlite:///{tmp_path / 'paired.db'}"
    v = {i: 9 + 0.1 * i for i in range(10)} | {10: 20.0, 11: 21.0, 12: 22.0, 13: 9.5}
    nfg = {i: v[i] + 0.5 + 0.01 * i for i in range(10)} | {10: 25.0, 11: 26.1, 12: 27.2}
    np_ = {i: v[i] - 0.2 for i in range(3)}
    fill_shared(url, "jsb", {"V": v, "NFG": nfg, "NP": np_}, n_configs=14)
    fill_shared(url, "jsb", {"CIFG": v}, n_configs=14, shared=False)
    trials, epochs, studies = quiet(load_storage, url)
    summary = summarize(trials, studies).set_index("variant")
    row = summary.loc["NFG"]
    d = np.sort([0.5 + 0.01 * i for i in range(10)] + [5.0, 5.1, 5.2])
    assert row.n_paired == 13 and row.paired_median == pytest.approx(0.56)
    assert [row.paired_low, row.paired_high] == pytest.approx([d[2], d[10]])
    assert row.wilcoxon_p == pytest.approx(2 / 2**13)
    # Holm over NFG's and NP's p (NP: three differences of -0.2, p = 2 / 2^3): twice NFG's
    assert summary.loc["NP", "wilcoxon_p"] == pytest.approx(0.25)
    assert row.paired_p_holm == pytest.approx(2 * 2 / 2**13)
    assert row.paired_direction == "worse"
    # Both fail on the same three configurations: no discordant pair, McNemar's p is 1.
    assert [row.fail_rate, row.fail_rate_ref, row.fail_p] == pytest.approx([3 / 13, 3 / 13, 1])
    assert row.n_learned == 10 and row.learned_median == pytest.approx(0.545)
    assert summary.loc["NP", "n_paired"] == 3 and summary.loc["NP", "paired_direction"] == ""
    assert summary.loc["NP", "paired_median"] == pytest.approx(-0.2)
    assert np.isnan(summary.loc["NP", "paired_low"])  # no 95 % interval from 3 values
    assert pd.isna(summary.loc["CIFG", "n_paired"]) and np.isnan(summary.loc["CIFG", "wilcoxon_p"])
    # Only two top trials a side: the paper's comparison gives no verdict where pairs do.
    assert not row.significant and row.paper_agreement == "inconclusive"
    out = tmp_path / "report"
    quiet(write, analyse(trials, epochs, studies, n_trees=8), out, url)
    text = (out / "REPORT.md").read_text()
    assert "### Paired comparison" in text and "(figures/jsb-paired.png)" in text
    assert "configuration by configuration it is worse (+0.56, Holm p = 0.00049)" in text
    opening = text[: text.index("## State of the study")]
    assert "| NFG | worse | no verdict from 2 top trials (" in opening
    assert "| **worse** (+0.56 [+0.52, +5.00], Holm p 0.00049) | 23% vs 23% (Holm p 1); " in opening
    assert "CIFG" not in text.split("### Paired comparison")[1].split("###")[0]


def test_storages_without_a_shared_sample_have_no_paired_values(tops, tops_report):
    assert tops.summary.n_paired.isna().all() and tops.summary.wilcoxon_p.isna().all()
    text = (tops_report / "REPORT.md").read_text()
    assert "### Paired comparison" not in text
    assert "do not share one sample of configurations" in text


def test_state_of_the_study_comes_first(tmp_path):
    """20 planned configurations in bands of 5, ordered in rounds as the runner orders them:
    V has rounds 0 and 1 and two more complete, NFG round 0, two of round 1 and one running:
    one round is complete in every variant."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    rng = np.random.default_rng(0)  # fill_shared's sample
    sizes = {i: sample(rng)["hidden_size"] for i in range(20)}
    round_of = rounds.rounds(sizes, 5)
    by_round = [sorted(i for i, r in round_of.items() if r == k) for k in range(4)]
    v = {i: 9 + 0.01 * i for i in by_round[0] + by_round[1] + by_round[2][:2]}
    nfg = {i: 9.2 + 0.01 * i for i in by_round[0] + by_round[1][:2]}
    fill_shared(
        url, "jsb", {"V": v, "NFG": nfg}, n_configs=20, band_size=5,
        running={"NFG": by_round[1][2:3]},
    )  # fmt: skip
    trials, epochs, studies = quiet(load_storage, url)
    assert studies.planned.tolist() == [20, 20] and studies.band_size.tolist() == [5, 5]
    assert complete_rounds(trials, studies) == 1
    assert rounds_line(3, 5).startswith("Rounds complete: 3 (a round is one band of up to 5")
    quiet(write, analyse(trials, epochs, studies, n_trees=8), tmp_path, url)
    text = (tmp_path / "REPORT.md").read_text()
    assert text.index("## State of the study") < text.index("## How to read this report")
    state = text[text.index("## State of the study") : text.index("## How to read")]
    assert "19 of 40 planned trials are complete; 1 running, 20 waiting" in state
    assert "Rounds complete: 1 (a round is one band of up to 5 configurations" in state
    assert "No verdict of any kind yet: the study is too small" not in state  # pairs can
    sizes = trials[trials.state == "COMPLETE"].hidden_size
    assert f"hidden sizes {sizes.min()}–{sizes.max()} of the searched 20–200" in state
    assert "| V | 20 | 12 | 0 | 8 | 0 | 0 | 0 | 0 |" in state
    assert "| NFG | 20 | 7 | 1 | 12 | 0 | 0 | 0 | 0 |" in state
    assert "no verdict for NFG: fewer than 4 top trials on a side" in state
    assert "The paired comparison with V: no verdict" not in state  # 7 pairs are enough
    # no verdict of any kind from 2 top trials a side: no stars, no colour
    fig = figures.top_boxplot(trials, analyse(trials, epochs, studies, n_trees=8).summary, "jsb")
    assert not [t for t in fig.axes[0].texts if "*" in t.get_text()]


def test_hidden_sizes_not_covered_get_no_verdict(tmp_path):
    """V's trials reach only 20–36 units (at most 25.5 % of the log range 20–200)."""
    url = f"sqlite:///{tmp_path / 'narrow.db'}"
    rng = np.random.default_rng(4)
    made = []
    for _ in range(60):
        params = sample(rng) | {"hidden_size": int(rng.integers(20, 37))}
        value = synthetic_metric(params) + 0.02 * rng.normal()
        made.append(synthetic_trial(params, value, value))
    study = optuna.create_study(storage=url, study_name="jsb-original/V")
    study.add_trials(made)
    trials, epochs, studies = quiet(load_storage, url)
    analysis = analyse(trials, epochs, studies, n_trees=16)
    sizes = trials.hidden_size.astype(float)
    share = np.log10(sizes.max() / sizes.min())  # the log range 20–200 is one decade
    row = analysis.checks.set_index("variant").loc["V"]
    assert row.cover_hidden_size == pytest.approx(share) and share < 0.8
    assert row.cover_learning_rate > 0.8
    marginal = analysis.marginals.query("variant == 'V' and param == 'hidden_size'")
    assert marginal[marginal.covered].value.between(sizes.min() - 1e-9, sizes.max() + 1e-9).all()
    assert marginal[~marginal.covered].value.gt(sizes.max()).any()
    quiet(write, analysis, tmp_path / "report", url)
    text = (tmp_path / "report" / "REPORT.md").read_text()
    assert f"Hidden size: V's complete trials span {share:.0%} of its log range" in text
    ranked = next(line for line in text.splitlines() if line.startswith("- Ranked by"))
    assert "not covered yet" in ranked and "agrees" not in ranked and "differs" not in ranked
    assert "(paper: bigger networks help, with diminishing returns; not covered yet)" in text
    assert "(paper: more than two thirds — " in text  # the learning rate is covered


def test_ped_anova_finds_the_one_parameter_that_matters(tmp_path):
    """A metric of the input noise alone: both lenses give it nearly all the importance."""
    url = f"sqlite:///{tmp_path / 'noise.db'}"
    rng = np.random.default_rng(8)
    made = []
    for _ in range(80):
        params = sample(rng)
        made.append(synthetic_trial(params, 5 * params["input_noise"], 5 * params["input_noise"]))
    optuna.create_study(storage=url, study_name="jsb/V").add_trials(made)
    analysis = analyse(*quiet(load_storage, url), n_trees=16)
    table = analysis.importance.query("variant == 'V' and order == 1")
    for lens in ("fanova", "ped-anova"):
        shares = table[table.lens == lens].set_index("term").importance
        assert shares.idxmax() == "input_noise" and shares["input_noise"] > 0.5, lens


def test_parameter_counts_at_100_units_follow_the_formula(tops_report):
    jsb = section((tops_report / "REPORT.md").read_text(), "jsb")
    # N = 100, M = K = 88: V 4·100·189 + 3·100 = 75,900; NFG and CIFG 3·100·189 + 2·100;
    # NOAF as V; the output layer 100·88 + 88.
    assert "| V | 75,900 | 8,888 | 84,788 |" in jsb
    assert "| NFG | 56,900 | 8,888 | 65,788 |" in jsb and "| CIFG | 56,900 |" in jsb
    assert "| NOAF | 75,900 |" in jsb


def test_curves_show_the_range_where_variants_differ(tops):
    fig = drawn(figures.learning_curves(tops.curves, "jsb"))
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    curves = tops.curves[tops.curves.benchmark == "jsb"]
    assert low < curves.best_valid.min() and 10.98 < high  # the chance line shows
    assert high < curves.median_valid.max()  # the first epochs' 3 × values run off the top
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_a_variant_without_trials_is_in_figure_3(tops):
    trials = pd.concat(
        [
            tops.trials,
            tops.trials.query("benchmark == 'jsb'")
            .head(1)
            .assign(variant="FGR", state="WAITING", value=np.nan),
        ]
    )
    fig = figures.top_boxplot(trials, tops.summary, "jsb")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "FGR\nn = 0"
    assert [t.get_text() for t in ax.texts if t.get_text() == "no trials yet"] == ["no trials yet"]


def test_every_protocol_field_that_differs_from_the_papers_is_a_deviation():
    """The demo's clipping and sequence cap are named beside its budget; what the paper's
    preset leaves at none and the trials did not record is not."""
    row = {key: "" for key in PROTOCOL} | {
        "preset": "demo",
        "max_epochs": "16",
        "patience": "4",
        "batch_size": "1",
        "max_sequences": "40",
        "init_std": "0.1",
        "clip_norm": "1000.0",
        "loss_reduction": "sum",
    }
    text = protocol_sentence(pd.Series(row))
    assert text.endswith(
        "Deviations from the paper's protocol: max epochs 16 (paper: 150), patience 4 "
        "(paper: 15), max sequences 40 (paper: none), clip norm 1000.0 (paper: none)."
    ), text
