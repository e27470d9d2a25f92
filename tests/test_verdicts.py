"""Verdicts exactly as strong as their evidence, on synthetic shared-sample storages with
planted effects: a small effect that does not survive Holm, a variant that fails more often
but is better where it learns, a configuration effect that only a leaking forest explains, a
true effect too small for 10 top trials a side; the paper's agreement, the coverage of the
rounds, and the report's first screen."""

import contextlib
import io
import warnings

import matplotlib.pyplot as plt
import numpy as np
import optuna
import pandas as pd
import pytest
from scipy import stats

from study.analysis import (
    analyse,
    answer,
    figures,
    fit_trials,
    forests,
    load_storage,
    state,
    summarize,
    write,
)
from study.analysis.findings import reconciliation, variant_findings, verdict_table
from study.analysis.forests import _dominant_variant
from study.analysis.stats import agreement
from study.analysis.tables import variance_by_variant
from study.cli import main
from study.runner import rounds
from synthetic_study import fill_shared, fill_top, quiet, sample

CHANCE = 10.98  # jsb's


def storage(tests: dict, n_configs: int, **kwargs):
    """trials, epochs and studies of `fill_shared`'s studies, in memory (a SQLite file takes
    seconds to fill)."""
    memory = optuna.storages.InMemoryStorage()
    fill_shared(memory, "jsb", tests, n_configs=n_configs, **kwargs)
    return quiet(load_storage, memory)


def tops(planted: dict, benchmark: str = "jsb", memory=None):
    """`fill_top`'s studies of 40 trials each, in memory: trials, epochs, studies."""
    memory = memory or optuna.storages.InMemoryStorage()
    fill_top(memory, benchmark, planted, n_trials=40)
    return quiet(load_storage, memory)


def test_a_small_effect_that_does_not_survive_holm():
    """NIG − V is ±0.001 k (k = 1 … 30, negative for k = 13, 27–30): Wilcoxon's exact p is
    0.029, below 0.05, and the sign-test interval excludes 0; NFG's and NOG's differences
    alternate in sign (p near 1). Holm over the three multiplies the smallest p by 3: 0.088,
    so no paired direction."""
    v = {i: 9 + 0.05 * i for i in range(30)}
    signs = np.ones(30)
    signs[[12, 26, 27, 28, 29]] = -1
    nig = {i: v[i] + signs[i] * 0.001 * (i + 1) for i in range(30)}
    alternating = {i: v[i] + (-1) ** i * 0.001 * (i + 1) for i in range(30)}
    trials, _, studies = storage({"V": v, "NIG": nig, "NFG": alternating, "NOG": alternating}, 30)
    summary = summarize(trials, studies).set_index("variant")
    row = summary.loc["NIG"]
    assert row.n_paired == 30 and row.wilcoxon_p < 0.05
    assert row.paired_p_holm == pytest.approx(3 * row.wilcoxon_p) and row.paired_p_holm > 0.05
    d = np.sort(signs * 0.001 * np.arange(1, 31))
    # n = 30: P(Binomial(30, 1/2) <= 9) = 0.021 <= 0.025 < P(<= 10): the 10th to 21st smallest
    assert [row.paired_low, row.paired_high] == pytest.approx([d[9], d[20]])
    assert row.paired_low > 0 and row.paired_direction == ""
    assert summary.loc["NFG", "wilcoxon_p"] > 0.5 and summary.loc["NFG", "paired_direction"] == ""
    assert row.fail_rate == 0 and row.fail_rate_ref == 0 and row.fail_p == 1
    assert row.n_learned == 30 and row.learned_median == row.paired_median
    assert not summary.provisional.any()  # every planned configuration is complete


