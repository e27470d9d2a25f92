"""The runner under faults: exactly once under kills, failures transient until proven, no
orphans, prompt detection, storage outages, read-only reads, foreign studies and files,
and one line for every way a run can end badly.

A kill is simulated in two ways: in this process, a storage call that raises `Crash` (a
BaseException no handler of the runner takes, so nothing after it reaches the storage); or
a real SIGKILL/SIGINT of an `odyssey run` subprocess.
"""

import json
import os
import pickle
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import torch
from optuna.distributions import FloatDistribution
from optuna.storages import RDBStorage
from optuna.trial import TrialState, create_trial
from runs import (
    ODYSSEY,
    POSTGRES,
    alive,
    assert_exact,
    fresh_postgres,
    run_args,
    slow_epochs,
    wait_for,
    workers_of,
)

import variants
from study.cli import build_parser, main
from study.errors import CheckpointError, UserError
from study.runner import queue as queue_module
from study.runner import workers
from study.runner.locks import exclusive_sqlite
from study.runner.options import RunOptions
from study.runner.queue import TrialQueue
from study.runner.retries import state_counts
from study.runner.search import SEARCH_SPACE
from study.runner.signals import StopSignals
from study.runner.storage import open_storage, sqlite_file, without_password
from study.training.protocol import PROTOCOLS
from study.training.trainer import PopulationTrainer, TrialConfig
from study.training.trainer import TrialState as TrainState
from synthetic_study import fill

LINUX = pytest.mark.skipif(sys.platform != "linux", reason="reads processes from /proc")
NAME = "jsb-original/V"


class Crash(BaseException):
    """The process dies here."""


def crash_at(patch, method, nth, when=None, after=True):
    """Make the main thread's `nth` call of RDBStorage.`method` (among those `when` accepts)
    die just after it is committed (or just before, with `after=False`)."""
    real = getattr(RDBStorage, method)
    calls = []

    def dying(self, *args, **kwargs):
        counted = threading.current_thread() is threading.main_thread() and (
            when is None or when(*args, **kwargs)
        )
        if counted:
            calls.append(1)
            if len(calls) == nth and not after:
                raise Crash
        out = real(self, *args, **kwargs)
        if counted and len(calls) == nth:
            raise Crash
        return out

    patch.setattr(RDBStorage, method, dying)


def _state(state):
    return lambda trial_id, to, values=None: to == state


def _a_copy(study_id, template_trial=None):
    return template_trial is not None and "failed_trial" in template_trial.system_attrs


def ctrl_c_at_second_epoch(patch):
    epoch, calls = PopulationTrainer.train_epoch, []

    def interrupted(self):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        epoch(self)

    patch.setattr(PopulationTrainer, "train_epoch", interrupted)


def trials_of(storage, name=NAME, states=None):
    return optuna.load_study(study_name=name, storage=storage).get_trials(states=states)


KILLS = [
    pytest.param("_create_new_trial", 1, None, False, id="while-queueing-the-sample"),
    pytest.param("record_heartbeat", 1, None, False, id="between-heartbeat-and-running"),
    pytest.param("set_trial_state_values", 1, _state(TrialState.RUNNING), False, id="taken"),
    pytest.param("set_trial_intermediate_value", 3, None, False, id="writing-curves"),
    pytest.param("set_trial_user_attr", 5, None, False, id="writing-a-result"),
    pytest.param("set_trial_state_values", 1, _state(TrialState.COMPLETE), False, id="told"),
    # Ctrl-C, and a kill (or a second Ctrl-C) while the running trials go back to the queue
    pytest.param("set_trial_state_values", 1, _state(TrialState.FAIL), True, id="ctrl-c-failed"),
    pytest.param("_create_new_trial", 1, _a_copy, True, id="ctrl-c-copied"),
]


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("method, nth, when, interrupt", KILLS)
def test_a_kill_at_any_step_leaves_each_configuration_complete_exactly_once(
    method, nth, when, interrupt, tmp_path, tiny_jsb, monkeypatch
):
    storage = f"sqlite:///{tmp_path}/study.db"
    args = run_args(storage, tiny_jsb, tmp_path, trials=2, variants="V")
    with monkeypatch.context() as patch:
        crash_at(patch, method, nth, when)
        if interrupt:
            ctrl_c_at_second_epoch(patch)
        with pytest.raises(Crash):
            main(args)
    assert main(args) == 0
    assert_exact(storage, [NAME], 2)


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES, reason="set ODYSSEY_TEST_POSTGRES_URL (.ci/run does)")
@pytest.mark.timeout(180)
def test_a_kill_while_trials_go_back_to_the_queue_on_postgres(tmp_path, tiny_jsb, monkeypatch):
    args = run_args(fresh_postgres(), tiny_jsb, tmp_path, trials=2, variants="V")
    with monkeypatch.context() as patch:
        crash_at(patch, "_create_new_trial", 1, _a_copy)
        ctrl_c_at_second_epoch(patch)
        with pytest.raises(Crash):
            main(args)
    assert main(args) == 0
    assert_exact(POSTGRES, [NAME], 2)


@pytest.mark.timeout(120)
def test_a_trial_left_running_without_a_heartbeat_goes_stale(tmp_path, tiny_jsb, monkeypatch):
    storage = f"sqlite:///{tmp_path}/study.db"
    args = run_args(storage, tiny_jsb, tmp_path, trials=2, variants="V")
    with monkeypatch.context() as patch:
        crash_at(patch, "record_heartbeat", 1, after=False)
        with pytest.raises(Crash):
            main(args)
    # What a process killed between taking a trial and its first heartbeat leaves behind.
    rdb = RDBStorage(storage)
    study_id = rdb.get_study_id_from_name(NAME)
    for trial in trials_of(storage, states=(TrialState.WAITING,)):
        rdb.set_trial_state_values(
            rdb.get_trial_id_from_study_id_trial_number(study_id, trial.number),
            TrialState.RUNNING,
        )
    assert main(args) == 0
    assert_exact(storage, [NAME], 2)


