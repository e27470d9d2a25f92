import json
import math
import os
import signal
import subprocess
from dataclasses import asdict

import optuna
import pytest
from optuna.trial import TrialState
from runs import (
    ODYSSEY,
    POSTGRES,
    assert_exact,
    fresh_postgres,
    run_args,
    slow_epochs,
    smoke_options,
    wait_for,
)

import variants
from study import benchmarks
from study.cli import main
from study.errors import UserError
from study.runner import workers
from study.runner.coordinator import Monitor, run
from study.runner.failures import Failure
from study.runner.locks import exclusive_sqlite
from study.runner.options import resolve_variants
from study.runner.retries import ORPHAN_ERROR, fail, reconcile, state_counts
from study.runner.search import SEARCH_SPACE, prepare_study, sample_configs
from study.runner.storage import open_storage
from study.training.protocol import (
    PROTOCOLS,
    RECORD_VERSION,
    check_record,
    read_record,
    stored_record,
)
from study.training.trainer import Population
from synthetic_study import fill


def test_configurations_are_drawn_from_the_search_space():
    configs = sample_configs(400, "random", seed=1)
    for name, dist in SEARCH_SPACE.items():
        values = [c[name] for c in configs]
        assert dist.low <= min(values) and max(values) <= dist.high, name
        # log-uniform: about half below the geometric middle, uniform: the arithmetic one
        middle = math.sqrt(dist.low * dist.high) if dist.log else (dist.low + dist.high) / 2
        assert 0.4 < sum(x < middle for x in values) / len(values) < 0.6, name
    assert sample_configs(5, "random", seed=1) == configs[:5]
    assert sample_configs(5, "qmc", seed=1) != configs[:5]