def test_a_variant_that_fails_more_often_but_is_better_where_it_learns():
    """Of 40 configurations, NOAF fails (stays above chance) on 16 where V learns, V on 2
    where NOAF learns; on the other 22 NOAF is V − 0.3. McNemar's exact p is the two-sided
    binomial of 2 in 18: 2 (1 + 18 + 153) / 2^18."""
    v = {i: 9 + 0.01 * i for i in range(40)} | {0: 20.0, 1: 20.5}
    noaf = {0: 9.0, 1: 9.1} | {i: 30.0 + i for i in range(2, 18)}
    noaf |= {i: v[i] - 0.3 for i in range(18, 40)}
    trials, epochs, studies = storage({"V": v, "NOAF": noaf}, 40)
    summary = summarize(trials, studies)
    row = summary.set_index("variant").loc["NOAF"]
    assert row.n_paired == 40
    assert [row.fail_rate, row.fail_rate_ref] == pytest.approx([16 / 40, 2 / 40])
    assert row.fail_p == pytest.approx(2 * (1 + 18 + 153) / 2**18)
    assert row.n_learned == 22 and row.learned_median == pytest.approx(-0.3)
    assert row.learned_high == pytest.approx(-0.3)  # every difference where both learn
    # 24 of the 40 differences are negative: the median is one of the 22 at -0.3
    assert row.paired_median == pytest.approx(-0.3)
    (said,) = [reconciliation(r) for r in summary.itertuples() if r.variant == "NOAF"]
    assert "it fails more often (40% of configurations against 5%, McNemar p = 0.0013, " in said
    assert "and where both learn it is better (-0.3, 95 % interval -0.3 to -0.3)" in said
    failures = verdict_table(summary, "jsb").set_index("variant").loc["NOAF", "failures"]
    assert failures == "40% vs 5% (Holm p 0.0013); both learned: -0.30 [-0.30, -0.30]"


def test_a_trial_with_no_finite_metric_stays_in_its_pair_as_a_failure():
    """The runner stores a trial that learned nothing (no finite validation metric) at +inf.
    MGU is at +inf at 4 of 30 configurations, V at the first of them too; elsewhere MGU is
    V - 0.1. All 30 stay paired: MGU fails on 4 and V on 1 (McNemar: 3 discordant, p =
    2 / 2^3), two trials at +inf differ by 0 (not NaN), and the median is -0.1."""
    v = {i: 9 + 0.01 * i for i in range(30)}
    mgu = {i: v[i] - 0.1 for i in range(30)} | dict.fromkeys(range(4), np.inf)
    trials, _, studies = storage({"V": v | {0: np.inf}, "MGU": mgu}, 30)
    row = summarize(trials, studies).set_index("variant").loc["MGU"]
    assert row.n_paired == 30 and row.n_learned == 26
    assert [row.fail_rate, row.fail_rate_ref, row.fail_p] == pytest.approx([4 / 30, 1 / 30, 0.25])
    assert row.paired_median == pytest.approx(-0.1) and row.learned_median == pytest.approx(-0.1)
    assert np.isfinite(row.wilcoxon_p)


def test_a_failure_rate_that_does_not_survive_holm():
    """V learns on all 40 configurations; NFG and NIG fail on 6 of them (McNemar: 6
    discordant, p = 2 / 2^6 = 0.031 each), NOAF on 10 (p = 2 / 2^10). Holm over the three
    multiplies NOAF's by 3 and the other two by 2: 0.0625, so only NOAF fails more often."""
    v = {i: 9 + 0.01 * i for i in range(40)}
    six = v | dict.fromkeys(range(6), 20.0)
    noaf = v | dict.fromkeys(range(10), 20.0)
    trials, _, studies = storage({"V": v, "NFG": six, "NIG": six, "NOAF": noaf}, 40)
    summary = summarize(trials, studies)
    rows = summary.set_index("variant")
    assert rows.fail_p[["NFG", "NIG", "NOAF"]].tolist() == pytest.approx(
        [2 / 2**6] * 2 + [2 / 2**10]
    )
    assert rows.fail_p_holm[["NFG", "NIG", "NOAF"]].tolist() == pytest.approx(
        [2 * 2 / 2**6] * 2 + [3 * 2 / 2**10]
    )
    said = {r.variant: reconciliation(r) for r in summary.itertuples() if r.variant != "V"}
    assert "fails more often" not in said["NFG"] and "fails more often" not in said["NIG"]
    assert "it fails more often (25% of configurations against 0%, McNemar p = " in said["NOAF"]
    table = verdict_table(summary, "jsb").set_index("variant").failures
    assert table["NFG"].startswith("15% vs 0% (Holm p 0.062)")


