"""What the runner's tests share: a tiny benchmark file, `odyssey run` arguments, the
exactly-once check, slow epochs, and looking at processes from outside."""

from __future__ import annotations

import os
import pickle
import random
import sys
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import optuna
from optuna.trial import TrialState

from study.runner.options import RunOptions
from study.runner.search import SEARCH_SPACE, TrialRecord
from study.training.protocol import PROTOCOLS
from study.training.trainer import PopulationTrainer

POSTGRES = os.environ.get("ODYSSEY_TEST_POSTGRES_URL")
ODYSSEY = [sys.executable, "-m", "study.cli"]
QUEUED = {"config_index", "seed", "attempts"}  # a trial's attributes from before it ran
TAKEN = {"holder"}  # written by the coordinator that takes it (study.runner.fleet)


def write_tiny_jsb(path: Path) -> str:
    """A small file in the original JSB pickle format: lists of chords of MIDI numbers."""
    rng = random.Random(0)

    def piece():
        return [tuple(sorted(rng.sample(range(48, 80), 4))) for _ in range(rng.randint(8, 14))]

    data = {
        "train": [piece() for _ in range(6)],
        "valid": [piece() for _ in range(3)],
        "test": [piece() for _ in range(3)],
    }
    path.write_bytes(pickle.dumps(data))
    return str(path)


def run_args(storage, data, tmp_path, trials=3, variants="V,CIFG", extra=()) -> list[str]:
    return [
        "run",
        "--benchmark",
        "jsb-original",
        "--data",
        data,
        "--variants",
        variants,
        "--trials",
        str(trials),
        "--preset",
        "smoke",
        "--storage",
        storage,
        "--population",
        "2",
        "--checkpoints",
        str(tmp_path / "ckpt"),
        "--heartbeat",
        "1",
        *extra,
    ]


def smoke_options(storage, data, tmp_path, trials=2) -> RunOptions:
    """`run_args` as `RunOptions`, for tests that call the runner in-process: V alone."""
    return RunOptions(
        benchmark="jsb-original",
        variants=("V",),
        protocol=PROTOCOLS["smoke"],
        trials=trials,
        storage=storage,
        population=2,
        data=data,
        checkpoints=str(tmp_path / "ckpt"),
    )


def assert_exact(storage, names, n) -> None:
    """Exactly n COMPLETE trials per study, one per configuration, none waiting or running;
    each stores its parameters and a TrialRecord, nothing else."""
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        assert sorted(t.user_attrs["config_index"] for t in complete) == list(range(n)), name
        assert not [t for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]
        for t in complete:
            assert set(SEARCH_SPACE) == set(t.params)
            assert set(t.user_attrs) - QUEUED - TAKEN == {f.name for f in fields(TrialRecord)}
            assert set(t.user_attrs["holder"]) == {"host", "pid", "workers", "heartbeat"}


def slow_epochs(patch) -> None:
    """Every training epoch takes a second longer: a time limit of half a second stops a run
    after its first epoch."""
    epoch = PopulationTrainer.train_epoch

    def slow_epoch(self):
        time.sleep(1.0)
        epoch(self)

    patch.setattr(PopulationTrainer, "train_epoch", slow_epoch)


def wait_for(predicate: Callable[[], object], timeout: float = 120) -> bool:
    """Whether `predicate` came true within `timeout` seconds (a guard, not a measure)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def workers_of(pid: int) -> list[int]:
    """The live worker processes `pid` started (Linux; not multiprocessing's resource
    tracker, which ends by itself once its users have)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(ppid) == pid and state != "Z" and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def fresh_postgres() -> str:
    """The test server's URL, its schema emptied for one test."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(POSTGRES)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    return POSTGRES
