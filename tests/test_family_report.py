"""The report's section on the arms beyond the paper (the gated-RNN family, 'V-fb1'), on two
synthetic storages with planted effects, V in the reference: GRU better than V by 0.5,
V-fb1 equal to V, minGRU failing on every fourth configuration and 0.3 better where both
learn; times per epoch at known ratios to V-fb1's (V's, from runs under twice the load, at
twice V-fb1's), and parameter counts that put a known arm
first in each band."""

import contextlib
import io

import numpy as np
import optuna
import pandas as pd
import pytest
from scipy import stats

from study.analysis import analyse, figures, load_storage, write
from study.analysis.family import (
    band_table,
    beyond_paper,
    claim_verdict,
    claims_table,
    clock,
    cost_table,
    glance_table,
)
from study.analysis.findings import verdict_table
from study.analysis.literature import BETTER, NOT_WORSE
from study.cli import main
from synthetic_study import fill_shared, quiet

N = 40  # configurations, so that the top 10 % holds 4 trials a side


def lstm(n_configs: int) -> dict[int, float]:
    """V's test metric at each configuration."""
    return {i: 9 + 0.02 * i for i in range(n_configs)}


V = lstm(N)
TESTS = {
    "GRU": {i: x - 0.5 for i, x in V.items()},
    "V-fb1": dict(V),
    "minGRU": {i: 20.0 if i % 4 == 0 else x - 0.3 for i, x in V.items()},
}
# seconds per epoch at configuration i: V-fb1's is 0.01 (i + 1); each arm's a fixed share of
# it; the reference storage's trials ran under twice the load
SHARE = {"V": 2.0, "NIG": 2.0, "V-fb1": 1.0, "GRU": 0.9, "minGRU": 0.26}


def timing(variant: str, i: int) -> dict:
    """Epochs that vary by configuration and arm, and seconds that make each arm's time per
    epoch SHARE of V-fb1's at the same configuration."""
    epochs = 5 + (i + len(variant)) % 7
    return {"epochs": epochs, "seconds": SHARE[variant] * 0.01 * (i + 1) * epochs}


def fill(family, reference, tests: dict, n_configs: int = N) -> None:
    """The reference storage's V and NIG (V + 0.1), and the family storage's arms `tests`."""
    v = lstm(n_configs)
    nig = {i: x + 0.1 for i, x in v.items()}
    fill_shared(reference, "jsb", {"V": v, "NIG": nig}, n_configs=n_configs, record=timing)
    fill_shared(family, "jsb", tests, n_configs=n_configs, record=timing)


@pytest.fixture(scope="module")
def view():
    """In memory: SQLite files would take seconds to fill."""
    family, reference = optuna.storages.InMemoryStorage(), optuna.storages.InMemoryStorage()
    fill(family, reference, TESTS)
    trials, epochs, studies = quiet(load_storage, family, reference=reference)
    return analyse(trials, epochs, studies, n_trees=8).of_benchmark("jsb")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """REPORT.md of `odyssey report --reference` on two SQLite files of 8 configurations
    (GRU and V-fb1 against V), and of the reference storage alone."""
    folder = tmp_path_factory.mktemp("family")
    family, reference = (f"sqlite:///{folder / name}.db" for name in ("family", "reproduction"))
    fill(family, reference, {"GRU": {i: x - 0.5 for i, x in lstm(8).items()}, "V-fb1": lstm(8)}, 8)
    args = ["report", "--storage", family, "--reference", reference]
    with contextlib.redirect_stdout(io.StringIO()):
        assert quiet(main, [*args, "--out", str(folder / "family-report")]) == 0
    trials, epochs, studies = quiet(load_storage, reference)
    quiet(write, analyse(trials, epochs, studies, n_trees=8), folder / "paper-report", reference)
    return folder / "family-report", folder / "paper-report"