def test_a_configuration_effect_only_a_leaking_forest_explains(tmp_path):
    """The test metric is a random offset per configuration, the same in every variant and
    independent of every parameter: out-of-bag, each trial has its configuration's copies in
    the bag and the pooled forest seems to predict it; with whole configurations held out it
    predicts nothing."""
    offsets = np.random.default_rng(1).uniform(0, 2, 40)
    tests = {name: {i: 9 + offsets[i] for i in range(40)} for name in ("V", "NIG", "NFG")}
    url = f"sqlite:///{tmp_path / 'study.db'}"
    fill_shared(url, "jsb", tests, n_configs=40)
    trials, epochs, studies = quiet(load_storage, url)
    model = fit_trials(trials, n_trees=32, pooled=True, shared=True)
    assert model.oob_r2 > 0.9  # the leak
    assert model.held_out == "5-fold, whole configurations held out"
    assert model.held_out_r2 < 0.2
    assert fit_trials(trials[trials.variant == "V"], n_trees=32).held_out_r2 < 0.2
    analysis = analyse(trials, epochs, studies, n_trees=8)
    pooled = analysis.importance.query("lens == 'fanova' and variant == 'all'")
    assert (pooled.held_out_r2 < figures.FIT_MEANINGFUL).all()
    assert "variant" in set(pooled.term)
    assert (pooled.held_out == "5-fold, whole configurations held out").all()
    out = tmp_path / "report"
    quiet(write, analysis, out, url)
    text = (out / "REPORT.md").read_text()
    pooled_part = text.split("#### All variants pooled (the variant a feature)")[1]
    assert "held-out R² = " in pooled_part.split("####")[0]
    assert "these importances are not meaningful" in pooled_part.split("####")[0]
    assert "pooled over all variants:" not in text  # no pooled number in V's sentences


def test_a_variant_that_blows_up_carries_the_pooled_forest():
    """V scores 10 on 10 configurations, NOAF too but on two, where it blows up to 5,000
    (capped at 61.0, the untrained reference): about the pooled mean 15.1, NOAF's squares
    are 8 (5.1)² + 2 (45.9)² of 18 (5.1)² + 2 (45.9)², so the report says the pooled
    importances describe where NOAF fails. Without the blow-ups it says nothing."""
    noaf = {i: 10.0 for i in range(8)} | {8: 5000.0, 9: 5000.0}
    trials, epochs, studies = storage({"V": dict.fromkeys(range(10), 10.0), "NOAF": noaf}, 10)
    shares = variance_by_variant(trials)
    expected = (8 * 5.1**2 + 2 * 45.9**2) / (18 * 5.1**2 + 2 * 45.9**2)
    assert shares.index.tolist() == ["NOAF", "V"]
    assert shares.share.to_numpy() == pytest.approx([expected, 1 - expected])
    assert shares.trials.tolist() == [10, 10]
    view = quiet(analyse, trials, epochs, studies, n_trees=8).of_benchmark("jsb")
    text = "\n".join(forests.importance_section(view, "jsb", lambda fig, kind: plt.close(fig)))
    pooled = text.split("#### All variants pooled (the variant a feature)")[1]
    assert f"NOAF's trials carry {expected:.0%} of the pooled forest's variance" in pooled
    assert "the pooled importances describe where NOAF fails to learn" in pooled

    tests = {"V": {i: 9 + 0.1 * i for i in range(10)}}
    tests["NOAF"] = {i: 9.05 + 0.1 * i for i in range(10)}  # more than half, evenly spread
    trials, *_ = storage(tests, 10)
    assert 0.5 < variance_by_variant(trials).share["NOAF"] < 0.6
    assert _dominant_variant(trials) == []


def test_a_finished_study_gives_the_answer_not_the_answer_so_far():
    """Every planned configuration complete: the first screen is the answer, and the rounds
    table says nothing of bands not sampled yet."""
    tests = {"V": {i: 9 + 0.1 * i for i in range(10)}, "NIG": {i: 9.2 for i in range(10)}}
    trials, epochs, studies = storage(tests, 10)
    view = quiet(analyse, trials, epochs, studies, n_trees=8).of_benchmark("jsb")
    assert answer.section(view, "jsb")[0].startswith("## The answer: jsb")
    assert "not sampled yet" not in "\n".join(state._coverage_lines(view))


def welch_power(diff: float, std: float, n: int, draws: int = 20_000) -> float:
    """Welch's power at `diff` for two normal samples of n with one std, by simulation."""
    rng = np.random.default_rng(0)
    a = rng.normal(diff, std, (draws, n))
    b = rng.normal(0.0, std, (draws, n))
    return float((stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue < 0.05).mean())