# --- failures are transient until proven ---------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize(
    "full_disk",
    [
        # a write to /dev/full fails as on a full disk: ENOSPC through the Python file
        lambda path: os.symlink("/dev/full", f"{path}.tmp"),  # the file save writes first
        # torch's own error where its zip writer's write comes up short (as seen on a disk
        # that filled during a save); raised here, since a disk cannot be filled safely
        None,
    ],
    ids=["ENOSPC", "torch-unexpected-pos"],
)
def test_a_full_disk_stops_the_run_at_once_and_a_rerun_resumes(
    full_disk, tmp_path, tiny_jsb, monkeypatch, capsys
):
    """From epoch 2 on, checkpoints cannot be written: the run stops at once with one line
    (exit 2), its trials go back to the queue with no attempt counted, and a rerun with
    space resumes them from their checkpoints of epoch 1."""
    storage = f"sqlite:///{tmp_path}/study.db"
    args = run_args(storage, tiny_jsb, tmp_path, trials=2, variants="V")
    save = TrainState.save
    real_torch_save = torch.save

    def short_write(obj, file):
        real_torch_save(obj, file)
        raise RuntimeError(
            "[enforce fail at inline_container.cc:672] . unexpected pos 1088 vs 1024"
        )

    def full(self, path):
        if self.epoch < 2:
            return save(self, path)
        if full_disk is not None:
            full_disk(path)
            try:
                return save(self, path)
            finally:
                Path(f"{path}.tmp").unlink(missing_ok=True)
        torch.save = short_write
        try:
            return save(self, path)
        finally:
            torch.save = real_torch_save

    with monkeypatch.context() as patch:
        patch.setattr(TrainState, "save", full)
        assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[1:]  # after the run's first line
    assert len(err) == 1 and err[0].startswith("odyssey run: error: cannot write the checkpoint")
    reason = "No space left on device" if full_disk else "[enforce fail at inline_container"
    assert f".pt ({reason}" in err[0], err
    assert "went back to the queue: free space or give --checkpoints a writable folder" in err[0]
    assert not list((tmp_path / "ckpt").rglob("*.tmp"))
    counts = state_counts(trials_of(storage))
    assert (counts["failed"], counts["running"], counts["waiting"]) == (0, 0, 2), counts
    assert all(
        t.user_attrs["failure"] == "interrupted"
        for t in trials_of(storage, states=(TrialState.FAIL,))
    )

    resumed = []
    add_state = PopulationTrainer.add_state
    monkeypatch.setattr(
        PopulationTrainer,
        "add_state",
        lambda self, s: resumed.append(s.epoch) or add_state(self, s),
    )
    assert main(args) == 0  # a rerun retries them, from their checkpoints of epoch 1
    assert_exact(storage, [NAME], 2)
    assert resumed == [1, 1]


def test_a_worker_that_cannot_write_a_checkpoint_stops_the_run(tmp_path, tiny_jsb):
    """In a worker process: its job's first checkpoint goes to a folder that does not
    exist, and the coordinator's pool raises the one line, not a trial's failure."""
    job = workers.Job(
        "jsb-original",
        tiny_jsb,
        "V",
        variants.resolve("V"),
        PROTOCOLS["smoke"],
        "cpu",
        0,
        ((0, TrialConfig(4, 1e-2, 0.9, 0.0, seed=1), str(tmp_path / "missing" / "0-1.pt")),),
    )
    with workers.WorkerPool(1, 1, on_epoch=lambda report: None) as pool:
        pool.submit(job)
        with pytest.raises(CheckpointError, match=r"0-1.pt \(No such file or directory\)"):
            for _ in range(600):  # a guard: the worker stops within its first epoch
                assert not pool.wait(0.5), "the job ended as a trial's outcome"