def test_the_arms_beyond_the_paper():
    names = ["NFG", "foreign", "GRU", "CIFG+NP", "V", "NP-fb1", "V-fb1", "NIG"]
    assert beyond_paper(names) == ["V-fb1", "NP-fb1", "GRU"]
    assert clock(names) == "V-fb1"  # V's network, timed beside the arms
    assert clock(["GRU", "foreign", "NP-fb1", "V"]) == "V"  # NP-fb1 computes another network


@pytest.mark.parametrize(
    "expects, direction, enough, verdict",
    [
        (BETTER, "better", True, "agrees"),
        (BETTER, "", True, "inconclusive"),  # an effect expected, none seen
        (BETTER, "worse", True, "differs"),
        (BETTER, "better", False, "inconclusive"),
        (NOT_WORSE, "", True, "agrees"),
        (NOT_WORSE, "better", True, "agrees"),  # better is not worse
        (NOT_WORSE, "worse", True, "differs"),
        (NOT_WORSE, "", False, "inconclusive"),
    ],
)
def test_a_claims_verdict_needs_positive_evidence_to_differ(expects, direction, enough, verdict):
    assert claim_verdict(expects, direction, enough) == verdict


def test_the_literatures_claims_on_the_planted_effects(view):
    """Chung's "GRU better" agrees; Jozefowicz's "V-fb1 better than V" is inconclusive (equal)
    and "V-fb1 not worse than GRU" differs (worse by 0.5, tested between the two alone);
    Feng's "minGRU not worse" agrees (its best trials are better); the claims on MGU,
    minLSTM and sLSTM, not in the storage, are left out."""
    claims = claims_table(view)
    assert list(zip(claims.source, claims.arm, claims.against, claims.verdict)) == [
        ("Chung et al. 2014", "GRU", "V", "agrees"),
        ("Jozefowicz et al. 2015", "V-fb1", "V", "inconclusive"),
        ("Jozefowicz et al. 2015", "V-fb1", "GRU", "differs"),
        ("Feng et al. 2024", "minGRU", "V", "agrees"),
    ]
    assert not claims.provisional.any()  # every planned configuration is complete
    rows = claims.set_index(["arm", "against"])
    chung = rows.loc[("GRU", "V")]
    assert chung.top_diff == pytest.approx(-0.5) and chung.paired_median == pytest.approx(-0.5)
    equal = rows.loc[("V-fb1", "V")]
    assert equal.direction == "" and equal.p_value == pytest.approx(1.0)
    assert equal.mde > 0 and equal.fewest == 4
    between = rows.loc[("V-fb1", "GRU")]
    top = [9 + 0.02 * i for i in range(4)]  # configurations 0-3 lead both arms
    welch = stats.ttest_ind(top, [x - 0.5 for x in top], equal_var=False)
    assert between.top_diff == pytest.approx(0.5)
    assert between.p_value == pytest.approx(welch.pvalue)
    assert between.paired_median == pytest.approx(0.5) and between.n_paired == N
    assert between.paired_p_holm == pytest.approx(stats.wilcoxon(np.full(N, 0.5)).pvalue)
    assert between.paired_direction == "worse"


def test_cost_per_arm_is_the_codes_count_and_the_time_per_epoch(view):
    """Parameters at 100 units from docs/family.md's formulas (JSB: M = 88 inputs, K = 88
    outputs); seconds per epoch from the planted times: V-fb1's median over i of 0.01 (i + 1)
    and each arm's ratio to it, configuration by configuration, V's included: V-fb1 is the
    clock, V's network timed in the same runs as the arms."""
    cost = cost_table(view.trials, "jsb").set_index("variant")
    m, n, head = 88, 100, 100 * 88 + 88
    expected = {
        "V": 4 * (n * m + n * n + n) + 3 * n + head,
        "V-fb1": 4 * (n * m + n * n + n) + 3 * n + head,
        "GRU": 3 * (n * m + n * n + 2 * n) + head,
        "minGRU": 2 * (n * m + n) + head,
    }
    assert cost.params.to_dict() == expected
    assert cost.params_ratio["GRU"] == pytest.approx(expected["GRU"] / expected["V"])
    median = np.median(0.01 * (np.arange(N) + 1))
    assert (cost.clock == "V-fb1").all()
    for arm, share in (("V", 2.0), ("V-fb1", 1.0), ("GRU", 0.9), ("minGRU", 0.26)):
        assert cost.epoch_seconds[arm] == pytest.approx(share * median)
        assert cost.cost_ratio[arm] == pytest.approx(share)
        assert cost.n_timed[arm] == cost.n_cost[arm] == N
        assert cost.cost_ratio_small[arm] == cost.cost_ratio_large[arm] == pytest.approx(share)


