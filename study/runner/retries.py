"""What waits for training: each of a study's N configurations exactly once, and the failed
ones again until their failure is proven their own.

A trial that goes wrong is only ever marked FAIL, saying why (`fail`); whether its
configuration runs again is decided in one place, `reconcile`, which reads the whole study
under the study's lock and queues a copy only where no trial of that configuration is
waiting, running or complete. So a coordinator killed at any moment, or two at once, never
queue a configuration twice, and whatever a killed one left half done is picked up by the
next `reconcile` of any coordinator.

Why a trial failed (its `failure` user attribute) decides what follows:

- `interrupted` (Ctrl-C, --time-limit): it runs again, and that is not counted as an attempt;
- `infrastructure` (a dead worker or coordinator, out of memory, a full disk, missing data;
  also a trial failed because its heartbeat stopped, which Optuna marks without a word):
  it runs again, up to MAX_ATTEMPTS attempts per run; every new run starts the count afresh;
- `training` (its own training raised): as infrastructure, until its last MAX_ATTEMPTS
  attempts raised the same error: then it stays FAIL for good;
- `result` (no finite validation metric, as earlier versions failed it; such a trial now
  completes at +inf): as infrastructure, so that it is recorded as complete.

A copy carries the configuration index, seed and attempt number, and Optuna's retry history
(the numbers of the trials it replaces), so `state_counts` tells requeued from failed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState

from .failures import Failure
from .locks import study_lock
from .search import SEARCH_SPACE, sample_configs, sample_source, stable_seed

MAX_ATTEMPTS = 3
LIVE = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
STALE_ERROR = "its coordinator stopped: no heartbeat within the grace period"
ORPHAN_ERROR = "its coordinator stopped: found running by the next run on this SQLite file"


def fail(storage: optuna.storages.BaseStorage, trial_id: int, failure: Failure, error: str) -> None:
    """Mark a running trial FAIL, saying why. The reasons are written first: dying between
    leaves the trial running, to go stale and fail as infrastructure. Raises Optuna's
    UpdateFinishedTrialError if the trial was finished meanwhile (failed as stale by another
    coordinator)."""
    storage.set_trial_user_attr(trial_id, "failure", failure.value)
    storage.set_trial_user_attr(trial_id, "error", error)
    storage.set_trial_state_values(trial_id, TrialState.FAIL)


def failure_of(trial: FrozenTrial) -> Failure:
    if "failure" in trial.user_attrs:
        return Failure(trial.user_attrs["failure"])
    if trial.user_attrs.get("error") == "no finite metric":  # stored before failures had kinds
        return Failure.RESULT
    return Failure.INFRASTRUCTURE


def error_of(trial: FrozenTrial) -> str:
    return trial.user_attrs.get("error", STALE_ERROR)


def reconcile(
    storage: optuna.storages.RDBStorage, study: optuna.Study, *, fresh_run: bool = False
) -> int:
    """Queue each configuration of the study that has no trial waiting, running or complete:
    a new one from the study's sample (`study.runner.search`: the benchmark's shared one, or the
    study's own), or a copy of its last failed trial where it runs
    again (see the module's docstring; `fresh_run` starts the attempts afresh). Returns how
    many were queued. Safe to call any time, from any coordinator, any number of times."""
    with study_lock(storage, study.study_name):
        attrs = study.user_attrs
        by_index: dict[int, list[FrozenTrial]] = {}
        for trial in study.get_trials(deepcopy=False):
            by_index.setdefault(trial.user_attrs.get("config_index"), []).append(trial)
        configs: list[dict] | None = None
        queued = 0
        for index in range(attrs.get("n_trials", 0)):
            history = sorted(by_index.get(index, []), key=lambda t: t.number)
            if any(t.state in LIVE for t in history):
                continue
            if not history:
                source = sample_source(study.study_name, attrs)
                if configs is None:
                    seed = stable_seed(attrs["seed"], source)
                    configs = sample_configs(attrs["n_trials"], attrs["sampler"], seed)
                study.add_trial(
                    optuna.trial.create_trial(
                        state=TrialState.WAITING,
                        params=configs[index],
                        distributions=SEARCH_SPACE,
                        user_attrs={
                            "config_index": index,
                            "seed": stable_seed(attrs["seed"], source, index),
                        },
                    )
                )
                queued += 1
                continue
            attempt = next_attempt(history, fresh_run)
            if attempt is not None:
                _retry(study, history[-1], attempt)
                queued += 1
        return queued


def next_attempt(history: Sequence[FrozenTrial], fresh_run: bool) -> int | None:
    """The attempt number of a configuration's next try, or None if it stays FAIL.
    `history`: its trials by number, all FAIL."""
    last = history[-1]
    failure = failure_of(last)
    if proven(history):
        return None
    if fresh_run:
        return 1
    attempts = last.user_attrs.get("attempts", 1)
    if failure is Failure.INTERRUPTED:
        return attempts
    return attempts + 1 if attempts < MAX_ATTEMPTS else None


def proven(history: Sequence[FrozenTrial]) -> bool:
    """Whether the configuration's own training raised the same error in each of its last
    MAX_ATTEMPTS attempts (interruptions aside)."""
    tried = [t for t in history if failure_of(t) is not Failure.INTERRUPTED][-MAX_ATTEMPTS:]
    return (
        len(tried) == MAX_ATTEMPTS
        and all(failure_of(t) is Failure.TRAINING for t in tried)
        and len({error_of(t) for t in tried}) == 1
    )


def _retry(study: optuna.Study, last: FrozenTrial, attempt: int) -> None:
    """A waiting copy of `last`: same parameters, seed and configuration index, so it
    resumes from the same checkpoint. Its retry history is Optuna's own (as
    RetryFailedTrialCallback writes it)."""
    history = [*last.system_attrs.get("retry_history", []), last.number]
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=last.params,
            distributions=last.distributions,
            user_attrs={
                "config_index": last.user_attrs["config_index"],
                "seed": last.user_attrs["seed"],
                "attempts": attempt,
            },
            system_attrs={"failed_trial": last.number, "retry_history": history},
        )
    )


def give_unbeaten_a_heartbeat(storage: optuna.storages.RDBStorage, study_id: int) -> None:
    """Running trials that never had a heartbeat get one now, so that they go stale after
    the grace period if nobody beats them. A process that died between taking a trial and
    its first heartbeat left them (earlier versions took trials in that order); Optuna
    never counts them stale, and a run would wait on them for ever."""
    query = sqlalchemy.text(
        "SELECT t.trial_id FROM trials t LEFT JOIN trial_heartbeats h "
        "ON h.trial_id = t.trial_id "
        "WHERE t.study_id = :study AND t.state = 'RUNNING' AND h.trial_id IS NULL"
    )
    with storage.engine.connect() as connection:
        unbeaten = [row[0] for row in connection.execute(query, {"study": study_id})]
    for trial_id in unbeaten:
        storage.record_heartbeat(trial_id)


def state_counts(trials: Sequence[FrozenTrial]) -> dict[str, int]:
    """How many trials are complete, running, waiting, failed, and requeued: a FAIL row
    whose configuration went back to the queue is not a failure, its copy carries it on."""
    states = [t.state for t in trials]
    retried = _retried(trials)
    requeued = sum(t.state == TrialState.FAIL and t.number in retried for t in trials)
    return {
        "complete": states.count(TrialState.COMPLETE),
        "running": states.count(TrialState.RUNNING),
        "waiting": states.count(TrialState.WAITING),
        "failed": states.count(TrialState.FAIL) - requeued,
        "requeued": requeued,
    }


def failed_errors(trials: Sequence[FrozenTrial]) -> Counter[str]:
    """The errors of the failed trials (those not requeued), with how many failed so."""
    retried = _retried(trials)
    return Counter(
        error_of(t) for t in trials if t.state == TrialState.FAIL and t.number not in retried
    )


def _retried(trials: Sequence[FrozenTrial]) -> set[int]:
    return {n for t in trials for n in t.system_attrs.get("retry_history", ())}