def test_prepare_enqueues_once_and_tops_up(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db", create=True)

    def prepare(n, sampler="random"):
        study = prepare_study(
            storage, "jsb", "V", n_trials=n, sampler=sampler, seed=3, sample=None, band_size=2
        )
        reconcile(storage, study, fresh_run=True)
        return study

    study = prepare(4)
    first = [t.params for t in study.get_trials(deepcopy=False)]
    assert len(first) == 4 and all(t.state == TrialState.WAITING for t in study.trials)
    assert len(prepare(4).trials) == 4
    params = [t.params for t in prepare(6).get_trials(deepcopy=False)]
    assert params[:4] == first and len(params) == 6
    with pytest.raises(UserError, match="holds 6 trials; --trials 5 cannot shrink it"):
        prepare(5)
    with pytest.raises(UserError, match="sampled with --sampler random"):
        prepare(6, "qmc")


def test_a_study_keeps_the_checksum_of_its_data(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db", create=True)

    def prepare(data_sha256):
        return prepare_study(
            storage,
            "jsb-original",
            "V",
            n_trials=2,
            sampler="random",
            seed=0,
            sample=None,
            band_size=2,
            data_sha256=data_sha256,
        )

    assert prepare("a" * 64).user_attrs["data_sha256"] == "a" * 64
    assert prepare("a" * 64).user_attrs["data_sha256"] == "a" * 64  # the same data goes on
    with pytest.raises(UserError, match=f"trained on data with SHA-256 {'a' * 64}, not {'b' * 64}"):
        prepare("b" * 64)
    assert (
        "data_sha256"
        not in prepare_study(
            storage, "jsb", "V", n_trials=2, sampler="random", seed=0, sample=None, band_size=2
        ).user_attrs
    )


def test_run_two_workers_sqlite_exact_and_status(tmp_path, tiny_jsb, capsys):
    storage = f"sqlite:///{tmp_path}/study.db"
    assert main(run_args(storage, tiny_jsb, tmp_path, extra=("--workers", "2"))) == 0
    assert_exact(storage, ["jsb-original/V", "jsb-original/CIFG"], 3)
    assert not list((tmp_path / "ckpt").rglob("*.pt"))  # checkpoints dropped once told
    capsys.readouterr()
    assert main(["status", "--storage", storage, "--json"]) == 0
    rows = {r["study"]: r for r in json.loads(capsys.readouterr().out)["studies"]}
    assert rows["jsb-original/V"]["complete"] == 3 and rows["jsb-original/CIFG"]["failed"] == 0
    for name in ("jsb-original/V", "jsb-original/CIFG"):
        for t in optuna.load_study(study_name=name, storage=storage).get_trials():
            # the learning curve: one validation point per trained epoch, test beside it
            epochs = t.user_attrs["epochs"]
            assert sorted(t.intermediate_values) == list(range(1, epochs + 1))
            assert len(t.user_attrs["test_curve"]) == len(t.user_attrs["train_curve"]) == epochs
            assert t.intermediate_values[t.user_attrs["best_epoch"]] == t.value
            assert 1 <= t.user_attrs["best_epoch"] <= epochs
    # a rerun has nothing left to do and changes nothing
    assert main(run_args(storage, tiny_jsb, tmp_path)) == 0
    assert_exact(storage, ["jsb-original/V", "jsb-original/CIFG"], 3)


def test_second_coordinator_on_one_sqlite_file_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    with (
        exclusive_sqlite(url),
        pytest.raises(UserError, match="another `odyssey run`"),
        exclusive_sqlite(url),
    ):
        pass


def test_sigkill_mid_trial_then_rerun_completes(tmp_path, tiny_jsb):
    storage = f"sqlite:///{tmp_path}/study.db"
    args = run_args(
        storage,
        tiny_jsb,
        tmp_path,
        trials=4,
        variants="V",
        extra=("--max-epochs", "15", "--patience", "15"),
    )
    proc = subprocess.Popen(
        ODYSSEY + args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert wait_for(lambda: list((tmp_path / "ckpt").rglob("*.pt"))), "no checkpoint written"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    study = optuna.load_study(study_name="jsb-original/V", storage=storage)
    assert any(t.state == TrialState.RUNNING for t in study.trials)  # left behind by the kill
    assert main(args) == 0
    assert_exact(storage, ["jsb-original/V"], 4)
    failed = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert failed  # the killed trials, failed by heartbeat and retried
    resumed = [
        t
        for t in study.get_trials()
        if t.state == TrialState.COMPLETE and t.system_attrs.get("failed_trial") is not None
    ]
    assert resumed


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES, reason="set ODYSSEY_TEST_POSTGRES_URL (.ci/run does)")
def test_two_machines_on_postgres_run_exactly_n(tmp_path, tiny_jsb):
    args = run_args(fresh_postgres(), tiny_jsb, tmp_path, trials=6, variants="V")
    procs = [
        subprocess.Popen(ODYSSEY + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()
    assert_exact(POSTGRES, ["jsb-original/V"], 6)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--benchmark", "nope", "--trials", "1"], "unknown benchmark"),
        (["run", "--benchmark", "jsb", "--variants", "V,XYZ"], "unknown variant 'XYZ'"),
        (["run", "--benchmark", "jsb", "--trials", "0"], "--trials: must be at least 1"),
        (["run", "--benchmark", "jsb", "--preset", "fast"], "unknown preset 'fast'"),
        (["run", "--benchmark", "jsb", "--device", "tpu"], "--device: must be one of auto, cpu"),
        (
            ["status", "--storage", "postgresql+psycopg2://nobody@127.0.0.1:9/none"],
            "cannot open storage",
        ),
        (["status", "--storage", "results.db"], "SQLAlchemy URL"),
        (["run", "--benchmark", "jsb", "--population", "0"], "--population: must be at least 1"),
        (["report", "--storage", "sqlite:///missing.db"], "no such SQLite file"),
        (["status", "--storage", "sqlite:///missing.db"], "no such SQLite file"),
        (
            ["status", "--storage", "postgresql+psycopg2://me:pw@host:fivefour/db"],
            "storage postgresql+psycopg2://me:***@host:fivefour/db: the port must be a number",
        ),
        # the password "p" is masked in the URL, not wherever the letter stands
        (
            ["status", "--storage", "postgresql+psycopg2://nobody:p@127.0.0.1:9/none"],
            "nobody:***@127.0.0.1:9/none: (psycopg2.OperationalError) connection to server at",
        ),
        (["run", "--benchmark", "jsb", "--storage", "sqlite//x"], "a SQLAlchemy URL like"),
        (["run", "--benchmark", "jsb", "--trials", "x"], "argument --trials: invalid int value"),
        (["run", "--trials", "1"], "odyssey run: error: the following arguments are required"),
        (["status", "--json", "--nope"], "odyssey status: error: unrecognized arguments: --nope"),
        (
            ["run", "--benchmark", "jsb", "--trails", "3"],
            "odyssey run: error: unrecognized arguments: --trails 3; did you mean --trials?",
        ),
        (["nope"], "odyssey: error: argument COMMAND: invalid choice: 'nope'"),
    ],
)
def test_user_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch, fresh_data_home):
    """One line and exit status 2, before any data is built or file written."""
    monkeypatch.chdir(tmp_path)
    try:
        status = main(argv)
    except SystemExit as exit:  # argparse's errors
        status = exit.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.iterdir())


