"""The shared sample, balanced rounds and trials stored the moment they stop (study.runner.rounds,
study.runner.search, the coordinator's take order)."""

import itertools
from collections import defaultdict
from dataclasses import replace

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from scipy.stats import ks_2samp

import variants
from study import benchmarks
from study.errors import UserError
from study.runner import workers
from study.runner.coordinator import Monitor, run
from study.runner.options import RunOptions
from study.runner.queue import TrialQueue
from study.runner.retries import MAX_ATTEMPTS, reconcile
from study.runner.rounds import band_order, complete_rounds, padding_overhead, progress, rounds
from study.runner.search import prepare_study, sample_configs, stable_seed
from study.runner.status import storage_status
from study.runner.storage import open_storage
from study.training import trainer as train
from study.training.protocol import PROTOCOLS, Protocol
from study.training.trainer import PopulationTrainer, TrialConfig, TrialResult


def options(tmp_path, data, **given) -> RunOptions:
    return RunOptions(
        **{
            "benchmark": "jsb-original",
            "variants": ("V", "CIFG", "NP"),
            "protocol": PROTOCOLS["smoke"],
            "trials": 6,
            "storage": f"sqlite:///{tmp_path}/study.db",
            "population": 2,
            "data": data,
            "checkpoints": str(tmp_path / "ckpt"),
            **given,
        }
    )


# --- the order of bands ------------------------------------------------------------------


def test_bands_are_visited_from_the_median_by_maximin():
    assert band_order(1) == [0]
    assert band_order(2) == [1, 0]
    # 5 bands: the median, the farther end (the smaller on a tie), the other end, then the
    # gaps of two, the smaller first
    assert band_order(5) == [2, 0, 4, 1, 3]
    assert band_order(12)[:5] == [6, 0, 11, 3, 8]
    for n in range(1, 30):
        assert sorted(band_order(n)) == list(range(n))


def test_rounds_cut_the_sizes_into_bands_and_leave_a_short_band_last():
    sizes = {i: s for i, s in enumerate([50, 20, 90, 30, 70, 60, 40, 80, 100, 25])}
    round_of = rounds(sizes, 3)
    members = defaultdict(list)
    for index, r in round_of.items():
        members[r].append(sizes[index])
    # bands by size: [20 25 30] [40 50 60] [70 80 90] [100]; full bands from the median
    assert {r: sorted(m) for r, m in members.items()} == {
        0: [40, 50, 60],
        1: [20, 25, 30],
        2: [70, 80, 90],
        3: [100],
    }
    # ties in size are cut by configuration index, so every study cuts them alike
    assert rounds({0: 30, 1: 30, 2: 30}, 2) == {0: 0, 1: 0, 2: 1}


@pytest.mark.parametrize("seed", range(4))
def test_rounds_cover_the_size_distribution_of_a_paper_sized_sample(seed):
    """200 configurations, K = 16: the Kolmogorov-Smirnov distance of the complete sizes from
    the sample is at most 0.5 / 0.35 / 0.2 after 1 / 3 / 5 rounds (measured: 0.47-0.48,
    0.24-0.25, 0.11-0.12 over these seeds)."""
    sample = sample_configs(200, "random", stable_seed(seed, "jsb-original"))
    sizes = {i: c["hidden_size"] for i, c in enumerate(sample)}
    round_of = rounds(sizes, 16)
    everything = np.array(list(sizes.values()))
    for done, bound in ((1, 0.5), (3, 0.35), (5, 0.2)):
        complete = np.array([sizes[i] for i, r in round_of.items() if r < done])
        assert len(complete) == 16 * done
        assert ks_2samp(complete, everything).statistic <= bound, done
    # after three rounds both ends of the range are in
    first_three = [sizes[i] for i, r in round_of.items() if r < 3]
    assert min(first_three) == min(everything) and max(first_three) >= np.quantile(everything, 0.9)


def test_padding_overhead_by_hand_and_below_the_earlier_take_order():
    assert padding_overhead([10, 10, 20, 20], 2) == 0.0
    assert padding_overhead([10, 20], 2) == pytest.approx(2 * 400 / 500 - 1)
    assert padding_overhead([10, 20, 30], 2) == pytest.approx((2 * 400 / 500 - 1 + 0) / 2)
    for seed in range(4):
        sample = sample_configs(200, "random", stable_seed(seed, "jsb-original"))
        # the earlier order (an anchor and its 15 nearest sizes) padded 29 % on average
        assert padding_overhead([c["hidden_size"] for c in sample], 16) < 0.2


