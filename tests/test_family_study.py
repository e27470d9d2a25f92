"""What the family campaign stands on: an arm that trains a cell under another forget-gate
bias ('V-fb1'), one sample of configurations whatever a storage's variants, and a report that
compares a storage's arms with the V of another storage."""

import optuna
import pandas as pd
import pytest
import torch
from runs import assert_exact, run_args

import variants
from study.analysis import analyse, load_storage
from study.cli import main
from study.runner import workers
from study.runner.options import RunOptions
from study.runner.queue import TrialQueue
from study.training.protocol import PROTOCOLS
from study.training.trainer import PopulationTrainer
from synthetic_study import fill_shared, quiet


def test_an_arm_trains_its_cell_with_its_forget_bias(tmp_path, tiny_jsb, monkeypatch):
    """V and V-fb1 on the shared sample: the same configurations; V-fb1's protocol says
    forget_bias 1 and each of its trials started with b_f = 1 in a population of V cells."""
    storage = f"sqlite:///{tmp_path}/study.db"
    started = {}  # study variant -> (the population's cell, a trial's initial b_f) per trial
    jobs = []
    train_job, add = workers.train_job, PopulationTrainer.add

    def recording_train_job(job, report=None):
        jobs.append(job.variant)
        return train_job(job, report)

    def recording_add(self, config):
        state = add(self, config)
        started.setdefault(jobs[-1], []).append((self.spec, state.params["b_f"].clone()))
        return state

    monkeypatch.setattr(workers, "train_job", recording_train_job)
    monkeypatch.setattr(PopulationTrainer, "add", recording_add)
    assert main(run_args(storage, tiny_jsb, tmp_path, trials=3, variants="V,v-FB1.0")) == 0
    assert_exact(storage, ["jsb-original/V", "jsb-original/V-fb1"], 3)

    v, fb1 = (
        optuna.load_study(study_name=f"jsb-original/{name}", storage=storage)
        for name in ("V", "V-fb1")
    )

    def sample(study):
        return {
            t.user_attrs["config_index"]: (t.params, t.user_attrs["seed"]) for t in study.trials
        }

    assert sample(v) == sample(fb1) and len(sample(v)) == 3
    smoke = PROTOCOLS["smoke"].record()
    assert smoke["forget_bias"] is None
    assert v.user_attrs["protocol"] == smoke
    assert fb1.user_attrs["protocol"] == smoke | {"forget_bias": 1.0}
    assert all(t.user_attrs["protocol"]["forget_bias"] == 1.0 for t in fb1.trials)
    assert all(t.user_attrs["protocol"]["forget_bias"] is None for t in v.trials)

    assert len(started["V"]) == len(started["V-fb1"]) == 3
    assert all(spec == variants.resolve("V") for spec, _ in started["V"] + started["V-fb1"])
    assert all(torch.equal(b_f, torch.ones_like(b_f)) for _, b_f in started["V-fb1"])
    assert not any((b_f == 1).any() for _, b_f in started["V"])