def test_presets_are_ordered_by_budget():
    assert (
        PROTOCOLS["smoke"].max_epochs
        < PROTOCOLS["quick"].max_epochs
        < PROTOCOLS["paper"].max_epochs
    )
    assert PROTOCOLS["paper"].patience == 15 and PROTOCOLS["paper"].max_epochs == 150


def test_a_training_error_sends_trials_back_to_the_queue(tmp_path, tiny_jsb, monkeypatch):
    real, calls = workers.train_job, []

    def flaky(job, report=None):
        calls.append(job)
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return real(job, report)

    monkeypatch.setattr(workers, "train_job", flaky)
    storage = f"sqlite:///{tmp_path}/study.db"
    assert main(run_args(storage, tiny_jsb, tmp_path, trials=3, variants="V")) == 0
    assert_exact(storage, ["jsb-original/V"], 3)
    failed = [
        t
        for t in optuna.load_study(study_name="jsb-original/V", storage=storage).trials
        if t.state == TrialState.FAIL
    ]
    assert failed and all(t.user_attrs["error"] == "RuntimeError: out of memory" for t in failed)


def test_a_trial_with_no_finite_metric_completes_at_inf(tmp_path, tiny_jsb, monkeypatch):
    """It learned nothing: complete at +inf on both metrics (ranked last, counted as not
    learning), not a FAIL that would leave the configuration out of every comparison. A
    configuration that an earlier version failed for it runs again, to be recorded so."""
    monkeypatch.setattr(Population, "evaluate", lambda self, batches: [math.nan] * len(self.states))
    storage = f"sqlite:///{tmp_path}/study.db"
    assert main(run_args(storage, tiny_jsb, tmp_path, trials=2, variants="V")) == 0
    study = optuna.load_study(study_name="jsb-original/V", storage=storage)
    assert [(t.state, t.value, t.user_attrs["test_metric"]) for t in study.trials] == [
        (TrialState.COMPLETE, math.inf, math.inf)
    ] * 2
    assert all(t.user_attrs["diverged"] and t.user_attrs["best_epoch"] == 0 for t in study.trials)

    legacy = open_storage(f"sqlite:///{tmp_path}/legacy.db", create=True)
    study = prepare_study(
        legacy, "jsb", "V", n_trials=1, sampler="random", seed=3, sample=None, band_size=2
    )
    reconcile(legacy, study, fresh_run=True)
    fail(legacy, study.ask()._trial_id, Failure.RESULT, "no finite metric")  # as they stored it
    assert reconcile(legacy, study) == 1
    assert [(t.state, t.user_attrs["attempts"]) for t in study.trials[1:]] == [
        (TrialState.WAITING, 2)
    ]