def test_a_small_true_effect_ten_top_trials_cannot_see():
    """NFG is V + 0.05 (+ 0.0001 i) on each of 100 configurations, V 9 + 0.4 z: the paired
    test sees it; Welch's test on 10 top trials a side cannot (its 80 % power needs a larger
    difference), so the paper's 'worse' is inconclusive here, not contradicted."""
    z = np.random.default_rng(2).normal(size=100)
    v = {i: 9 + 0.4 * z[i] for i in range(100)}
    nfg = {i: v[i] + 0.05 + 0.0001 * i for i in range(100)}
    trials, epochs, studies = storage({"V": v, "NFG": nfg}, 120)
    summary = summarize(trials, studies).set_index("variant")
    row = summary.loc["NFG"]
    assert row.n_top == 10 and row.top_overlap == 10  # the same ten configurations
    assert row.p_value > 0.05 and row.direction == ""
    assert row.mde > 0.05 and row.paper_agreement == "inconclusive"
    assert welch_power(row.mde, row.top_std, 10) == pytest.approx(0.8, abs=0.02)
    assert row.paired_direction == "worse" and row.paired_low > 0
    assert summary.provisional.all()  # 100 of 120 planned configurations
    table = verdict_table(summary.reset_index(), "jsb").set_index("variant").loc["NFG"]
    assert table["paper on JSB"] == "worse"
    assert table["Welch (top 10 %)"].startswith("no difference seen (")
    assert table["Welch (top 10 %)"].endswith(f"detectable: {row.mde:.2f})")
    assert table.agreement == "inconclusive (provisional)"
    (said,) = [s for s in variant_findings(summary.reset_index(), "jsb") if s.startswith("NFG")]
    assert "significantly worse — inconclusive (Welch detects a difference of" in said
    assert said.endswith("evidence against the paper), provisional until the study is complete.")


@pytest.mark.parametrize(
    "direction, paper, enough, expected",
    [
        ("worse", "worse", True, "agrees"),
        ("", "", True, "agrees"),
        ("", "worse", True, "inconclusive"),  # no evidence is not disagreement
        ("worse", "", True, "differs"),  # an effect the paper did not find
        ("better", "worse", True, "differs"),  # the opposite one
        ("", "", False, "inconclusive"),
        ("worse", None, True, ""),  # the paper has no verdict
    ],
)
def test_agreement_needs_positive_evidence_to_differ(direction, paper, enough, expected):
    assert agreement(direction, paper, enough) == expected


def test_agreement_with_the_paper_on_its_own_dataset_only():
    """Top trials planted: NIG worse (the paper: not different), NOAF better (the paper:
    worse), NFG worse (as the paper), CIFG as V; on the stand-in, context only."""
    base = [1.0, 1.1, 1.2, 1.3]
    planted = {
        "V": base,
        "NIG": [x + 1 for x in base],
        "NOAF": [x - 1 for x in base],
        "NFG": [x + 1 for x in base],
        "CIFG": list(base),
    }
    memory = optuna.storages.InMemoryStorage()
    fill_top(memory, "digits-framewise", {v: planted[v] for v in ("V", "NOAF")}, n_trials=40)
    trials, _, studies = tops(planted, memory=memory)
    summary = summarize(trials, studies)
    jsb = summary[summary.benchmark == "jsb"].set_index("variant").paper_agreement
    assert jsb.to_dict() == {
        "V": "", "NIG": "differs", "NOAF": "differs", "NFG": "agrees", "CIFG": "agrees",
    }  # fmt: skip
    assert (summary[summary.benchmark == "digits-framewise"].paper_agreement == "").all()
    assert not summary.provisional.any()  # no plan recorded: the study is what it is
    assert summary.top_overlap.isna().all() and summary.n_paired.isna().all()  # no shared sample


@pytest.fixture(scope="module")
def bands(tmp_path_factory):
    """20 configurations in bands of 5; rounds 1 and 3 complete in V and NFG, nothing else;
    reported by the CLI into a results/ folder with a README."""
    folder = tmp_path_factory.mktemp("bands")
    rng = np.random.default_rng(0)  # fill_shared's sample
    sizes = {i: sample(rng)["hidden_size"] for i in range(20)}
    round_of = rounds.rounds(sizes, 5)
    done = [i for i, r in round_of.items() if r in (0, 2)]
    tests = {"V": {i: 9 + 0.01 * i for i in done}, "NFG": {i: 9.1 + 0.01 * i for i in done}}
    url = f"sqlite:///{folder / 'bands.db'}"
    fill_shared(url, "jsb", tests, n_configs=20, band_size=5)
    results = folder / "results"
    results.mkdir()
    (results / "README.md").write_text("the study in two minutes\n")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert quiet(main, ["report", "--storage", url, "--out", str(results / "study")]) == 0
    text = (results / "study" / "REPORT.md").read_text()
    return url, sizes, round_of, text, stdout.getvalue()