def test_the_cost_ratio_is_split_at_the_median_hidden_size(view):
    """minGRU made twice as fast above the median hidden size of the configurations: 0.26 of
    V-fb1 up to it, 0.13 above it; V-fb1, the clock, stays at 1 on both sides."""
    runs = view.trials.copy()
    sizes = runs[runs.variant == "V-fb1"].hidden_size
    split = np.median(sizes)
    assert (sizes > split).sum() >= N // 2 - 1  # both sides populated
    faster = (runs.variant == "minGRU") & (runs.hidden_size > split)
    runs.loc[faster, "seconds"] = runs.loc[faster, "seconds"] / 2
    cost = cost_table(runs, "jsb").set_index("variant")
    assert (cost.split == split).all()
    assert cost.cost_ratio_small["minGRU"] == pytest.approx(0.26)
    assert cost.cost_ratio_large["minGRU"] == pytest.approx(0.13)
    assert cost.cost_ratio_small["V-fb1"] == cost.cost_ratio_large["V-fb1"] == 1


def test_the_opening_table_of_the_family(view):
    """V first, then each arm: the failing arm's failures (McNemar: 10 configurations where
    only it failed, none the other way: p = 2 / 2^10, which Holm multiplies by the 3 arms,
    the others' p being 1) and its difference where both learn."""
    summary = view.summary.set_index("variant")
    minimal = summary.loc["minGRU"]
    assert [minimal.fail_rate, minimal.fail_rate_ref] == pytest.approx([0.25, 0.0])
    assert minimal.learned_median == pytest.approx(-0.3)
    names = beyond_paper(view.trials.variant.unique())
    table = glance_table(view.summary, cost_table(view.trials, "jsb"), names).set_index("arm")
    assert table.index.tolist() == ["V", "V-fb1", "GRU", "minGRU"]
    assert table.loc["minGRU", "failures"] == (
        f"25% vs 0% (Holm p {3 * 2 / 2**10:.2g}); both learned: -0.30 [-0.30, -0.30]"
    )
    assert table.loc["GRU", "top 10 %"].startswith("8.53: **better** (-0.50, p ")
    assert table.loc["GRU", "paired vs V"].startswith("**better** (-0.50 [-0.50, -0.50]")
    assert table.loc["GRU", "s per trial-epoch"].endswith(" s (×0.90 V-fb1)")
    assert table.loc["V", "s per trial-epoch"].endswith(" s (×2.00 V-fb1)")
    assert "×" not in table.loc["V-fb1", "s per trial-epoch"]
    assert table.loc["minGRU", "parameters at 100 units"] == "26,688 (×0.31 V)"
    assert table.loc["V", "paired vs V"] == "" and table.loc["V", "best"] == "9.00"


def test_an_arm_the_paper_did_not_study_is_not_in_the_paper(view):
    table = verdict_table(view.summary, "jsb").set_index("variant")
    assert table["paper on JSB"].to_dict() == dict.fromkeys(
        ["V-fb1", "GRU", "minGRU"], "not in the paper"
    )
    assert (table.agreement == "").all()