def test_progress_counts_a_study_s_finished_rounds():
    def trial(index, hidden, state, failure="training"):
        return optuna.trial.create_trial(
            state=state,
            params={"hidden_size": hidden},
            distributions={"hidden_size": optuna.distributions.IntDistribution(20, 200)},
            user_attrs={"config_index": index}
            | ({"failure": failure, "error": "bad"} if state == TrialState.FAIL else {}),
            value=1.0 if state == TrialState.COMPLETE else None,
        )

    def proven(index, hidden):  # the same error in each attempt: failed for good, finished
        return [trial(index, hidden, TrialState.FAIL)] * MAX_ATTEMPTS

    done, upper = trial(0, 20, TrialState.COMPLETE), trial(2, 40, TrialState.COMPLETE)
    # bands [20 30] [40 50], the upper first (the median of two bands)
    assert progress([done, *proven(1, 30), upper, *proven(3, 50)], 2) == (2, 2)
    waits = [trial(3, 50, TrialState.FAIL), trial(3, 50, TrialState.WAITING)]  # its copy waits
    assert progress([done, *proven(1, 30), upper, *waits], 2) == (0, 2)
    one_raise = trial(1, 30, TrialState.FAIL)  # one raise is no proof: a rerun retries it
    assert progress([done, one_raise, upper, *proven(3, 50)], 2) == (1, 2)
    # failed for the machine's reasons (a rerun retries them): no round is finished
    machine = [trial(i, 20 + 10 * i, TrialState.FAIL, "infrastructure") for i in range(4)]
    assert progress(machine, 2) == (0, 2)
    assert progress([*machine[:2], upper, *proven(3, 50)], 2) == (1, 2)  # the lower band is not


def test_complete_rounds_need_every_study():
    round_of = {0: 0, 1: 0, 2: 1, 3: 1}
    assert complete_rounds([{0: True, 1: True, 2: True}, {0: True, 1: True}], round_of) == 1
    assert complete_rounds([{0: True, 1: False}, {0: True, 1: True}], round_of) == 0
    everything = {i: True for i in round_of}
    assert complete_rounds([everything, everything], round_of) == 2


# --- the shared sample -------------------------------------------------------------------


def prepare(storage, variant, sample=None, n=6, band=2, benchmark="jsb"):
    study = prepare_study(
        storage,
        benchmark,
        variant,
        n_trials=n,
        sampler="random",
        seed=0,
        sample=sample,
        band_size=band,
    )
    reconcile(storage, study, fresh_run=True)
    return study


def configurations(study):
    """Configuration index -> (parameters, trial seed)."""
    return {
        t.user_attrs["config_index"]: (t.params, t.user_attrs["seed"])
        for t in study.get_trials(deepcopy=False)
    }