@pytest.mark.parametrize(
    "item, message",
    [
        ("V,V-fbx", "--variants: 'V-fbx': expected a number after '-fb', got 'x'"),
        ("NOPE-fb1", "--variants: unknown variant 'NOPE'"),
        ("NFG-fb1", "--variants: 'NFG-fb1': NFG has no forget gate whose bias -fb could set"),
    ],
)
def test_a_bad_arm_is_one_line(item, message, tmp_path, tiny_jsb, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage = f"sqlite:///{tmp_path}/study.db"
    assert main(run_args(storage, tiny_jsb, tmp_path, variants=item)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "study.db").exists()


def test_storages_of_other_variants_hold_the_same_sample(tmp_path, tiny_jsb):
    """A storage of the reproduction's variants and one of the family's arms, trained in
    bands of other sizes: configuration i has the same parameters, trial seed (its weights
    and noise draws) and sequence order seed in every study of both."""

    def sample(name: str, arms: tuple[str, ...], population: int) -> dict:
        options = RunOptions(
            benchmark="jsb-original",
            data=tiny_jsb,
            variants=arms,
            protocol=PROTOCOLS["paper"],
            trials=7,
            storage=f"sqlite:///{tmp_path / name}.db",
            population=population,
            device="cpu",
            checkpoints=str(tmp_path / "checkpoints"),
        )
        found = {}  # configuration index -> {(config, order seed)} over the studies
        with TrialQueue(options) as queue:
            while (job := queue.take_job()) is not None:
                (study,) = [s for s in queue.studies if s.study_name.endswith(f"/{job.variant}")]
                index = {t.number: t.user_attrs["config_index"] for t in study.trials}
                for number, config, _ in job.trials:
                    found.setdefault(index[number], set()).add((config, job.order_seed))
        assert sorted(found) == list(range(7))
        return found

    reproduction = sample("reproduction", ("V", "NIG"), population=2)
    family = sample("family", ("GRU", "V-fb1", "minGRU"), population=3)
    assert all(len(pairs) == 1 for pairs in reproduction.values())
    assert family == reproduction
    assert len({config for ((config, _),) in reproduction.values()}) == 7


def _summary(out) -> pd.DataFrame:
    return pd.read_csv(out / "summary.csv").set_index("variant")


def test_report_compares_arms_with_the_reference_storages_v(tmp_path):
    """GRU is V + 0.4 and V-fb1 is V - 0.2 on each of 12 shared configurations, V (and NIG)
    in the reference storage: the summary pairs each arm with the reference's V."""
    reference, family = (f"sqlite:///{tmp_path / name}.db" for name in ("reproduction", "family"))
    v = {i: 9 + 0.1 * i for i in range(12)}
    nig = {i: value + 1.0 for i, value in v.items()}
    fill_shared(reference, "jsb", {"V": v, "NIG": nig}, n_configs=12)
    gru = {i: value + 0.4 for i, value in v.items()}
    fb1 = {i: value - 0.2 for i, value in v.items()}
    fill_shared(family, "jsb", {"GRU": gru, "V-fb1": fb1}, n_configs=12)
    out = tmp_path / "report"
    out.mkdir()
    quiet(analyse, *quiet(load_storage, family, reference=reference), n_trees=8).write_tables(out)
    summary = _summary(out)
    assert summary.index.tolist() == ["V", "V-fb1", "GRU"]  # NIG stays in its storage
    for arm, shift, direction in (("GRU", 0.4, "worse"), ("V-fb1", -0.2, "better")):
        row = summary.loc[arm]
        assert row.n_paired == 12 and row.paired_median == pytest.approx(shift)
        assert row.paired_direction == direction
        assert row.wilcoxon_p == pytest.approx(2 / 2**12)
        assert row.top_diff == pytest.approx(shift)
    trials = pd.read_csv(out / "trials.csv")
    assert trials.groupby("variant").size().to_dict() == {"V": 12, "V-fb1": 12, "GRU": 12}


def test_a_reference_that_cannot_pair_is_one_line(tmp_path, capsys):
    def storage(name: str, tests: dict, seed: int | None = None) -> str:
        url = f"sqlite:///{tmp_path / name}.db"
        fill_shared(url, "jsb", tests, n_configs=6)
        if seed is not None:
            for study in optuna.get_all_study_names(url):
                optuna.load_study(study_name=study, storage=url).set_user_attr("seed", seed)
        return url

    v = {i: 9 + 0.1 * i for i in range(6)}
    family = storage("family", {"GRU": v}, seed=0)
    reference = storage("reference", {"V": v}, seed=0)
    cases = [
        (storage("both", {"V": v, "GRU": v}, seed=0), reference, "study jsb/V is in both"),
        (family, storage("nov", {"NIG": v}, seed=0), "the reference storage has no study jsb/V"),
        (
            family,
            storage("reseeded", {"V": v}, seed=1),
            "study jsb/V of the reference storage has the shared sample, sampler None, seed 1, "
            "but jsb/GRU has the shared sample, sampler None, seed 0",
        ),
    ]
    for own, other, message in cases:
        args = ["report", "--storage", own, "--reference", other, "--out", str(tmp_path / "out")]
        assert quiet(main, args) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
