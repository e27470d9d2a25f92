"""`odyssey status` on planted storages: the time left recovers a planted seconds-per-epoch
law, the fleet view finds planted running trials of two hosts and their stale ones, and
every table fits 80 columns with validation and test labelled."""

import json
from datetime import datetime, timedelta

import numpy as np
import optuna
import pytest
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.trial import TrialState, create_trial
from runs import POSTGRES, fresh_postgres

import study
from study.cli import main
from study.runner.estimate import MIN_TRIALS
from study.runner.search import SEARCH_SPACE
from study.runner.status import storage_status

# The planted law: seconds per trial-epoch of each variant, a + b H + c H^2.
LAWS = {"V": (0.05, 2e-3, 3e-5), "FGR": (0.1, 4e-3, 9e-5)}
EPOCHS = 40  # every complete trial trains this many: the estimate's mean, without spread
BAND = 4


def _trial(state, hidden, index, *, attrs=(), value=None, complete=None):
    params = {"hidden_size": hidden, "learning_rate": 1e-3, "one_minus_momentum": 0.1}
    trial = create_trial(
        state=state,
        value=value,
        params={**params, "input_noise": 0.0},
        distributions=SEARCH_SPACE,
        user_attrs={"config_index": index, "seed": index, **dict(attrs)},
    )
    if complete is not None:
        trial.datetime_start, trial.datetime_complete = complete - timedelta(minutes=1), complete
    return trial


def _plant(url, done_sizes, left_sizes, running=()):
    """One study per variant of LAWS: complete trials at `done_sizes` timed exactly by the
    law, waiting trials at `left_sizes`, and `running` as (hidden size, holder, epochs
    trained) running trials."""
    for variant, (a, b, c) in LAWS.items():
        s = optuna.create_study(study_name=f"jsb/{variant}", storage=url)
        s.set_user_attr("band_size", BAND)
        for index, hidden in enumerate(done_sizes):
            seconds = EPOCHS * (a + b * hidden + c * hidden**2)
            attrs = {"epochs": EPOCHS, "seconds": seconds, "test_metric": 9.0 + index}
            s.add_trial(_trial(TrialState.COMPLETE, hidden, index, attrs=attrs, value=8.0 + index))
        first = len(done_sizes)
        for index, hidden in enumerate(left_sizes, first):
            s.add_trial(_trial(TrialState.WAITING, hidden, index))
        for index, (hidden, holder, trained) in enumerate(running, first + len(left_sizes)):
            trial = _trial(TrialState.RUNNING, hidden, index, attrs={"holder": holder})
            trial.intermediate_values = {e: 9.0 for e in range(1, trained + 1)}
            s.add_trial(trial)


