"""Batch systems: a run trains with the CPUs it is given, and the job-array recipe
(scripts/slurm/odyssey.sbatch) on a real Slurm, the single-node cluster of
scripts/slurm/local_cluster.sh, which CI brings up.

One study, two array tasks, three ways a task ends: stopped by SIGTERM (as scancel,
preemption or the `--signal` before the wall time stop it), stopped by its own time limit
before Slurm's, and done. Every trial in between goes back to the queue with its
checkpoint; a resubmission finishes the study, each configuration COMPLETE once.

How a resumed trial shows in the storage: its epochs are written at each epoch boundary
while it trains, the earlier ones (from its checkpoint's history) only with its result.
So the first epoch written for a trial is the first it trained itself: 1 if it started
afresh, k + 1 if it resumed from a checkpoint at epoch k.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import torch
from optuna.trial import TrialState
from runs import POSTGRES, assert_exact, fresh_postgres, run_args, wait_for

from study.cli import main
from study.runner.retries import state_counts

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "scripts" / "slurm" / "odyssey.sbatch"
NAME = "jsb-original/V"
TRIALS = 16  # 8 populations of 2, 10 epochs of a second and more: 80 s or more of training
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


def edited(recipe: str, **values: str) -> str:
    """The recipe with its settings (`NAME=...` lines of its edit block) replaced, as a user
    edits a copy."""
    for name, value in values.items():
        recipe, n = re.subn(rf"^{name}=.*$", f"{name}={value}", recipe, flags=re.M)
        assert n == 1, f"the recipe has no single {name}= line to edit"
    return recipe


def submit(script: Path, tmp_path: Path, time_minutes: int) -> str:
    """Submit the array of two tasks; its job id. Options given to sbatch win over the
    script's #SBATCH lines: a test-sized task (one CPU, little memory, a short wall time)
    whose SIGTERM comes 5 s before it, running this checkout's code."""
    odyssey = f"{sys.executable} {ROOT / 'tests' / 'slow_odyssey.py'}"
    out = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--array=0-1",
            f"--time={time_minutes}",
            "--cpus-per-task=1",
            "--mem=500M",
            "--signal=B:TERM@5",
            f"--chdir={tmp_path}",
            f"--output={tmp_path}/task-%A_%a.log",
            f"--export=ALL,ODYSSEY={odyssey},PYTHONPATH={ROOT}",
            str(script),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, f"sbatch refused the recipe: {out.stderr.strip()}"
    return out.stdout.strip().split(";")[0]


def tasks(job: str) -> dict[int, dict[str, str]]:
    """The array's started tasks by index, each as `scontrol show job` gives it (JobState,
    ExitCode, StartTime, EndTime, ...); finished ones stay listed for MinJobAge."""
    out = subprocess.run(
        ["scontrol", "-o", "show", "job", job], capture_output=True, text=True
    ).stdout
    found = {}
    for line in out.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if fields.get("ArrayTaskId", "").isdigit():
            found[int(fields["ArrayTaskId"])] = fields
    return found


def ended(job: str, task: int) -> dict[str, str] | None:
    state = tasks(job).get(task)
    return state if state is not None and state["JobState"] in ENDED else None


def log(tmp_path: Path, job: str, task: int) -> str:
    path = tmp_path / f"task-{job}_{task}.log"
    return path.read_text() if path.exists() else "(no log)"


def epochs_in_writing_order(storage: str) -> dict[int, list[int]]:
    """Per trial number, the epochs of its curve in the order they were written (the
    intermediate values' row ids)."""
    query = sqlalchemy.text(
        "SELECT t.number, v.step FROM trial_intermediate_values v "
        "JOIN trials t ON t.trial_id = v.trial_id JOIN studies s ON s.study_id = t.study_id "
        "WHERE s.study_name = :name ORDER BY v.trial_intermediate_value_id"
    )
    engine = sqlalchemy.create_engine(storage)
    with engine.connect() as db:
        rows = db.execute(query, {"name": NAME}).all()
    engine.dispose()
    order: dict[int, list[int]] = {}
    for number, step in rows:
        order.setdefault(number, []).append(step)
    return order


def trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials; none before a task has made it."""
    try:
        return optuna.load_study(study_name=NAME, storage=storage).get_trials()
    except KeyError:
        return []


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs two CPUs, to pin the run to one",
)
def test_a_run_trains_with_as_many_threads_as_cpus_it_is_given(tmp_path, tiny_jsb):
    """A batch system gives a task some of a node's CPUs (as this process's affinity); more
    threads than those would only take turns on them."""
    cpus = os.sched_getaffinity(0)
    torch.set_num_threads(2)
    try:
        os.sched_setaffinity(0, {min(cpus)})
        args = run_args(f"sqlite:///{tmp_path}/s.db", tiny_jsb, tmp_path, trials=2, variants="V")
        assert main(args) == 0
        assert torch.get_num_threads() == 1
    finally:
        os.sched_setaffinity(0, cpus)
        torch.set_num_threads(1)  # the suite's (conftest)


def test_the_recipe_outside_a_job_is_one_line_and_exit_2():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    out = subprocess.run(["bash", str(RECIPE)], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out
    assert "not in a Slurm job: submit it with sbatch" in out.stderr


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(
    shutil.which("sbatch") is None,
    reason="needs Slurm's sbatch (scripts/slurm/local_cluster.sh brings up a local cluster)",
)
@pytest.mark.skipif(not POSTGRES, reason="needs ODYSSEY_TEST_POSTGRES_URL")
def test_an_array_stopped_by_signal_and_by_its_time_resumes_on_resubmission(tmp_path, tiny_jsb):
    """About three minutes; its waits (9 minutes in all, under the suite's 10-minute
    timeout) are guards that say which step did not happen, not measures."""
    assert subprocess.run(["scontrol", "ping"], capture_output=True).returncode == 0, (
        "no Slurm controller answers: run scripts/slurm/local_cluster.sh as root"
    )
    storage = fresh_postgres()
    study = (
        f"(--benchmark jsb-original --data {tiny_jsb} --variants V --trials {TRIALS} "
        "--preset smoke --max-epochs 10 --patience 10 --population 2 --heartbeat 5)"
    )
    script = tmp_path / "odyssey.sbatch"
    script.write_text(
        edited(
            RECIPE.read_text(),
            STORAGE=f'"{storage}"',
            CHECKPOINTS=f'"{tmp_path / "checkpoints"}"',
            STUDY=study,
            MARGIN="70",  # of a 2-minute job: --time-limit about 49 s
        )
    )
    timeline = {}
    start = time.monotonic()
    jobs = [submit(script, tmp_path, time_minutes=2)]
    first = jobs[0]
    try:
        # Both tasks train a population; stop task 0 as scancel, preemption or --signal do.
        def both_training():
            running = [t for t in trials(storage) if t.state == TrialState.RUNNING]
            return len(running) == 4 and all(len(t.intermediate_values) >= 2 for t in running)

        assert wait_for(both_training, timeout=150), (
            f"the two tasks did not both train: {tasks(first)}\n{log(tmp_path, first, 0)}"
        )
        timeline["both training"] = time.monotonic() - start
        subprocess.run(["scancel", "--batch", "--signal=TERM", f"{first}_0"], check=True)
        timeline["SIGTERM to task 0"] = time.monotonic() - start
        assert wait_for(lambda: ended(first, 0), timeout=60), (
            f"task 0 went on after SIGTERM: {tasks(first).get(0)}\n{log(tmp_path, first, 0)}"
        )
        timeline["task 0 ended"] = time.monotonic() - start
        stopped = ended(first, 0)
        lines = log(tmp_path, first, 0).strip().splitlines()
        assert stopped["ExitCode"] == "130:0", (stopped, lines)
        assert lines[-1].startswith("odyssey run: interrupted; 2 running trials went back"), lines
        sent_back = {
            t.number: max(t.intermediate_values, default=0)
            for t in trials(storage)
            if t.state == TrialState.FAIL and t.user_attrs.get("failure") == "interrupted"
        }
        assert len(sent_back) == 2 and min(sent_back.values()) >= 2, sent_back

        # Task 1 runs on until its own time limit, before Slurm's signal and kill.
        assert wait_for(lambda: ended(first, 1), timeout=150), (
            f"task 1 did not stop: {tasks(first).get(1)}\n{log(tmp_path, first, 1)}"
        )
        timeline["task 1 stopped by its time limit"] = time.monotonic() - start
        timed = ended(first, 1)
        text = log(tmp_path, first, 1)
        assert (timed["JobState"], timed["ExitCode"]) == ("COMPLETED", "0:0"), (timed, text)
        limit = re.search(r"time limit of (\d+) s reached after \d+ s", text)
        # read from the job: its 120 s, less MARGIN, less the seconds before the script ran
        assert limit and 30 <= int(limit.group(1)) <= 120 - 70, text
        assert "interrupted" not in text, text
        counts = state_counts(trials(storage))
        assert counts["complete"] < TRIALS and counts["running"] == 0, counts

        # Submitted again: the study ends, every trial sent back resumed where it stopped.
        jobs.append(submit(script, tmp_path, time_minutes=10))
        second = jobs[1]
        timeline["resubmitted"] = time.monotonic() - start
        assert wait_for(lambda: ended(second, 0) and ended(second, 1), timeout=180), (
            f"the resubmitted array did not finish: {tasks(second)}\n"
            f"{log(tmp_path, second, 0)}\n{log(tmp_path, second, 1)}"
        )
        timeline["study complete"] = time.monotonic() - start
    finally:
        subprocess.run(["scancel", *jobs], capture_output=True)
        print("timeline: " + ", ".join(f"{event} at {t:.0f} s" for event, t in timeline.items()))
    for task, state in tasks(second).items():
        assert (state["JobState"], state["ExitCode"]) == ("COMPLETED", "0:0"), (
            state,
            log(tmp_path, second, task),
        )

    assert_exact(storage, [NAME], TRIALS)
    everything = trials(storage)
    counts = state_counts(everything)
    assert counts["failed"] == 0 and counts["requeued"] == len(
        [t for t in everything if t.state == TrialState.FAIL]
    ), counts
    by_number = {t.number: t for t in everything}
    copy_of = {
        t.system_attrs["failed_trial"]: t.number
        for t in everything
        if "failed_trial" in t.system_attrs
    }
    written = epochs_in_writing_order(storage)
    for trial in everything:
        before = by_number.get(trial.system_attrs.get("failed_trial"))
        if before is None or trial.number not in written:
            continue  # not a copy, or a copy sent back before it trained an epoch
        stopped_at = max(before.intermediate_values, default=0)
        assert written[trial.number][0] > stopped_at, (
            f"trial {trial.number} redid epochs: trial {before.number} stopped after epoch "
            f"{stopped_at}, it trained from epoch {written[trial.number][0]}"
        )
        shared = before.intermediate_values.keys() & trial.intermediate_values.keys()
        assert all(trial.intermediate_values[e] == before.intermediate_values[e] for e in shared), (
            f"trial {trial.number}'s curve is not trial {before.number}'s, continued"
        )
    # The trials SIGTERM sent back resumed after the epochs they had trained.
    for number, epoch in sent_back.items():
        resumed = copy_of[number]
        while resumed not in written:  # sent back again before an epoch: its copy
            resumed = copy_of[resumed]
        assert written[resumed][0] > epoch >= 2, (number, resumed, written[resumed])
    print(
        f"checked: {TRIALS} configurations COMPLETE once, {counts['requeued']} trials sent back "
        f"and resumed; by SIGTERM after epochs {sorted(sent_back.values())}"
    )