def test_a_trial_whose_training_raises_the_same_error_three_times_stays_failed(
    tmp_path, tiny_jsb, monkeypatch, capsys
):
    storage = f"sqlite:///{tmp_path}/study.db"
    args = run_args(
        storage, tiny_jsb, tmp_path, trials=2, variants="V", extra=("--population", "1")
    )
    real = workers.train_job

    def broken(job, report=None):  # configuration 0 always raises
        if any(Path(checkpoint).name.startswith("0-") for *_, checkpoint in job.trials):
            raise RuntimeError("boom")
        return real(job, report)

    monkeypatch.setattr(workers, "train_job", broken)
    for _ in range(2):  # a rerun does not try it again
        assert main(args) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("odyssey run: 1 trial failed: RuntimeError: boom (1)."), err
        trials = trials_of(storage)
        assert len(trials) == 4 and state_counts(trials) == {
            "complete": 1,
            "running": 0,
            "waiting": 0,
            "failed": 1,
            "requeued": 2,
        }
    assert main(["status", "--storage", storage, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["studies"]
    assert row["failed"] == 1 and row["errors"] == {"RuntimeError: boom": 1}
    assert main(["status", "--storage", storage]) == 0
    assert f"{NAME}: 1 failed: RuntimeError: boom" in capsys.readouterr().out


@LINUX
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_dead_worker_is_seen_at_once_and_fails_only_its_own_population(tmp_path, tiny_jsb):
    storage = f"sqlite:///{tmp_path}/study.db"
    # epochs enough that the other population still trains when the death is seen, on a
    # busy machine too (an epoch of the tiny benchmark takes milliseconds)
    extra = ("--workers", "2", "--max-epochs", "300", "--patience", "300")
    args = run_args(storage, tiny_jsb, tmp_path, trials=4, variants="V", extra=extra)
    proc = subprocess.Popen(
        ODYSSEY + args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        assert wait_for(lambda: len(list((tmp_path / "ckpt").rglob("*.pt"))) == 4), "no training"
        victim = workers_of(proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: trials_of(storage, states=(TrialState.FAIL,)))
        # seen while the other worker's population still trains
        failed = trials_of(storage, states=(TrialState.FAIL,))
        running = trials_of(storage, states=(TrialState.RUNNING,))
        others = [t for t in running if "failed_trial" not in t.system_attrs]  # not copies
        assert len(failed) == 2 and len(others) == 2, (failed, running)
        assert all(t.user_attrs["error"].startswith("worker killed by SIGKILL") for t in failed)
        _, err = proc.communicate(timeout=240)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0, err.decode()
    assert_exact(storage, [NAME], 4)
    assert len(trials_of(storage, states=(TrialState.FAIL,))) == 2  # only its population


@LINUX
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_workers_exit_when_their_coordinator_is_killed(tmp_path, tiny_jsb):
    storage = f"sqlite:///{tmp_path}/study.db"
    extra = ("--workers", "2", "--max-epochs", "100", "--patience", "100")
    args = run_args(storage, tiny_jsb, tmp_path, trials=4, variants="V", extra=extra)
    proc = subprocess.Popen(
        ODYSSEY + args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    pids = []
    try:
        assert wait_for(lambda: len(list((tmp_path / "ckpt").rglob("*.pt"))) == 4), "no training"
        pids = workers_of(proc.pid)
        assert len(pids) == 2
        os.kill(proc.pid, signal.SIGKILL)  # the coordinator alone
        proc.wait()
        assert wait_for(lambda: not any(alive(pid) for pid in pids), timeout=60), "orphans"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.timeout(120)
def test_with_one_worker_stale_trials_fail_while_it_trains(tmp_path, tiny_jsb, monkeypatch):
    storage = f"sqlite:///{tmp_path}/study.db"
    args = run_args(storage, tiny_jsb, tmp_path, trials=3, variants="V")
    with monkeypatch.context() as patch:
        crash_at(patch, "record_heartbeat", 1, after=False)
        with pytest.raises(Crash):
            main(args)
    # a trial another coordinator took (heartbeat, RUNNING) and then died with
    rdb = RDBStorage(storage)
    other = rdb.get_trial_id_from_study_id_trial_number(rdb.get_study_id_from_name(NAME), 2)
    rdb.record_heartbeat(other)
    rdb.set_trial_state_values(other, TrialState.RUNNING)
    epoch, seen = PopulationTrainer.train_epoch, []

    def watch(self):
        if not seen:  # its heartbeat now goes stale while this run trains
            with sqlalchemy.create_engine(storage).begin() as db:
                db.execute(
                    sqlalchemy.text(
                        "UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00' "
                        "WHERE trial_id = :id"
                    ),
                    {"id": other},
                )
            seen.append(wait_for(lambda: rdb.get_trial(other).state == TrialState.FAIL, 30))
        epoch(self)

    monkeypatch.setattr(PopulationTrainer, "train_epoch", watch)
    assert main(args) == 0
    assert seen == [True]
    assert_exact(storage, [NAME], 3)


# --- storage outages ---------------------------------------------------------------------


def outage(*_args, **_kwargs):
    """What Optuna raises when the server drops the connection: its own words, the driver's
    error behind them."""
    wrapped = optuna.exceptions.StorageInternalError(
        "An exception is raised during the commit. This typically happens due to invalid data "
        "in the commit, e.g. exceeding max length. "
    )
    wrapped.__cause__ = sqlalchemy.exc.OperationalError(
        "UPDATE trials", {}, Exception("server closed the connection unexpectedly")
    )
    return wrapped


def flaky(patch, method, failing):
    """RDBStorage.`method` fails (as a lost connection) on the calls numbered in `failing`."""
    real, calls = getattr(RDBStorage, method), []

    def call(self, *args, **kwargs):
        calls.append(1)
        if len(calls) in failing:
            raise outage()
        return real(self, *args, **kwargs)

    patch.setattr(RDBStorage, method, call)


@pytest.mark.timeout(180)
def test_transient_storage_errors_are_retried(tmp_path, tiny_jsb, monkeypatch):
    storage = f"sqlite:///{tmp_path}/study.db"
    for method in (
        "_create_new_trial",
        "get_trial_id_from_study_id_trial_number",
        "record_heartbeat",
        "set_trial_intermediate_value",
        "set_trial_user_attr",
        "set_trial_state_values",
    ):
        flaky(monkeypatch, method, failing={2, 3})
    assert main(run_args(storage, tiny_jsb, tmp_path, trials=3, variants="V")) == 0
    assert_exact(storage, [NAME], 3)


@pytest.mark.timeout(180)
def test_a_lasting_outage_ends_the_run_with_one_line_and_keeps_what_was_told(
    tmp_path, tiny_jsb, monkeypatch, capsys
):
    storage = f"sqlite:///{tmp_path}/study.db"
    args = run_args(storage, tiny_jsb, tmp_path, trials=2, variants="V")
    with monkeypatch.context() as patch:
        flaky(patch, "set_trial_state_values", failing=range(4, 10_000))  # after 1 COMPLETE
        assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"odyssey run: error: lost the storage {storage} for 3 s ("), last
    assert "server closed the connection unexpectedly); every result told" in last
    assert len(trials_of(storage, states=(TrialState.COMPLETE,))) == 1
    assert main(args) == 0
    assert_exact(storage, [NAME], 2)


def retry_waits(patch) -> list[float]:
    """The waits of the coordinator's retries from now on."""
    waits, sleep = [], time.sleep
    patch.setattr("study.runner.outages.time.sleep", lambda s: waits.append(s) or sleep(s))
    return waits


@pytest.mark.timeout(120)
def test_a_locked_database_is_an_outage_quoted_in_the_databases_words(
    tmp_path, tiny_jsb, monkeypatch, capsys
):
    """Another process holds SQLite's write lock for longer than the grace period: the run
    retries, then ends with one line quoting SQLite, not Optuna's wrapper."""
    path = tmp_path / "study.db"
    open_storage(f"sqlite:///{path}", create=True)
    storage = f"sqlite:///{path}?timeout=0.05"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # readers may read; no one else may write
    try:
        waits = retry_waits(monkeypatch)
        assert main(run_args(storage, tiny_jsb, tmp_path, trials=1, variants="V")) == 2
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and waits, err
    assert err[0].startswith(f"odyssey run: error: lost the storage {storage} for 3 s ("), err
    assert "(database is locked); every result told before is kept" in err[0], err


def test_a_read_only_storage_fails_at_once_with_the_databases_reason(
    tmp_path, tiny_jsb, monkeypatch, capsys
):
    """A permanent error is no outage: no retries, and SQLite's own reason."""
    path = tmp_path / "study.db"
    open_storage(f"sqlite:///{path}", create=True)
    before = path.read_bytes()
    storage = f"sqlite:///file:{path}?mode=ro&uri=true"  # opened read-only, even by root
    waits = retry_waits(monkeypatch)
    assert main(run_args(storage, tiny_jsb, tmp_path, trials=1, variants="V")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and not waits, (err, waits)
    assert err[0].startswith(f"odyssey run: error: the storage {storage} failed: attempt to "), err
    assert "write a readonly database (not an outage: not retried)" in err[0], err
    assert path.read_bytes() == before


def make_unwritable(path: Path) -> None:
    """`path` can no longer be written: immutable for root (whom modes do not stop), else
    read-only."""
    if os.geteuid() != 0:
        path.chmod(0o555 if path.is_dir() else 0o444)
    elif subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("chattr +i is not supported here")


def make_writable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_storage_that_becomes_read_only_stops_the_run_at_once(
    what, tmp_path, tiny_jsb, monkeypatch, capsys
):
    """After one trial is told, the SQLite file (or its folder) can no longer be written.
    A connection opened before says only SQLite's "disk I/O error" (as `chattr +i` gives
    it; raised here, since a connection opened by a process that can write keeps
    writing through a mere change of mode): the run stops at once, quoting SQLite and
    naming what is not writable, instead of waiting out an outage."""
    folder = tmp_path / "storage"
    folder.mkdir()
    path = folder / "study.db"
    storage = f"sqlite:///{path}"
    real, calls = RDBStorage.set_trial_state_values, []
    unwritable = path if what == "file" else folder

    def call(self, *args, **kwargs):
        calls.append(1)
        if len(calls) < 4:  # RUNNING, RUNNING, COMPLETE
            return real(self, *args, **kwargs)
        make_unwritable(unwritable)
        error = optuna.exceptions.StorageInternalError("An exception is raised during the commit.")
        error.__cause__ = sqlalchemy.exc.OperationalError(
            "UPDATE trials", {}, sqlite3.OperationalError("disk I/O error")
        )
        raise error

    waits = retry_waits(monkeypatch)
    monkeypatch.setattr(RDBStorage, "set_trial_state_values", call)
    try:
        assert main(run_args(storage, tiny_jsb, tmp_path, trials=2, variants="V")) == 2
    finally:
        make_writable(unwritable)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert not waits, waits
    assert err == (
        f"odyssey run: error: the storage {storage} failed: disk I/O error: {unwritable} is not "
        "writable (not an outage: not retried); every result told before is kept"
    )
    assert len(trials_of(storage, states=(TrialState.COMPLETE,))) == 1


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES, reason="set ODYSSEY_TEST_POSTGRES_URL (.ci/run does)")
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_postgres_restart_is_survived(tmp_path, tiny_jsb):
    storage = fresh_postgres()
    extra = ("--max-epochs", "10", "--patience", "10")
    args = run_args(storage, tiny_jsb, tmp_path, trials=4, variants="V", extra=extra)
    proc = subprocess.Popen(ODYSSEY + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    engine = sqlalchemy.create_engine(storage)
    kill = sqlalchemy.text(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    drops = 0  # times the server dropped the run's connections while it trained
    try:
        assert wait_for(lambda: list((tmp_path / "ckpt").rglob("*.pt"))), "no training"
        while drops < 3 and proc.poll() is None:  # the run connects only when it writes
            with engine.begin() as db:
                drops += db.execute(kill).scalar() >= 1
            time.sleep(0.1)
        _, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
        proc.wait()
        engine.dispose()
    assert drops >= 1, "the run held no connection to drop while it trained"
    assert proc.returncode == 0, err.decode()
    assert_exact(storage, [NAME], 4)


# --- read-only, foreign ------------------------------------------------------------------


def test_reads_write_nothing_and_another_applications_database_is_refused(
    tmp_path, tiny_jsb, capsys
):
    app = tmp_path / "app.db"
    with sqlite3.connect(app) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    # another application's file whose table has one of Optuna's names
    trials = tmp_path / "trials.db"
    with sqlite3.connect(trials) as db:
        db.execute("CREATE TABLE trials (id INTEGER PRIMARY KEY, owner TEXT)")
        db.execute("INSERT INTO trials (owner) VALUES ('someone')")
    empty = tmp_path / "empty.db"
    empty.touch()
    ours = tmp_path / "ours.db"
    fill(f"sqlite:///{ours}", "jsb", {"V": 0.0}, 3)
    # an Optuna storage without its version records: opening it the usual way writes them
    unversioned = tmp_path / "unversioned.db"
    fill(f"sqlite:///{unversioned}", "jsb", {"V": 0.0}, 3)
    with sqlite3.connect(unversioned) as db:
        db.execute("DROP TABLE alembic_version")
    files = {path: path.read_bytes() for path in (app, trials, empty, ours, unversioned)}
    for path, message in (
        (app, "another application's database (tables users)"),
        (trials, "another application's database (tables trials)"),
        (empty, "holds no Optuna storage"),
        (unversioned, "lacks Optuna's version records, which reading it would write"),
    ):
        url = f"sqlite:///{path}"
        for argv in (
            ["status", "--storage", url],
            ["report", "--storage", url, "--out", str(tmp_path / "out")],
            run_args(url, tiny_jsb, tmp_path, trials=1, variants="V"),
        ):
            if path in (empty, unversioned) and argv[0] == "run":
                continue  # for `run` to fill
            assert main(argv) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and message in err[0], err
            assert err[0].startswith(f"odyssey {argv[0]}: error: storage {url} "), err
    assert main(["status", "--storage", f"sqlite:///{ours}"]) == 0
    assert {path: path.read_bytes() for path in files} == files
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".pkl") == sorted(
        p.name for p in files
    )  # no lock, checkpoint or report folder left beside them


def test_foreign_studies_are_refused_by_run_and_skipped_by_status(tmp_path, tiny_jsb, capsys):
    storage = f"sqlite:///{tmp_path}/study.db"
    other = optuna.create_study(storage=storage, study_name=NAME)
    other.add_trial(
        create_trial(params={"x": 1.0}, distributions={"x": FloatDistribution(0, 2)}, value=1.0)
    )
    both = optuna.create_study(
        storage=storage, study_name="jsb-original/CIFG", directions=["minimize", "minimize"]
    )
    params = {"hidden_size": 20, "learning_rate": 1e-3, "one_minus_momentum": 0.1, "input_noise": 0}
    both.add_trial(create_trial(params=params, distributions=SEARCH_SPACE, values=[1.0, 2.0]))
    for variant, reason in (("V", "its parameters are x"), ("CIFG", "objectives are minimize, m")):
        assert main(run_args(storage, tiny_jsb, tmp_path, trials=1, variants=variant)) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith(f"odyssey run: error: study jsb-original/{variant} in this storage")
        assert reason in err
    assert len(other.trials) == 1 and len(both.trials) == 1
    assert main(["status", "--storage", storage, "--json"]) == 0
    captured = capsys.readouterr()
    assert not any(json.loads(captured.out).values())  # every table empty
    assert sorted(captured.err.strip().splitlines()) == [
        "odyssey status: skipped study jsb-original/CIFG: not this tool's (its objectives are "
        "minimize, minimize, not one value to minimize)",
        "odyssey status: skipped study jsb-original/V: not this tool's (its parameters are x, "
        "not hidden_size, learning_rate, one_minus_momentum, input_noise)",
    ]


# --- the SQLite lock, URLs -----------------------------------------------------------------


def test_the_sqlite_lock_is_the_files_however_the_url_names_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.db").symlink_to(tmp_path / "s.db")
    with exclusive_sqlite("sqlite:///s.db"):
        for other in (
            f"sqlite:///{tmp_path}/s.db?timeout=60",
            "sqlite:///./sub/../s.db",
            "sqlite:///link.db",
            f"sqlite:///file:{tmp_path}/s.db?uri=true",  # SQLite URIs, as pysqlite opens them
            f"sqlite:///file://localhost{tmp_path}/s.db?mode=rwc&uri=true",
            "sqlite:///file:s.db?uri=1",
            f"sqlite:///file:{str(tmp_path).replace('/', '%2F')}%2Fs.db?uri=true",
        ):
            with pytest.raises(UserError, match="another `odyssey run`"), exclusive_sqlite(other):
                pass
        assert (tmp_path / "s.db.lock").exists()
    assert not (tmp_path / "s.db.lock").exists()  # removed when the run ends


def test_the_sqlite_lock_is_the_files_through_a_hard_link(tmp_path):
    """A hard link is another name of the same file (device and inode): refused as well,
    whichever name runs first."""
    (tmp_path / "s.db").write_bytes(b"")
    os.link(tmp_path / "s.db", tmp_path / "hard.db")
    for first, second in (("s.db", "hard.db"), ("hard.db", "s.db")):
        with (
            exclusive_sqlite(f"sqlite:///{tmp_path}/{first}"),
            pytest.raises(UserError, match="another `odyssey run`"),
            exclusive_sqlite(f"sqlite:///{tmp_path}/{second}"),
        ):
            pass
    with exclusive_sqlite(f"sqlite:///{tmp_path}/hard.db"):  # each released when it ends
        pass


def test_a_uri_filename_opens_the_file_the_lock_is_keyed_on(tmp_path):
    """The lock's reading of a `file:` URI is SQLite's: what one URL writes, the other reads."""
    uri = f"sqlite:///file:{tmp_path}/s.db?uri=true"
    fill(uri, "jsb", {"V": 0.0}, 3)
    assert [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{tmp_path}/s.db")] == [
        "jsb/V"
    ]
    assert sqlite_file(uri) == tmp_path / "s.db"


def test_a_timeout_in_the_url_works_for_every_command(tmp_path, tiny_jsb, capsys):
    storage = f"sqlite:///{tmp_path}/study.db?timeout=30"
    assert main(run_args(storage, tiny_jsb, tmp_path, trials=1, variants="V")) == 0
    capsys.readouterr()
    assert main(["status", "--storage", storage, "--json"]) == 0
    assert [row["complete"] for row in json.loads(capsys.readouterr().out)["studies"]] == [1]
    report = f"sqlite:///{tmp_path}/report.db?timeout=30"
    fill(report.split("?")[0], "jsb", {"V": 0.0, "NP": 0.0}, 6)
    assert main(["report", "--storage", report, "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "REPORT.md").is_file()
    assert sorted(p.name for p in tmp_path.glob("*.db*")) == ["report.db", "study.db"]


@pytest.mark.parametrize(
    "storage",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file::memory:?uri=true",
        "sqlite:///file:x.db?mode=memory&cache=shared&uri=true",
    ],
)
def test_an_in_memory_storage_is_refused_before_any_work(storage, tmp_path, tiny_jsb, capsys):
    """Its results would vanish with the process."""
    assert main(run_args(storage, tiny_jsb, tmp_path, trials=1, variants="V")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"odyssey run: error: storage {storage} is an in-memory SQLite database, which "
        "vanishes with the process; give a file, e.g. sqlite:///results/odyssey.db"
    ]
    assert not (tmp_path / "ckpt").exists()


def without_checkpoints_option(args: list[str]) -> list[str]:
    at = args.index("--checkpoints")
    return args[:at] + args[at + 2 :]


def test_checkpoints_live_beside_the_storage_and_are_found_whatever_the_url_calls_it(
    tmp_path, tiny_jsb, monkeypatch, capsys
):
    """Stopped after one epoch, then resumed through another spelling of the same file,
    from another folder: the trials go on from their checkpoints, which lie beside the
    storage file, and nothing is written into the current folder."""
    (tmp_path / "data").mkdir()
    here = tmp_path / "elsewhere"
    here.mkdir()
    monkeypatch.chdir(here)
    first = f"sqlite:///{tmp_path}/data/study.db"
    args = without_checkpoints_option(run_args(first, tiny_jsb, tmp_path, trials=2, variants="V"))
    with monkeypatch.context() as patch:
        slow_epochs(patch)
        assert main([*args, "--time-limit", "0.5"]) == 0  # stops after the first epoch
    folder = tmp_path / "data" / "study.db.checkpoints" / "jsb-original" / "V"
    assert len(list(folder.glob("*.pt"))) == 2
    resumed = []
    add_state = PopulationTrainer.add_state
    monkeypatch.setattr(
        PopulationTrainer,
        "add_state",
        lambda self, s: resumed.append(s.epoch) or add_state(self, s),
    )
    again = "sqlite:///../data/./study.db?timeout=60"
    args = without_checkpoints_option(run_args(again, tiny_jsb, tmp_path, trials=2, variants="V"))
    assert main(args) == 0
    assert resumed == [1, 1]
    assert_exact(first, [NAME], 2)
    assert not list(here.iterdir())
    assert not list(folder.glob("*.pt"))  # dropped once told


def test_a_checkpoint_folder_that_cannot_be_made_is_refused_before_the_storage_is_written(
    tmp_path, tiny_jsb, capsys
):
    storage = f"sqlite:///{tmp_path}/study.db"
    (tmp_path / "study.db.checkpoints").mkdir()
    (tmp_path / "study.db.checkpoints" / "jsb-original").write_text("")  # a file in the way
    args = without_checkpoints_option(run_args(storage, tiny_jsb, tmp_path, trials=2, variants="V"))
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("odyssey run: error: checkpoint folder "), err
    assert "jsb-original/V: Not a directory; give --checkpoints a folder" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.db.checkpoints"]  # no storage


def test_passwords_are_masked_where_they_stand_in_the_url():
    url = "postgresql+psycopg2://me:p@host/db"
    text = "(psycopg2.OperationalError) at postgresql+psycopg2://me:p@host/db, port 5432"
    assert without_password(text, url) == (
        "(psycopg2.OperationalError) at postgresql+psycopg2://me:***@host/db, port 5432"
    )
    encoded = "postgresql://me:p%40ss@host/db"  # a password with @, as a URL must spell it
    for shown in (encoded, "postgresql://me:p@ss@host/db"):
        assert without_password(f"cannot reach {shown}", encoded) == (
            "cannot reach postgresql://me:***@host/db"
        )


def test_output_into_a_closed_pipe_ends_quietly(tmp_path, monkeypatch, capsys):
    """`odyssey status --json | head -0`: the reader went away; no error line, and exit
    status 1 as where rich prints the tables."""
    storage = f"sqlite:///{tmp_path}/s.db"
    fill(storage, "jsb", {"V": 0.0}, 3)
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w", buffering=1) as pipe:
        monkeypatch.setattr(sys, "stdout", pipe)
        assert main(["status", "--storage", storage, "--json"]) == 1
        monkeypatch.undo()
    assert capsys.readouterr().err == ""


# --- clean edges -----------------------------------------------------------------------------


def test_malformed_user_files_are_one_line(tmp_path, capsys, fresh_data_home):
    strings = tmp_path / "strings.pkl"
    strings.write_bytes(pickle.dumps({s: ["abc"] for s in ("train", "valid", "test")}))
    iam = tmp_path / "iam"
    for folder in ("lineStrokes", "ascii"):
        (iam / folder).mkdir(parents=True)
    for name in ("trainset", "testset_v", "testset_t", "testset_f"):
        (iam / f"{name}.txt").write_bytes(bytes(range(128, 256)))
    another = tmp_path / "another.pkl"  # well formed, but not the paper's file
    another.write_bytes(pickle.dumps({s: [[(60,), (62,)]] for s in ("train", "valid", "test")}))
    for benchmark, data, message in (
        ("jsb-original", strings, "train[0] is not a list of time steps"),
        ("jsb-original", another, f"{another} has SHA-256 "),
        ("iam-ondb", iam, "trainset.txt is not a text file of form ids"),
    ):
        args = run_args(f"sqlite:///{tmp_path}/s.db", str(data), tmp_path, trials=1, variants="V")
        args[args.index("jsb-original")] = benchmark
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


@LINUX
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("moment", ["workers-starting", "training"])
def test_ctrl_c_is_one_line_and_exit_130_at_any_moment(moment, tmp_path, tiny_jsb):
    stop_like_ctrl_c(moment, signal.SIGINT, tmp_path, tiny_jsb)


@LINUX
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigterm_stops_like_ctrl_c(tmp_path, tiny_jsb):
    """What a batch system sends at its wall-time limit; the trials go back to the queue."""
    storage = stop_like_ctrl_c("training", signal.SIGTERM, tmp_path, tiny_jsb)
    counts = state_counts(optuna.load_study(study_name="jsb-original/V", storage=storage).trials)
    assert counts["running"] == 0 and counts["failed"] == 0 and counts["requeued"] >= 1


# Run in a fresh interpreter, where the first worker also starts multiprocessing's
# resource tracker (which unblocks SIGINT as it starts): the coordinator and its worker both
# get a Ctrl-C the moment the worker is spawned, as a terminal signals the process group.
CTRL_C_AS_A_WORKER_STARTS = """
import os, signal
from multiprocessing.context import SpawnProcess
from study.runner import workers

start = SpawnProcess.start

def start_then_ctrl_c(process):
    start(process)
    os.kill(process.pid, signal.SIGINT)  # the worker, as it imports torch
    signal.raise_signal(signal.SIGINT)  # the coordinator

SpawnProcess.start = start_then_ctrl_c
pool = workers.WorkerPool(1, 1, on_epoch=print)
try:
    pool._start()
except KeyboardInterrupt:
    (worker,) = pool._workers  # the pool's already, to be killed with it
    worker.conn.close()  # a worker ends when its coordinator closes the pipe
    worker.process.join(120)
    print("raised after the start; the worker exited with", worker.process.exitcode)
else:
    print("the Ctrl-C was lost")
"""


@LINUX
@pytest.mark.timeout(180)
def test_a_ctrl_c_as_a_worker_starts_stops_the_coordinator_and_not_the_worker():
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_AS_A_WORKER_STARTS], capture_output=True, timeout=170
    )
    said = done.stdout.decode().strip()
    assert said == "raised after the start; the worker exited with 0", done.stderr.decode()
    assert done.stderr.decode() == ""  # no traceback from the worker


def test_a_ctrl_c_while_the_monitor_reads_the_status_waits_for_the_read(
    tmp_path, tiny_jsb, monkeypatch, capsys
):
    """The log's time left at each round is read from the storage as every call of the run
    is: a Ctrl-C meanwhile comes at the read's end (cut short, a SQLite read keeps its lock
    against the requeue), and the trials taken go back to the queue."""
    storage = f"sqlite:///{tmp_path}/study.db"
    real, reads = queue_module.storage_status, []

    def interrupted(opened):
        signal.raise_signal(signal.SIGINT)
        reads.append(real(opened))
        return reads[-1]

    monkeypatch.setattr(queue_module, "storage_status", interrupted)
    assert main(run_args(storage, tiny_jsb, tmp_path, trials=2, variants="V")) == 130
    assert len(reads) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("odyssey run: interrupted; 2 running trials went back"), err
    counts = state_counts(trials_of(storage))
    assert (counts["running"], counts["waiting"], counts["requeued"]) == (0, 2, 2), counts


def stop_like_ctrl_c(moment, signum, tmp_path, tiny_jsb) -> str:
    storage = f"sqlite:///{tmp_path}/study.db"
    extra = ("--workers", "2", "--max-epochs", "100", "--patience", "100")
    args = run_args(storage, tiny_jsb, tmp_path, trials=4, variants="V", extra=extra)
    proc = subprocess.Popen(
        ODYSSEY + args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        if moment == "workers-starting":
            assert wait_for(lambda: workers_of(proc.pid), timeout=120)
        else:
            assert wait_for(lambda: list((tmp_path / "ckpt").rglob("*.pt"))), "no training"
        os.killpg(proc.pid, signum)  # as a terminal does: the whole process group
        _, err = proc.communicate(timeout=120)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 130, lines
    assert lines[-1].startswith("odyssey run: interrupted"), lines
    assert not [line for line in lines if "Traceback" in line or "KeyboardInterrupt" in line]
    assert len(lines) == 2, lines  # the run's first line, then the interruption's
    return storage


def _options(parser, command):
    sub = next(a for a in parser._actions if isinstance(a.choices, dict)).choices[command]
    return {o for a in sub._actions for o in a.option_strings}


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--benchmark", "jsb", "--forget-bias", "nan"],
        ["run", "--benchmark", "jsb", "--max-epochs", "0"],
        ["run", "--benchmark", "jsb", "--time-limit", "-1"],
        ["run", "--benchmark", "jsb", "--sampler", "grid"],
        ["run", "--benchmark", "jsb", "--heartbeat", "0"],
        ["train", "--benchmark", "jsb", "--hidden-size", "5", "--learning-rate", "0.1"]
        + ["--momentum", "0.9", "--patience", "0"],
        ["train", "--benchmark", "jsb", "--hidden-size", "5", "--learning-rate", "0.1"]
        + ["--momentum", "0.9", "--variant", "XYZ"],
        ["bench", "--training", "jsb", "--sequences", "0"],
    ],
)
def test_messages_name_only_options_that_exist(
    argv, capsys, tmp_path, monkeypatch, fresh_data_home
):
    """Each bad value is named by the option that set it, and refused before any data is
    built."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    named = set(re.findall(r"--[a-z][a-z-]*", err))
    assert named and named <= _options(build_parser(), argv[0]), err
    assert not fresh_data_home.exists()


# --- races with another coordinator --------------------------------------------------------


def coordinator_options(tmp_path, tiny_jsb, trials=2):
    return RunOptions(
        benchmark="jsb-original",
        variants=("V",),
        protocol=PROTOCOLS["smoke"],
        trials=trials,
        storage=f"sqlite:///{tmp_path}/study.db",
        population=2,
        heartbeat=1,
        data=tiny_jsb,
        checkpoints=str(tmp_path / "ckpt"),
    )


def test_take_job_passes_over_a_trial_another_coordinator_finished(tmp_path, tiny_jsb, monkeypatch):
    real = RDBStorage.set_trial_state_values
    raced = []

    def racing(self, trial_id, state, values=None):
        if state == TrialState.RUNNING and not raced:  # the other one was faster
            raced.append(trial_id)
            real(self, trial_id, TrialState.RUNNING)
            real(self, trial_id, TrialState.COMPLETE, [1.0])
        return real(self, trial_id, state, values)

    with TrialQueue(coordinator_options(tmp_path, tiny_jsb)) as coordinator:
        monkeypatch.setattr(RDBStorage, "set_trial_state_values", racing)
        job = coordinator.take_job()
        finished = coordinator.storage.get_trial(raced[0]).number
    assert [number for number, *_ in job.trials] == [1 - finished]


def test_requeue_running_passes_over_a_trial_failed_elsewhere(tmp_path, tiny_jsb):
    with TrialQueue(coordinator_options(tmp_path, tiny_jsb)) as coordinator:
        job = coordinator.take_job()
        assert len(job.trials) == 2
        # another coordinator failed trial 0 as stale meanwhile
        first = next(iter(coordinator.running))
        coordinator.storage.set_trial_state_values(first, TrialState.FAIL)
        assert coordinator.requeue_running() == 1
        counts = coordinator.counts()[NAME]
    assert counts == {"complete": 0, "running": 0, "waiting": 2, "failed": 0, "requeued": 2}


def test_a_stop_inside_a_storage_call_waits_for_the_call(tmp_path, tiny_jsb, monkeypatch):
    # SIGTERM arrives while an epoch's point is being written: the write completes, the stop
    # comes just after it, and the requeue that follows finds a clean storage.
    real = RDBStorage.set_trial_intermediate_value
    written = []

    def signalled(self, trial_id, step, value):
        signal.raise_signal(signal.SIGTERM)  # Python runs the handler right away
        real(self, trial_id, step, value)
        written.append(step)

    with TrialQueue(coordinator_options(tmp_path, tiny_jsb)) as coordinator:
        job = coordinator.take_job()
        numbers = [number for number, *_ in job.trials]
        trained = [workers.TrialProgress(n, 1, 9.0, 9.0, False) for n in numbers]
        report = workers.EpochReport(job.key, 1, trained, [])
        monkeypatch.setattr(RDBStorage, "set_trial_intermediate_value", signalled)
        with coordinator.stops.installed(), pytest.raises(KeyboardInterrupt):
            coordinator.record_epoch(report)
        assert written == [1]  # the first point, whole; the stop came before the second
        monkeypatch.setattr(RDBStorage, "set_trial_intermediate_value", real)
        assert coordinator.requeue_running() == 2
        counts = coordinator.counts()[NAME]
    assert counts == {"complete": 0, "running": 0, "waiting": 2, "failed": 0, "requeued": 2}


def test_stop_signals_wait_for_a_held_call_but_not_twice():
    stops = StopSignals()
    with stops.installed():
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # nothing held: at once, like Ctrl-C
        steps = []
        with pytest.raises(KeyboardInterrupt), stops.held():
            signal.raise_signal(signal.SIGTERM)
            steps.append("after the first")  # held: the call goes on
        assert steps == ["after the first"]
        with pytest.raises(KeyboardInterrupt), stops.held():
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGINT)  # a second stop does not wait
            steps.append("after the second")
        assert steps == ["after the first"] and not stops.pending
    assert signal.getsignal(signal.SIGTERM) is not stops.handle


@pytest.mark.parametrize(
    "url, shown",
    [
        (
            "postgresql+psycopg2://u:p@ss:w/rd@localhost/db",
            "postgresql+psycopg2://u:***@localhost/db",
        ),
        ("postgresql://u:p@ss@localhost:5432/db", "postgresql://u:***@localhost:5432/db"),
        ("postgresql://us@r:pw@localhost/db", "postgresql://us@r:***@localhost/db"),
    ],
)
def test_a_password_with_an_unencoded_at_is_masked_whole_and_refused(url, shown, capsys):
    """SQLAlchemy would read `p` as the password and the rest as the host; the URL is
    refused, saying why, and nothing of the password is printed."""
    assert main(["status", "--storage", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"odyssey status: error: storage {shown}: its user or password holds an unencoded @; "
        "percent-encode it (@ as %40, / as %2F, : as %3A)"
    )
    assert without_password(f"cannot reach {url}", url) == f"cannot reach {shown}"


# --- the report's folder -------------------------------------------------------------------


@pytest.mark.slow
def test_an_interrupted_report_leaves_the_previous_one_intact(tmp_path, monkeypatch, capsys):
    """Ctrl-C once the new tables are written, before REPORT.md: the previous report (its
    tables, REPORT.md and figures) is as it was, the other files of the folder too, and no
    temporary folder is left; a report that completes then replaces it."""
    from study.analysis import report

    storage = f"sqlite:///{tmp_path}/study.db"
    out = tmp_path / "out"
    fill(storage, "jsb", {"V": 0.0, "NP": 0.0}, 6)
    assert main(["report", "--storage", storage, "--out", str(out)]) == 0
    (out / "run.log").write_text("a log kept beside the report")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    fill(storage, "jsb", {"CIFG": 0.0}, 6)  # a third variant: every table changes

    def interrupted(*args):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(report, "_benchmark_section", interrupted)
        capsys.readouterr()
        assert main(["report", "--storage", storage, "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip()
    assert err == f"odyssey report: interrupted; the previous report in {out} is as it was"
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    assert main(["report", "--storage", storage, "--out", str(out)]) == 0
    assert "CIFG" in (out / "summary.csv").read_text()
    assert (out / "run.log").read_text() == "a log kept beside the report"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_a_file_uri_gets_the_report_folder_of_its_path(tmp_path, monkeypatch):
    from study.analysis import default_out

    monkeypatch.chdir(tmp_path)
    for uri in (
        f"sqlite:///file:{tmp_path}/runs/study.db?uri=true",
        f"sqlite:///file://localhost{tmp_path}/runs/study.db?mode=rw&uri=true",
        f"sqlite:///file:{str(tmp_path).replace('/', '%2F')}%2Fruns%2Fstudy.db?uri=true",
    ):
        assert default_out(uri) == default_out(f"sqlite:///{tmp_path}/runs/study.db"), uri
    assert default_out("sqlite:///file:runs/study.db?uri=true") == Path("runs/study")


def test_a_storage_folder_that_does_not_exist_is_refused_outside_results(
    tmp_path, tiny_jsb, monkeypatch, capsys
):
    """A typo in a storage's folder would start a new study: refused, saying where folders
    are made; under results/ (where the default storage lives) the folder is made."""
    monkeypatch.chdir(tmp_path)
    typo = f"sqlite:///{tmp_path}/reslts/study.db"
    assert main(run_args(typo, tiny_jsb, tmp_path, trials=1, variants="V")) == 2
    assert capsys.readouterr().err.strip() == (
        f"odyssey run: error: storage {typo}: folder {tmp_path}/reslts does not exist; create "
        f"it first (only folders under {tmp_path}/results are made for you)"
    )
    assert not (tmp_path / "reslts").exists()
    fresh = "sqlite:///results/new/study.db"
    assert main(run_args(fresh, tiny_jsb, tmp_path, trials=1, variants="V")) == 0
    assert_exact(fresh, [NAME], 1)


def test_a_storage_folder_that_cannot_be_written_is_one_line(tmp_path, tiny_jsb, capsys):
    folder = tmp_path / "locked"
    folder.mkdir()
    storage = f"sqlite:///{folder}/study.db"
    make_unwritable(folder)
    try:
        assert main(run_args(storage, tiny_jsb, tmp_path, trials=1, variants="V")) == 2
    finally:
        make_writable(folder)
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"odyssey run: error: storage {storage}: cannot write its lock file ")
    assert f"{folder}/study.db.lock (" in err and len(err.splitlines()) == 1, err
    assert not list(folder.iterdir())


def test_a_read_only_checkpoint_folder_is_refused_before_the_storage_is_written(
    tmp_path, tiny_jsb, capsys
):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    storage = f"sqlite:///{tmp_path}/study.db"
    make_unwritable(folder)
    try:
        assert main(run_args(storage, tiny_jsb, tmp_path, trials=2, variants="V")) == 2
    finally:
        make_writable(folder)
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"odyssey run: error: checkpoint folder {folder}/"), err
    assert "give --checkpoints a folder this run can write" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "study.db").exists() and not list(folder.iterdir())