def test_time_left_recovers_a_planted_seconds_per_epoch_law(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    done = [20, 30, 45, 60, 90, 120, 150, 200]
    left = [25, 70, 110, 180, 190]
    _plant(url, done, left)
    status = storage_status(url)
    (estimate,) = status.time_left
    expected = {
        f"jsb/{v}": EPOCHS * sum(a + b * h + c * h * h for h in left)
        for v, (a, b, c) in LAWS.items()
    }
    for name, seconds in expected.items():
        assert estimate.studies[name].compute_s == pytest.approx(seconds, rel=1e-6)
        assert estimate.studies[name].sd_s == pytest.approx(0, abs=1e-6 * seconds)
    assert estimate.total.compute_s == pytest.approx(sum(expected.values()), rel=1e-6)
    assert estimate.total.trials == 2 * len(left)
    # Rounds of 4 by size over the 13 configurations: [20 25 30 45] [60 70 90 110]
    # [120 150 180 190] [200], the median band first: the running round holds 70 and 110.
    assert (estimate.round, estimate.rounds) == (1, 4)
    round_seconds = sum(
        EPOCHS * sum(a + b * h + c * h * h for h in (70, 110)) for a, b, c in LAWS.values()
    )
    assert estimate.this_round.compute_s == pytest.approx(round_seconds, rel=1e-6)
    rows = {r["study"]: r for r in status.studies}
    assert rows["jsb/V"]["left_hours"] == pytest.approx(expected["jsb/V"] / 3600, rel=1e-6)
    assert rows["jsb/V"]["best_valid"] == 8.0 and rows["jsb/V"]["test_at_best_valid"] == 9.0
    assert status.workers == 0 and estimate.total.wall_s(status.workers) is None


def test_noisy_timings_give_an_interval_that_holds_the_planted_law(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    rng = np.random.default_rng(0)
    a, b, c = LAWS["V"]
    s = optuna.create_study(study_name="jsb/V", storage=url)
    sizes = rng.integers(20, 200, 60)
    epochs = rng.integers(20, 150, 60)
    for index, (hidden, e) in enumerate(zip(sizes, epochs)):
        rate = (a + b * hidden + c * hidden**2) * rng.normal(1, 0.1)
        attrs = {"epochs": int(e), "seconds": float(e * rate), "test_metric": 9.0}
        s.add_trial(_trial(TrialState.COMPLETE, int(hidden), index, attrs=attrs, value=8.0))
    left = [30, 80, 160] * 10
    for index, hidden in enumerate(left, len(sizes)):
        s.add_trial(_trial(TrialState.WAITING, hidden, index))
    part = storage_status(url).time_left[0].studies["jsb/V"]
    truth = epochs.mean() * sum(a + b * h + c * h * h for h in left)
    assert part.sd_s > 0 and abs(part.compute_s - truth) < 3 * part.sd_s


def test_time_left_is_unknown_before_enough_trials(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/s.db"
    _plant(url, [20, 40, 60, 80, 100][: MIN_TRIALS - 1], [120, 140])
    status = storage_status(url)
    assert status.time_left[0].total.compute_s is None
    assert all(r["left_hours"] is None for r in status.studies)
    assert main(["status", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "whole study: 4 trials, unknown yet" in out and "unknown yet" in out


def _beat(url, numbers):
    """A heartbeat now for these running trials of every study."""
    storage = RDBStorage(url)
    for name in LAWS:
        study_id = storage.get_study_id_from_name(f"jsb/{name}")
        for number in numbers:
            storage.record_heartbeat(
                storage.get_trial_id_from_study_id_trial_number(study_id, number)
            )


def _age_heartbeat(url, number, seconds):
    """Set the heartbeat of trial `number` of jsb/V `seconds` into the past."""
    storage = RDBStorage(url)
    study_id = storage.get_study_id_from_name("jsb/V")
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    with storage.engine.begin() as connection:
        old = connection.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        connection.execute(
            sqlalchemy.text("UPDATE trial_heartbeats SET heartbeat = :t WHERE trial_id = :id"),
            {"t": old.replace(tzinfo=None) - timedelta(seconds=seconds), "id": trial_id},
        )


STORAGES = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not POSTGRES, reason="set ODYSSEY_TEST_POSTGRES_URL (.ci/run does)"),
        ],
    ),
]


@pytest.mark.parametrize("backend", STORAGES)
def test_fleet_names_the_hosts_and_processes_of_running_trials_and_the_stale(
    backend, tmp_path, capsys
):
    """Heartbeat ages are read on the database's clock (PostgreSQL's carries a time zone)."""
    url = f"sqlite:///{tmp_path}/s.db" if backend == "sqlite" else fresh_postgres()
    one = {"host": "node-a", "pid": 11, "workers": 2, "heartbeat": 30}
    two = {"host": "node-b", "pid": 22, "workers": 3, "heartbeat": 30}
    _plant(url, [20, 40, 60, 80, 100], [120], running=[(130, one, 5), (140, one, 0), (150, two, 0)])
    _beat(url, (6, 7, 8))
    _age_heartbeat(url, 8, 120)  # node-b's V trial: past its grace of 61 s
    # completions: node-a finished one of V's trials 10 minutes ago and one 2 hours ago
    v = optuna.load_study(study_name="jsb/V", storage=url)
    now = datetime.now()
    a, b, c = LAWS["V"]
    for index, minutes in ((20, 10), (21, 120)):
        attrs = {"epochs": EPOCHS, "seconds": EPOCHS * (a + b * 50 + c * 50**2), "holder": one}
        v.add_trial(
            _trial(
                TrialState.COMPLETE,
                50,
                index,
                attrs=attrs,
                value=9.0,
                complete=now - timedelta(minutes=minutes),
            )
        )
    status = storage_status(url)
    assert status.processes == [
        {"host": "node-a", "pid": 11, "workers": 2, "running": 4, "stale": 0,
         "heartbeat_age_s": pytest.approx(0, abs=30)},
        {"host": "node-b", "pid": 22, "workers": 3, "running": 2, "stale": 1,
         "heartbeat_age_s": pytest.approx(0, abs=30)},
    ]  # fmt: skip
    hosts = {row["host"]: row for row in status.hosts}
    assert hosts["node-a"] == {
        "host": "node-a", "processes": 1, "running": 4, "stale": 0, "complete": 2, "last_hour": 1
    }  # fmt: skip
    assert hosts["node-b"]["stale"] == 1 and hosts["node-b"]["complete"] == 0
    assert hosts["-"]["complete"] == 2 * 5  # the planted trials record no holder
    assert status.workers == 5  # both processes still beat for a trial
    # a running trial that has trained 5 of the planted 40 epochs has 35 left
    (estimate,) = status.time_left
    running_v = 35 * (a + b * 130 + c * 130**2) + EPOCHS * sum(
        a + b * h + c * h * h for h in (120, 140, 150)
    )
    assert estimate.studies["jsb/V"].compute_s == pytest.approx(running_v, rel=1e-6)
    assert main(["status", "--storage", url, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [row["stale"] for row in shown["processes"]] == [0, 1]
    assert {row["part"]: row["workers"] for row in shown["time_left"]} == {"round": 5, "study": 5}
    tables = study.status(url)
    assert set(tables) == {"studies", "time_left", "processes", "hosts"}
    assert list(tables["processes"].host) == ["node-a", "node-b"]


def test_status_fits_80_columns_and_labels_validation_and_test(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the first line is the storage's URL, as long as its path
    url = "sqlite:///s.db"
    holder = {"host": "a-rather-long-host-name.cluster.example.org", "pid": 4242, "workers": 16}
    _plant(url, [20, 40, 60, 80, 100], [120, 140], running=[(150, holder, 2)])
    _beat(url, (7,))
    assert main(["status", "--storage", url]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(map(len, lines)) <= 80 and "…" not in out, out
    for header in ("complete", "requeued", "diverged", "blew up", "best valid", "its test"):
        assert header in out, header
    assert "NLL per step (nats): the best validation value" in out
    assert "a-rather-long-host-name " in out  # the short name, as hostname -s
    assert "time left, at 16 workers:" in out