def test_every_variant_of_a_benchmark_trains_the_same_configurations(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db", create=True)
    v, cifg = prepare(storage, "V"), prepare(storage, "CIFG", band=4)
    assert configurations(v) == configurations(cifg)
    assert len({seed for _, seed in configurations(v).values()}) == 6
    # the second study takes the band size of the first: the rounds line up
    assert cifg.user_attrs["band_size"] == 2 and cifg.user_attrs["sample"] == "shared"
    # another benchmark has another sample
    other = prepare(storage, "V", benchmark="jsb-original")
    assert configurations(other) != configurations(v)


def test_an_independent_sample_is_drawn_per_study_and_never_mixed(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db", create=True)
    v, cifg = prepare(storage, "V", "independent"), prepare(storage, "CIFG")
    assert cifg.user_attrs["sample"] == "independent"  # the storage's, when not asked
    ours, theirs = configurations(v), configurations(cifg)
    assert all(ours[i] != theirs[i] for i in ours)
    # as earlier versions drew them: seeded by the study's name
    assert ours[0][1] == stable_seed(0, "jsb/V", 0)
    assert [p for p, _ in ours.values()] == sample_configs(6, "random", stable_seed(0, "jsb/V"))
    with pytest.raises(UserError, match="have the independent sample, not --sample shared"):
        prepare(storage, "NP", "shared")


def test_a_storage_from_before_shared_samples_keeps_its_own(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db", create=True)
    old = optuna.create_study(study_name="jsb/V", storage=storage)
    for key, value in {"n_trials": 3, "sampler": "random", "seed": 0}.items():
        old.set_user_attr(key, value)
    reconcile(storage, old)
    before = configurations(old)
    v = prepare(storage, "V", n=3)
    assert v.user_attrs["sample"] == "independent" and configurations(v) == before


# --- balanced rounds in a run ------------------------------------------------------------


def test_variants_advance_round_by_round_over_the_same_configurations(tmp_path, tiny_jsb):
    """One worker: each round's bands all end before the next round starts, and when round r
    starts every variant holds the same 2 (r - 1) complete configurations."""
    given = options(tmp_path, tiny_jsb)
    storage = open_storage(given.storage, create=True)
    seen = []

    class Watch(Monitor):
        def round(self, number, total, sizes):
            complete = []
            for variant in given.variants:
                study = optuna.load_study(study_name=f"jsb-original/{variant}", storage=storage)
                complete.append(
                    sorted(
                        t.user_attrs["config_index"]
                        for t in study.get_trials(states=(TrialState.COMPLETE,))
                    )
                )
            seen.append((number, total, sizes, complete))

    run(given, Watch())
    assert [(n, total) for n, total, _, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    for number, _, _, complete in seen:
        assert len(complete[0]) == 2 * (number - 1)
        assert complete[0] == complete[1] == complete[2]  # the same configurations
    hidden = {
        t.user_attrs["config_index"]: t.params["hidden_size"]
        for t in optuna.load_study(study_name="jsb-original/V", storage=storage).trials
    }
    assert seen[0][2] == tuple(sorted(hidden.values())[2:4])  # the median band first
    studies = [
        optuna.load_study(study_name=f"jsb-original/{v}", storage=storage) for v in given.variants
    ]
    assert configurations(studies[0]) == configurations(studies[1]) == configurations(studies[2])
    assert {row["rounds"] for row in storage_status(given.storage).studies} == {"3/3"}


def test_a_requeued_trial_goes_before_a_new_round(tmp_path, tiny_jsb):
    given = options(tmp_path, tiny_jsb, variants=("V",))
    with TrialQueue(given) as coordinator:
        first = coordinator.take_job()
        second = coordinator.take_job()
        assert coordinator.current_round == 1  # a free worker takes the next round
        coordinator.requeue_running()
        again = coordinator.take_job()
    assert {c for _, c, _ in again.trials} == {c for _, c, _ in first.trials}
    assert {c for _, c, _ in second.trials}.isdisjoint(c for _, c, _ in first.trials)


# --- trials stored the moment they stop ---------------------------------------------------


def test_a_trial_is_told_when_it_stops_not_when_its_population_ends(tmp_path, tiny_jsb):
    given = options(tmp_path, tiny_jsb, variants=("V",), trials=2)
    with TrialQueue(given) as coordinator:
        job = coordinator.take_job()
        (early, checkpoint, _), (late, *_) = ((n, p, c) for n, c, p in job.trials)
        open(checkpoint, "wb").close()
        stopped = TrialResult(
            value=9.5, test_metric=9.6, best_epoch=1, epochs=2,
            diverged=False, seconds=1.0, population=2.0, n_params=10,
            valid_curve=[9.5, 9.7], test_curve=[9.6, 9.8], train_curve=[1.0, 0.9],
        )  # fmt: skip
        result = workers.FinishedTrial(early, stopped)
        progress = [
            workers.TrialProgress(early, 2, 9.7, 9.5, True),
            workers.TrialProgress(late, 2, 9.0, 9.0, False),
        ]
        told = coordinator.record_epoch(workers.EpochReport(job.key, 2, progress, [result]))
        assert told == [result]
        study = coordinator.studies[0]
        states = {t.number: t.state for t in study.get_trials()}
        assert states == {early: TrialState.COMPLETE, late: TrialState.RUNNING}
        assert not __import__("os").path.exists(checkpoint)
        # the population's end tells the other alone
        later = workers.FinishedTrial(late, replace(result.result, value=8.0))
        assert coordinator.finish(job, [result, later]) == [later]
    stored = {t.number: t for t in study.get_trials()}
    assert stored[early].value == 9.5 and stored[late].value == 8.0
    assert list(stored[early].intermediate_values.values()) == [9.5, 9.7]


def test_train_job_reports_each_result_in_the_epoch_it_stops(tmp_path, tiny_jsb):
    """A trial that cannot improve (learning rate 0: the same weights every epoch) stops after
    `patience` epochs; its result comes with that epoch's report, while the other trains on."""
    protocol = Protocol(max_epochs=5, patience=2, max_sequences=6)
    frozen = TrialConfig(8, 0.0, 0.9, 0.0, seed=1)
    learning = TrialConfig(8, 1e-2, 0.9, 0.0, seed=2)
    trials = ((0, frozen, str(tmp_path / "0.pt")), (1, learning, str(tmp_path / "1.pt")))
    job = workers.Job(
        "jsb-original", tiny_jsb, "V", variants.resolve("V"), protocol, "cpu", 0, trials
    )
    reports = []
    results = workers.train_job(job, reports.append)
    stopped = {r.epoch: [x.number for x in r.results] for r in reports}
    assert stopped == {1: [], 2: [], 3: [0], 4: [], 5: [1]}
    assert [r.result.epochs for r in results] == [3, 5]
    assert reports[2].results[0] == results[0]


def test_a_trials_time_is_its_share_of_each_epoch(tmp_path, tiny_jsb, monkeypatch):
    """Each epoch of the fake clock takes 1 s. Trial A trains 2 epochs beside B, then is
    resumed alone for 2 more: 1/2 + 1/2 + 1 + 1 = 3 s, beside 1.5 trials on average."""
    clock = itertools.count()
    monkeypatch.setattr(train.time, "perf_counter", lambda: float(next(clock)))
    bench = benchmarks.load("jsb-original", tiny_jsb)
    protocol = Protocol(max_epochs=4, patience=10, max_sequences=4)
    pair = PopulationTrainer(bench, "V", protocol)
    a = pair.add(TrialConfig(8, 1e-3, 0.9, 0.0, seed=1))
    pair.add(TrialConfig(12, 1e-3, 0.9, 0.0, seed=2))
    pair.train_epoch()
    pair.train_epoch()
    a.save(tmp_path / "a.pt")
    alone = PopulationTrainer(bench, "V", protocol)
    alone.add_state(train.TrialState.load(tmp_path / "a.pt"))
    (result,) = alone.run()
    assert result.epochs == 4
    assert result.seconds == pytest.approx(3.0)
    assert result.population == pytest.approx(1.5)