def test_a_checkpoint_of_another_trial_is_not_resumed(tmp_path, tiny_jsb):
    from study.training.trainer import PopulationTrainer, TrialConfig

    bench = benchmarks.load("jsb-original", tiny_jsb)
    mine = TrialConfig(8, 1e-3, 0.9, 0.0, seed=1)
    stranger = PopulationTrainer(bench, "V", PROTOCOLS["smoke"]).add(
        TrialConfig(5, 1e-2, 0.5, 0.1, 2)
    )
    stranger.epoch, stranger.best_value, stranger.done = 2, 1.234, True
    stranger.save(tmp_path / "0.pt")

    def job(checkpoint: str) -> workers.Job:
        spec = variants.resolve("V")
        trials = ((0, mine, str(tmp_path / checkpoint)),)
        return workers.Job(
            "jsb-original", tiny_jsb, "V", spec, PROTOCOLS["smoke"], "cpu", 0, trials
        )

    (result,) = [asdict(f.result) for f in workers.train_job(job("0.pt"))]
    (fresh,) = [asdict(f.result) for f in workers.train_job(job("fresh.pt"))]  # starts afresh
    for outcome in (result, fresh):
        del outcome["seconds"]  # wall time
    assert result == fresh and result["epochs"] >= 1


def test_variant_names_are_spelt_as_registered():
    assert resolve_variants("v, cifg+np ,V") == ("V", "CIFG+NP")
    assert resolve_variants("all") == variants.PAPER_VARIANTS