@pytest.fixture(scope="module")
def bands():
    """42 configurations whose parameter counts are 10^(3 + 3 i / 41) in every arm: 6 bands
    of half a decade, 7 configurations each (no count near an edge). GRU is 8.8 in the three
    smaller bands (but fails, 20, on its 4 smallest configurations) and 9.2 in the larger;
    MGU is 8.9 and V 9 throughout; minGRU has 3 trials, the best of all, in the last band."""
    storage = optuna.storages.InMemoryStorage()
    configs = range(42)
    gru = {i: 20.0 if i < 4 else (8.8 if i < 21 else 9.2) for i in configs}
    tests = {
        "V": dict.fromkeys(configs, 9.0),
        "GRU": gru,
        "MGU": dict.fromkeys(configs, 8.9),
        "minGRU": dict.fromkeys([39, 40, 41], 8.0),
    }

    def counts(variant: str, i: int) -> dict:
        return {"n_params": int(round(10 ** (3 + 3 * i / 41)))}

    fill_shared(storage, "jsb", tests, n_configs=42, record=counts)
    return quiet(load_storage, storage)[0]


def test_the_best_arm_in_each_band_of_parameters(bands):
    """The best quarter of a band's trials (ranked on validation) scores an arm, not its
    median (GRU's in the first band is 20) nor a handful of trials (minGRU's 3, fewer than
    BAND_MINIMUM)."""
    table = band_table(bands)
    assert table.best.tolist() == ["GRU"] * 3 + ["MGU"] * 3
    assert table.trials.tolist() == [21] * 5 + [24]
    assert table.low.iloc[0] == pytest.approx(1e3) and table.high.iloc[-1] == pytest.approx(1e6)
    assert table.GRU.tolist() == pytest.approx([8.8] * 3 + [9.2] * 3)  # 2 of 7 trials
    assert table.MGU.tolist() == pytest.approx([8.9] * 6)
    assert table.minGRU.isna().all()


def test_the_parameters_figure_draws_each_arms_lower_envelope(bands):
    fig = figures.params_vs_metric(bands, "jsb")
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.lines}
    gru = lines["GRU"]
    expected = np.minimum.accumulate(
        [20.0 if i < 4 else (8.8 if i < 21 else 9.2) for i in range(42)]
    )
    assert np.asarray(gru.get_ydata(), float) == pytest.approx(expected)
    assert np.asarray(gru.get_xdata(), float)[[0, -1]] == pytest.approx([1e3, 1e6])
    assert ax.get_xscale() == "log"
    assert set(lines) == {"V", "GRU", "MGU", "minGRU", "chance"}


def test_the_report_has_the_family_section_only_with_arms_beyond_the_paper(reports):
    family, paper = reports
    text = (family / "REPORT.md").read_text()
    assert "### Beyond the paper: V-fb1 and GRU" in text
    section = text.split("### Beyond the paper")[1].split("\n### ")[0]
    assert "| arm | best | top 10 % | paired vs V | failures |" in section
    for heading in ("What the literature claims", "Cost", "At the same number of parameters"):
        assert f"#### {heading}" in section
    assert "| Chung et al. 2014, *Empirical Evaluation" in section
    assert "| GRU better than V |" in section and "| V-fb1 not worse than GRU |" in section
    assert "Feng et al." not in section  # no minGRU in the storage
    assert "![parameters](figures/jsb-params.png)" in section
    assert (family / "figures" / "jsb-params.png").is_file()
    opening = text[: text.index("## State of the study")]
    assert "| GRU | not in the paper |" in opening
    assert "section *Beyond the paper* of jsb below" in opening
    paper_text = (paper / "REPORT.md").read_text()
    assert "Beyond the paper" not in paper_text and "literature" not in paper_text
    assert "| NIG | not different |" in paper_text
    assert not (paper / "figures" / "jsb-params.png").exists()
    assert pd.read_csv(family / "summary.csv").variant.tolist() == ["V", "V-fb1", "GRU"]