def test_hidden_sizes_are_sampled_only_within_the_bands_trained(bands):
    url, sizes, round_of, text, _ = bands
    trials, epochs, studies = quiet(load_storage, url)
    analysis = analyse(trials, epochs, studies, n_trees=8)
    span = np.log10(200 / 20)  # the searched range, one decade
    expected = 0.0
    for r in (0, 2):
        band = [sizes[i] for i, k in round_of.items() if k == r]
        expected += np.log10(max(band) / min(band)) / span
    row = analysis.checks.set_index("variant").loc["V"]
    assert row.cover_hidden_size == pytest.approx(expected)
    done = [sizes[i] for i, k in round_of.items() if k in (0, 2)]
    assert expected < np.log10(max(done) / min(done)) / span  # less than the span
    opening = text[: text.index("## State of the study")]
    missing = sorted(k for k in set(round_of.values()) if k not in (0, 2))
    assert "Rounds complete in every variant: 2 of 4" in opening  # the first and the third
    for k in missing:
        band = [sizes[i] for i, r in round_of.items() if r == k]
        assert f"{min(band)}–{max(band)}" in opening.split("not yet trained in every variant: ")[1]
    assert "| 2 | " in text and "| 0 | no |" in text  # the rounds table: none done in round 2
    sampled = analysis.checks.set_index("variant").loc["all", "cover_hidden_size"]
    assert sampled == pytest.approx(expected)  # V and NFG trained the same configurations
    assert f"and sample {sampled:.0%} of its log range" in text
    ranked = next(line for line in text.splitlines() if line.startswith("- Ranked by"))
    assert "not covered yet" in ranked


def test_the_answer_comes_first_and_links_the_results_readme(bands, tmp_path):
    url, _, _, text, said = bands
    assert "20 complete trials of 40 planned (40 rows stored, waiting and requeued" in said
    assert text.index("## The answer so far: jsb") < text.index("## State of the study")
    assert "[results/README.md](../README.md)" in text
    assert "**20 of 40 planned trials are complete** (40 rows stored" in text
    assert "| variant | paper on JSB | Welch (top 10 %) | paired | failures | agreement |" in text
    best = "V's best trial (ranked on validation) reaches a test NLL per step of **9**; its "
    assert best + "best 10% (2 trials) average **9.01**" in text  # configurations 0 and 1
    assert "(published LSTMs on this split: 8.45–8.7)" in text
    trials, epochs, studies = quiet(load_storage, url)
    quiet(write, analyse(trials, epochs, studies, n_trees=8), tmp_path / "elsewhere", url)
    assert "README.md" not in (tmp_path / "elsewhere" / "REPORT.md").read_text()


def test_the_curves_figure_holds_every_line_it_lists():
    """Most trials never learn (their median stays far above chance): the median line must
    still reach into every panel, as the best trial and chance do."""
    base = [1.0, 1.1, 1.2, 1.3]
    trials, epochs, studies = tops({"V": base, "NFG": [x + 0.5 for x in base]})
    curves = analyse(trials, epochs, studies, n_trees=8).curves
    fig = figures.learning_curves(curves, "jsb")
    for ax in fig.axes:
        if not ax.get_visible() or not ax.lines:
            continue
        low, high = ax.get_ylim()
        for line in ax.lines:
            y = np.asarray(line.get_ydata(), float)
            assert ((y >= low) & (y <= high)).any(), (ax.get_title(), line.get_label())


def test_figures_give_no_deprecation_warnings():
    base = [1.0, 1.1, 1.2, 1.3]
    trials, _, studies = tops({"V": base, "NFG": [x + 0.5 for x in base]})
    summary = summarize(trials, studies)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figures.top_boxplot(trials, summary, "jsb")
        figures.paired_differences(summary, "jsb")
    assert pd.notna(summary.set_index("variant").loc["NFG", "mde"])