def test_unusable_output_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    storage = f"sqlite:///{tmp_path}/s.db"
    fill(storage, "jsb", {"V": 0.0, "NP": 0.0}, 6)
    assert main(["report", "--storage", storage, "--out", str(tmp_path / "file" / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "file/out: Not a directory" in err, err


def test_one_protocol_per_study(tmp_path, tiny_jsb, capsys):
    storage = f"sqlite:///{tmp_path}/study.db"
    assert main(run_args(storage, tiny_jsb, tmp_path, trials=1, variants="V")) == 0
    assert optuna.load_study(study_name="jsb-original/V", storage=storage).user_attrs[
        "protocol"
    ] == {"version": 2, "preset": "smoke", **PROTOCOLS["smoke"].results_fields()}
    capsys.readouterr()
    for extra, was, now in (
        (("--max-epochs", "1"), "max_epochs 3", "max_epochs 1"),
        (("--loss-reduction", "mean"), "loss_reduction sum", "loss_reduction mean"),
    ):
        args = run_args(storage, tiny_jsb, tmp_path, trials=2, variants="V", extra=extra)
        assert main(args) == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert error.startswith("odyssey run: error: study jsb-original/V was run with")
        assert f"was run with {was}, not {now}" in error
    args = run_args(storage, tiny_jsb, tmp_path, trials=2, variants="V")
    args[args.index("smoke")] = "quick"
    assert main(args) == 2
    assert "preset smoke" in capsys.readouterr().err
    assert len(optuna.load_study(study_name="jsb-original/V", storage=storage).trials) == 1


def test_a_study_of_frame_averaged_trials_refuses_the_summed_loss(tmp_path, tiny_jsb, capsys):
    """A storage written before studies stored their protocol: it is read from a trial,
    whose protocol then had no loss_reduction field (frames were averaged)."""
    import sqlalchemy

    storage = f"sqlite:///{tmp_path}/study.db"
    args = run_args(storage, tiny_jsb, tmp_path, trials=1, variants="V")
    assert main([*args, "--loss-reduction", "mean"]) == 0
    trial = optuna.load_study(study_name="jsb-original/V", storage=storage).trials[0]
    # the record of version 1: no preset (the trial's own attribute), eval_batch_size
    dropped = ("version", "preset", "loss_reduction")
    old = {k: v for k, v in trial.user_attrs["protocol"].items() if k not in dropped}
    old["eval_batch_size"] = 32
    with sqlalchemy.create_engine(storage).begin() as db:  # a finished trial is read-only
        db.execute(sqlalchemy.text("DELETE FROM study_user_attributes WHERE key = 'protocol'"))
        db.execute(
            sqlalchemy.text(
                "UPDATE trial_user_attributes SET value_json = :v WHERE key = 'protocol'"
            ),
            {"v": json.dumps(old)},
        )
    capsys.readouterr()
    assert main(run_args(storage, tiny_jsb, tmp_path, trials=2, variants="V")) == 2
    assert "loss_reduction mean, not loss_reduction sum" in capsys.readouterr().err


def test_time_limit_stops_like_ctrl_c_and_a_rerun_goes_on(tmp_path, tiny_jsb, capsys, monkeypatch):
    storage = f"sqlite:///{tmp_path}/study.db"
    args = run_args(storage, tiny_jsb, tmp_path, trials=3, variants="V")
    with monkeypatch.context() as patch:
        slow_epochs(patch)
        assert main([*args, "--time-limit", "0.5"]) == 0  # stops after the first epoch
    err = capsys.readouterr().err
    assert "time limit of 0.5 s reached" in err and "0 trials complete, 3 left" in err
    study = optuna.load_study(study_name="jsb-original/V", storage=storage)
    counts = state_counts(study.get_trials())
    assert counts["failed"] == 0 and counts["requeued"] == 2 and counts["running"] == 0
    assert len(list((tmp_path / "ckpt").rglob("*.pt"))) == 2  # epoch 1 of both, kept
    assert main(["status", "--storage", storage, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["studies"]
    assert (row["failed"], row["requeued"], row["waiting"]) == (0, 2, 3)
    assert main(args) == 0
    assert_exact(storage, ["jsb-original/V"], 3)
    for t in optuna.load_study(study_name="jsb-original/V", storage=storage).get_trials():
        if t.state == TrialState.COMPLETE:  # resumed trials keep their first epoch's point
            assert sorted(t.intermediate_values) == list(range(1, t.user_attrs["epochs"] + 1))


def test_curves_reach_the_storage_while_trials_train(tmp_path, tiny_jsb):
    storage = f"sqlite:///{tmp_path}/study.db"
    seen = []

    class Watch(Monitor):
        def studies(self, counts, live):
            study = optuna.load_study(study_name="jsb-original/V", storage=storage)
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            seen.extend(len(t.intermediate_values) for t in running)

    options = smoke_options(storage, tiny_jsb, tmp_path)
    run(options, Watch())
    assert max(seen) >= 2  # a running trial with two epochs in the storage


def test_a_log_file_gets_timestamped_lines(tmp_path, tiny_jsb, capsys):
    storage = f"sqlite:///{tmp_path}/study.db"
    assert main(run_args(storage, tiny_jsb, tmp_path, trials=2, variants="V")) == 0
    shown = capsys.readouterr()
    out = shown.out.splitlines()
    unknown = "unknown yet (too few complete trials, or sizes, to fit every variant)"
    assert [line[20:] for line in out[:5]] == [
        "round 1 of 1: hidden sizes 30-42, every variant",
        "jsb-original time left, at 1 worker:",
        f"  round 1 of 1: 2 trials, {unknown}",
        f"  whole study: 2 trials, {unknown}",
        "jsb-original/V: 0/2 complete, 2 running",
    ], out
    done = [line for line in out if " done: NLL per step valid " in line]
    assert len(done) == 2 and all(line[:4].isdigit() and line[10] == " " for line in done)
    # what reads the results, said as a fact: no "Next:" for a run with nothing left to do
    err = shown.err.splitlines()
    assert not [line for line in err if line.startswith("Next:")], err
    assert err[-1].endswith(f"`odyssey status --storage {storage}` and `odyssey report "
                            f"--storage {storage}`")  # fmt: skip


def test_train_command_gives_the_study_numbers(tmp_path, tiny_jsb, capsys):
    from study.training.trainer import PopulationTrainer, TrialConfig

    path = tmp_path / "curve.json"
    argv = ["train", "--benchmark", "jsb-original", "--data", tiny_jsb, "--hidden-size", "4,6"]
    argv += ["--learning-rate", "1e-2", "--momentum", "0.9", "--preset", "smoke"]
    assert main([*argv, "--seed", "5", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "trial epoch  train sum   valid      test" in out and "best epoch" in out
    assert "train sum: the training loss summed over each sequence's frames" in out
    assert "valid, test: NLL per step of the validation and test sets" in out
    record = json.loads(path.read_text())
    trainer = PopulationTrainer(
        benchmarks.load("jsb-original", tiny_jsb), "V", PROTOCOLS["smoke"], order_seed=5
    )
    for h in (4, 6):
        trainer.add(TrialConfig(h, 1e-2, 0.9, 0.0, seed=5))
    for got, expected in zip(record["trials"], trainer.run()):
        assert got["valid_curve"] == expected.valid_curve and got["value"] == expected.value
        assert len(got["test_curve"]) == got["epochs"] and got["best_epoch"] >= 1
    assert main([*argv, "--momentum", "0.9,0.5,0.1"]) == 2
    assert "--hidden-size has 2 values; expected 1 or 3" in capsys.readouterr().err


def test_studies_complete_or_new_in_one_run(tmp_path, tiny_jsb, capsys):
    """A run whose studies are complete or new: its first study may have nothing to take,
    first or later in --variants; each ends with exactly N trials."""
    storage = f"sqlite:///{tmp_path}/study.db"
    for variants_given in ("V", "V,CIFG", "NP,CIFG,V"):  # complete first, then a new first
        args = run_args(storage, tiny_jsb, tmp_path, trials=2, variants=variants_given)
        assert main(args) == 0, capsys.readouterr().err
        assert_exact(storage, [f"jsb-original/{v}" for v in variants_given.split(",")], 2)


@pytest.mark.slow
def test_trials_raised_on_a_complete_study(tmp_path, tiny_jsb, capsys):
    storage = f"sqlite:///{tmp_path}/study.db"
    assert main(run_args(storage, tiny_jsb, tmp_path, trials=2, variants="V")) == 0
    args = run_args(storage, tiny_jsb, tmp_path, trials=3, variants="V,CIFG")
    assert main(args) == 0, capsys.readouterr().err
    assert_exact(storage, ["jsb-original/V", "jsb-original/CIFG"], 3)


def test_an_error_of_the_run_sends_its_trials_back_to_the_queue(tmp_path, tiny_jsb, monkeypatch):
    storage = f"sqlite:///{tmp_path}/study.db"

    class Broken(Monitor):
        def studies(self, counts, progress):
            if any(c["running"] for c in counts.values()):
                raise RuntimeError("a monitor's bug")

    options = smoke_options(storage, tiny_jsb, tmp_path)
    with pytest.raises(RuntimeError, match="a monitor's bug"):
        run(options, Broken())
    counts = state_counts(optuna.load_study(study_name="jsb-original/V", storage=storage).trials)
    assert (counts["running"], counts["waiting"], counts["requeued"]) == (0, 2, 2)


@pytest.mark.slow
def test_a_run_after_a_kill_adds_a_variant_without_waiting_out_the_grace(tmp_path, tiny_jsb):
    """Killed with its trials running, then rerun at once with one more variant: on SQLite
    the file lock proves their coordinator dead, so they are failed and retried at once,
    not after the grace period (61 s at --heartbeat 30)."""
    storage = f"sqlite:///{tmp_path}/study.db"
    slow = ("--max-epochs", "15", "--patience", "15", "--heartbeat", "30")
    args = run_args(storage, tiny_jsb, tmp_path, trials=2, variants="V", extra=slow)
    proc = subprocess.Popen(
        ODYSSEY + args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert wait_for(lambda: list((tmp_path / "ckpt").rglob("*.pt"))), "no checkpoint written"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    args = run_args(storage, tiny_jsb, tmp_path, trials=2, variants="V,CIFG", extra=slow)
    assert main(args) == 0
    assert_exact(storage, ["jsb-original/V", "jsb-original/CIFG"], 2)
    trials = optuna.load_study(study_name="jsb-original/V", storage=storage).trials
    orphans = [t for t in trials if t.state == TrialState.FAIL]
    assert orphans and all(t.user_attrs["error"] == ORPHAN_ERROR for t in orphans)


# The two shapes of protocol record the committed reproduction holds (as stored there).
RECORD_V1 = {
    "max_epochs": 150,
    "patience": 15,
    "batch_size": 1,
    "max_sequences": None,
    "init_std": 0.1,
    "forget_bias": None,
    "clip_norm": None,
    "loss_reduction": "sum",
    "eval_batch_size": 32,
}
RECORD_V2 = {"preset": "paper", **{k: v for k, v in RECORD_V1.items() if k != "eval_batch_size"}}


def test_both_record_shapes_read_as_the_paper_protocol():
    """Version 1 (eval_batch_size, the preset in the trial's attribute) and version 2 (the
    preset inside, stored without its version) are one protocol: the paper's."""
    paper = PROTOCOLS["paper"].record()
    assert paper["version"] == RECORD_VERSION == 2
    v1 = read_record(RECORD_V1, preset="paper")
    assert v1 == {**paper, "version": 1}
    assert read_record(RECORD_V2) == read_record(paper) == paper
    for trials in ([{"protocol": RECORD_V1, "preset": "paper"}], [{"protocol": RECORD_V2}]):
        check_record("jsb/V", stored_record({}, trials), paper)  # no difference
    with pytest.raises(UserError, match="was run with preset paper, not preset quick"):
        check_record("jsb/V", v1, {**paper, "preset": "quick"})


@pytest.mark.slow
def test_a_study_of_both_record_shapes_runs_on(tmp_path, tiny_jsb):
    """A study whose trials hold either shape and no protocol of its own (as studies made
    before they kept one): a run with the same protocol goes on, and its own trials store
    the current shape."""
    import sqlalchemy

    storage = f"sqlite:///{tmp_path}/study.db"
    assert main(run_args(storage, tiny_jsb, tmp_path, trials=2, variants="V")) == 0
    smoke_v1 = {
        k: v for k, v in PROTOCOLS["smoke"].record().items() if k not in ("version", "preset")
    }
    smoke_v1["eval_batch_size"] = 32
    smoke_v2 = {k: v for k, v in PROTOCOLS["smoke"].record().items() if k != "version"}
    with sqlalchemy.create_engine(storage).begin() as db:  # a finished trial is read-only
        db.execute(sqlalchemy.text("DELETE FROM study_user_attributes WHERE key = 'protocol'"))
        for trial_id, record in ((1, smoke_v1), (2, smoke_v2)):
            db.execute(
                sqlalchemy.text(
                    "UPDATE trial_user_attributes SET value_json = :v "
                    "WHERE key = 'protocol' AND trial_id = :id"
                ),
                {"v": json.dumps(record), "id": trial_id},
            )
    assert main(run_args(storage, tiny_jsb, tmp_path, trials=3, variants="V")) == 0
    trials = optuna.load_study(study_name="jsb-original/V", storage=storage).trials
    shapes = sorted(
        read_record(t.user_attrs["protocol"], t.user_attrs["preset"])["version"] for t in trials
    )
    assert shapes == [1, 2, 2]
    assert trials[-1].user_attrs["protocol"] == PROTOCOLS["smoke"].record()
