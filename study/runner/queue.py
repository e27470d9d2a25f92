"""A run's side of the storage: it alone talks to the storage for its workers.

It takes waiting trials (a heartbeat first, then an atomic WAITING -> RUNNING, row-locked on
PostgreSQL) in balanced rounds (`study.runner.rounds`) as jobs of up to K trials of one band
of hidden sizes, writes each trial's learning curve at every epoch boundary and tells each
trial's result the moment it stops. A background thread beats the heart of its running
trials and fails those of coordinators that stopped beating theirs; `retries.reconcile`
queues again what should run again.

Every storage step leaves a state that recovers if the process dies just after it: a
heartbeat without RUNNING is never read; a RUNNING trial with a heartbeat goes stale after
the grace period; a FAIL is queued again by the next `reconcile`; a COMPLETE is final. Each
step waits out an outage of the storage (`study.runner.outages`).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import signal
import tempfile
import threading
from dataclasses import asdict, fields
from pathlib import Path
from typing import NamedTuple

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

import variants

from .. import __version__, benchmarks
from ..errors import UserError
from ..training.arms import arm
from ..training.trainer import TrialResult
from .failures import Failure
from .fleet import holder_record
from .options import RunOptions
from .outages import PatientCalls
from .retries import (
    ORPHAN_ERROR,
    fail,
    give_unbeaten_a_heartbeat,
    reconcile,
    state_counts,
)
from .rounds import configurations, rounds
from .search import (
    TrialRecord,
    prepare_study,
    sample_source,
    stable_seed,
    study_name,
    trial_config,
)
from .signals import StopSignals
from .status import StorageStatus, storage_status
from .storage import open_storage, sqlite_file, storage_identity
from .workers import EpochReport, FinishedTrial, Job


def checkpoint_folder(options: RunOptions) -> Path:
    """Where a run keeps its trials' epoch checkpoints: one folder per database, whatever
    the URL calls it, so that two storages never share one (a trial resumes from a file
    named by its configuration index and seed, which another storage's study of the same
    name has too). By default beside a SQLite file (`<file>.checkpoints`), and for a server
    results/checkpoints/<key> in the current folder; with --checkpoints DIR, DIR/<key>. The
    key is a hash of the database (SQLite: its resolved file; a server: backend, host, port,
    database)."""
    key = f"{stable_seed(storage_identity(options.storage)):08x}"
    if options.checkpoints is not None:
        return Path(options.checkpoints) / key
    path = sqlite_file(options.storage)
    if path is not None:
        return path.with_name(path.name + ".checkpoints")
    return Path("results", "checkpoints", key)


def _writable_folder(folder: Path, *, create: bool) -> None:
    """Say in one line why `folder` cannot hold checkpoints. With `create`, make it and write
    a file into it; else only write (and remove) a file in the nearest of its folders that
    exists, so that a run refused later leaves no folder behind."""
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
            probed = folder
        else:
            probed = next(p for p in (folder, *folder.parents) if p.exists())
            if not probed.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        with tempfile.TemporaryFile(dir=probed):
            pass
    except OSError as err:
        raise UserError(
            f"checkpoint folder {folder}: {err.strerror or err}; give --checkpoints a folder "
            "this run can write"
        ) from None


class StudyProgress(NamedTuple):
    """Where a study's populations in training here stand after their latest epochs."""

    epoch: int  # the furthest of them
    active: int  # trials still training
    best: float  # the best validation metric of their trials so far


class TrialQueue:
    """The storage side of a run: prepares the studies, takes jobs, tells results, sends the
    trials in flight back to the queue. Use it as a context manager, or `close()` it: that
    stops its heartbeats."""

    def __init__(self, options: RunOptions, *, sole: bool = False) -> None:
        """`sole`: no other coordinator lives on the storage (the SQLite file lock is held),
        so its running trials are a dead coordinator's, failed at once rather than after
        the grace period."""
        self.options = options = options.resolved()
        # Checked before the storage is opened, made once it is: a run refused for either
        # leaves neither written.
        self.checkpoints = checkpoint_folder(options)
        for variant in options.variants:
            _writable_folder(self.checkpoints / options.benchmark / variant, create=False)
        self.stops = StopSignals()
        self.patient = PatientCalls(options.storage, options.grace, self.stops)
        self.storage = open_storage(options.storage, create=True, heartbeat=options.heartbeat)
        # Each study's protocol: the run's, or its arm's (`arms.Arm.protocol`).
        self.protocols = {v: arm(v).protocol(options.protocol) for v in options.variants}
        self.studies = self._prepare_studies()
        # The heaviest variant first in each round, so that the round's last job is light.
        self.taking_order = sorted(self.studies, key=lambda s: -_cost(s.study_name))
        self.study_ids = {
            s.study_name: self.storage.get_study_id_from_name(s.study_name) for s in self.studies
        }
        self._queue = threading.Lock()  # one reconcile at a time in this process
        for study in self.studies:
            if sole:
                self.patient(_fail_orphans, self.storage, self.study_ids[study.study_name])
            self.reconcile(study, fresh_run=True)
        for variant in options.variants:  # made before any trial is taken
            _writable_folder(self.checkpoints / options.benchmark / variant, create=True)
        self.round_of: dict[str, dict[int, int]] = {}  # study -> configuration -> round
        self.current_round: int | None = None
        self.running: dict[int, tuple[optuna.Study, FrozenTrial]] = {}  # trial id -> trial
        self.curve_steps: dict[int, set[int]] = {}  # trial id -> epochs already in the storage
        self.live: dict[tuple[str, int], tuple[str, StudyProgress]] = {}  # job key -> its study
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error: Exception | None = None
        self.holder = holder_record(options)
        self._versions = {
            "torch": torch.__version__,
            "optuna": optuna.__version__,
            "lstm-odyssey": __version__,
        }
        self._thread = threading.Thread(target=self._maintain, name="heartbeats", daemon=True)
        self._thread.start()

    def __enter__(self) -> TrialQueue:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the heartbeats: this run's running trials go stale from now on."""
        self._stop.set()
        self._thread.join(timeout=self.options.grace)

    def _prepare_studies(self) -> list[optuna.Study]:
        """The run's studies, made or checked by `search.prepare_study`."""
        options = self.options
        data_sha256 = benchmarks.data_sha256(options.benchmark, options.data)
        return [
            self.patient(
                prepare_study,
                self.storage,
                options.benchmark,
                variant,
                n_trials=options.trials,
                sampler=options.sampler,
                seed=options.seed,
                sample=options.sample,
                band_size=options.population,
                protocol=self.protocols[variant].record(),
                data_sha256=data_sha256,
            )
            for variant in options.variants
        ]

    # --- jobs ---------------------------------------------------------------------------

    def take_job(self) -> Job | None:
        """Up to K waiting trials of one study from the earliest round that has any (so
        requeued trials go first, and every study's band of a round starts before any band of
        the next), the heaviest variant first; trials of a band train together, smallest
        first. A free worker takes the next round's first band rather than wait for the last
        bands of this one to end."""
        waiting = {
            s.study_name: self.patient(s.get_trials, deepcopy=False, states=(TrialState.WAITING,))
            for s in self.studies
        }
        current = min(
            (self._round(n, t) for n, trials in waiting.items() for t in trials), default=None
        )
        if current is None:
            return None
        for study in self.taking_order:
            name = study.study_name
            band = [t for t in waiting[name] if self._round(name, t) == current]
            taken = []
            for trial in sorted(band, key=lambda t: (t.params["hidden_size"], t.number)):
                trial_id = self.patient(
                    self.storage.get_trial_id_from_study_id_trial_number,
                    self.study_ids[name],
                    trial.number,
                )
                if self.patient(self._take, trial_id):
                    self.patient(self._hold, trial_id)
                    with self._lock:
                        self.running[trial_id] = (study, trial)
                        self.curve_steps[trial_id] = set(trial.intermediate_values)
                    taken.append(trial)
                if len(taken) == self.options.population:
                    break
            if taken:
                self.current_round = current
                return self._job(study, taken)
        return None

    def _round(self, name: str, trial: FrozenTrial) -> int:
        """The round of a trial's configuration (`rounds`), from the hidden sizes of the study's
        configurations and its band size."""
        index = trial.user_attrs.get("config_index", trial.number)
        if index not in self.round_of.get(name, {}):
            self._read_rounds(name)
        return self.round_of[name][index]

    def _read_rounds(self, name: str) -> dict[int, int]:
        """The rounds of a study's configurations, read afresh from its trials (its N may
        have grown since they were last read)."""
        study = next(s for s in self.studies if s.study_name == name)
        sizes, _ = configurations(self.patient(study.get_trials, deepcopy=False))
        band = study.user_attrs.get("band_size", self.options.population)
        self.round_of[name] = rounds(sizes, band)
        return self.round_of[name]

    def round_info(self, number: int) -> tuple[int, int, tuple[int, int]]:
        """Round `number` (0-based) as (1-based number, rounds in all, its hidden sizes), as
        the run's first study has it: it may have nothing left to take (complete, or its
        trials running elsewhere), so its rounds are read here if no job was taken from it."""
        first = self.studies[0]
        round_of = self.round_of.get(first.study_name) or self._read_rounds(first.study_name)
        sizes = [
            t.params["hidden_size"]
            for t in self.patient(first.get_trials, deepcopy=False)
            if round_of.get(t.user_attrs.get("config_index")) == number
        ]
        total = max(round_of.values(), default=number) + 1
        return number + 1, total, (min(sizes, default=0), max(sizes, default=0))

    def _take(self, trial_id: int) -> bool:
        """The heartbeat first, then WAITING -> RUNNING: dying between the two leaves a
        waiting trial with a heartbeat, which nothing reads; dying after, a running trial
        whose heartbeat stops, which goes stale."""
        self.storage.record_heartbeat(trial_id)
        try:
            return self.storage.set_trial_state_values(trial_id, TrialState.RUNNING)
        except optuna.exceptions.UpdateFinishedTrialError:
            return False  # finished by another coordinator since it was listed

    def _hold(self, trial_id: int) -> None:
        """Say who holds a trial just taken (`fleet`), a step of its own so that a storage
        error retries it alone; a trial already failed as stale meanwhile is left so."""
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.storage.set_trial_user_attr(trial_id, "holder", self.holder)

    def _job(self, study: optuna.Study, trials: list[FrozenTrial]) -> Job:
        """The trials' job. Every study of a shared sample gets the same sequence order, so
        that V and a variant trained on one configuration differ only in the cell."""
        variant = study.study_name.split("/", 1)[1]
        source = sample_source(study.study_name, study.user_attrs)
        return Job(
            benchmark=self.options.benchmark,
            data_path=self.options.data,
            variant=variant,
            spec=arm(variant).spec,
            protocol=self.protocols[variant],
            device=self.options.device,
            order_seed=stable_seed(self.options.seed, source),
            trials=tuple(
                (t.number, trial_config(t), str(self._checkpoint(variant, t))) for t in trials
            ),
        )

    def _checkpoint(self, variant: str, trial: FrozenTrial) -> Path:
        attrs = trial.user_attrs
        folder = self.checkpoints / self.options.benchmark / variant
        return folder / f"{attrs['config_index']}-{attrs['seed']}.pt"

    # --- results ------------------------------------------------------------------------

    def finish(
        self,
        job: Job,
        results: list[FinishedTrial] | None,
        failure: tuple[Failure, str] | None = None,
    ) -> list[FinishedTrial]:
        """The job ended: tell each of its trials not yet told its result, or fail it saying
        why; then queue again what should run again. Returns the results told now."""
        by_number = {finished.number: finished for finished in results or []}
        told, studies = [], set()
        for number, _, _ in job.trials:
            finished = by_number.get(number)
            result = finished.result if finished is not None else None
            study = self._settle(job.variant, number, result, failure)
            if study is not None:
                studies.add(study)
                if finished is not None:
                    told.append(finished)
        self.live.pop(job.key, None)
        for study in studies:
            self.reconcile(study)
        return told

    def _settle(
        self,
        variant: str,
        number: int,
        result: TrialResult | None,
        failure: tuple[Failure, str] | None,
    ) -> optuna.Study | None:
        """Tell a trial running here its result, or fail it; a trial told COMPLETE drops its
        checkpoint. Returns its study, or None if it is not running here (told already)."""
        try:
            trial_id, (study, trial) = self._running_by_number(variant, number)
        except KeyError:
            return None
        try:
            if self.patient(self._tell, variant, trial_id, result, failure):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self._checkpoint(variant, trial))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another coordinator failed it as stale meanwhile and queued it again
        finally:
            with self._lock:
                self.running.pop(trial_id, None)
                self.curve_steps.pop(trial_id, None)
        return study

    def _tell(
        self,
        variant: str,
        trial_id: int,
        result: TrialResult | None,
        failure: tuple[Failure, str] | None,
    ) -> bool:
        """Whether the trial is now COMPLETE; else it is FAIL."""
        if result is None:
            fail(self.storage, trial_id, *(failure or (Failure.INFRASTRUCTURE, "no result")))
            return False
        self._write_curve(trial_id, result.valid_curve)
        for key, value in asdict(self._record(result, variant)).items():
            self.storage.set_trial_user_attr(trial_id, key, value)
        self.storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [result.value])
        return True

    def _record(self, result: TrialResult, variant: str) -> TrialRecord:
        """What the storage keeps of a trial of `variant`'s study besides its value and
        validation curve: the fields of its result that a record holds, and how and where it
        was trained."""
        kept = {f.name for f in fields(TrialRecord)}
        return TrialRecord(
            **{f.name: getattr(result, f.name) for f in fields(result) if f.name in kept},
            device=self.options.device,
            preset=self.options.preset,
            protocol=self.protocols[variant].record(),  # as the study's
            versions=self._versions,
        )

    def _write_curve(self, trial_id: int, valid: list[float], first: int = 1) -> None:
        """Validation metric per epoch as the trial's intermediate values (epoch 1, 2, ...),
        skipping the epochs already written."""
        steps = self.curve_steps.setdefault(trial_id, set())
        for epoch, value in enumerate(valid, first):
            if epoch not in steps:
                self.storage.set_trial_intermediate_value(trial_id, epoch, value)
                steps.add(epoch)

    def record_epoch(self, report: EpochReport) -> list[FinishedTrial]:
        """A population finished an epoch: its trials' points go into the storage now, so
        that a dashboard shows the curves while the study runs (best effort: a point not
        written now is written with the trial's result), and the trials that stopped in it
        are told their results. Returns those results."""
        variant = report.key[0]
        for trial in report.trained:
            try:
                trial_id, _ = self._running_by_number(variant, trial.number)
                with self.stops.held():
                    self._write_curve(trial_id, [trial.valid], first=trial.epoch)
            except (KeyError, optuna.exceptions.UpdateFinishedTrialError):
                pass  # no longer ours: failed as stale by another coordinator
            except Exception as err:
                fatal = self.patient.fatal(err)
                if fatal is err:
                    raise
                if fatal is not None:
                    raise fatal from None
        told = [
            finished
            for finished in report.results
            if self._settle(variant, finished.number, finished.result, None) is not None
        ]
        active = sum(not t.done for t in report.trained)
        best = min((t.best for t in report.trained), default=math.inf)
        name = study_name(self.options.benchmark, variant)
        self.live[report.key] = (name, StudyProgress(report.epoch, active, best))
        return told

    def progress(self) -> dict[str, StudyProgress]:
        """Where each study in training here stands, over its populations."""
        by_study: dict[str, list[StudyProgress]] = {}
        for name, population in list(self.live.values()):
            by_study.setdefault(name, []).append(population)
        return {
            name: StudyProgress(
                epoch=max(p.epoch for p in populations),
                active=sum(p.active for p in populations),
                best=min(p.best for p in populations),
            )
            for name, populations in by_study.items()
        }

    # --- the queue ----------------------------------------------------------------------

    def requeue_running(self) -> int:
        """Ctrl-C or the time limit: the trials in flight go back to the queue (same
        parameters, checkpoints kept). Each is failed as interrupted, then `reconcile` queues
        its copy; a second Ctrl-C at any point leaves each trial either running (to go
        stale) or failed (to be queued by the next reconcile), never queued twice. The
        heartbeats stop first, so that this thread alone fails and queues them."""
        self.close()
        with self._lock:
            running = list(self.running)
            self.running.clear()
        requeued = 0
        for trial_id in running:
            try:
                self.patient(fail, self.storage, trial_id, Failure.INTERRUPTED, "interrupted")
                requeued += 1
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # told, or failed as stale by another coordinator, meanwhile
        for study in self.studies:
            self.reconcile(study)
        return requeued

    def reconcile(self, study: optuna.Study, *, fresh_run: bool = False) -> int:
        """`retries.reconcile`, one at a time in this process; how many were queued."""
        with self._queue:
            return self.patient(reconcile, self.storage, study, fresh_run=fresh_run)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            s.study_name: state_counts(self.patient(s.get_trials, deepcopy=False))
            for s in self.studies
        }

    def status(self) -> StorageStatus:
        """What `odyssey status` shows of the storage, read as every other call of the run
        is: an outage waited out, a Ctrl-C deferred to the read's end (cut short, the read
        would keep SQLite's lock against the requeue that follows)."""
        return self.patient(storage_status, self.storage)

    def check(self) -> None:
        """Raise what stopped the background thread, if anything did."""
        if self._error is not None:
            raise self._error

    def _running_by_number(self, variant: str, number: int):
        name = study_name(self.options.benchmark, variant)
        with self._lock:
            for trial_id, (study, trial) in self.running.items():
                if study.study_name == name and trial.number == number:
                    return trial_id, (study, trial)
        raise KeyError(f"{name} trial {number} is not running here")

    # --- the background thread ----------------------------------------------------------

    def _maintain(self) -> None:
        """Every half heartbeat: beat for the running trials, fail the stale trials of
        coordinators that stopped, and queue them again. Transient storage errors wait for
        the next round; any other error stops the thread and goes to the main one."""
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # the main thread's
        while not self._stop.wait(self.options.heartbeat / 2):
            try:
                with self._lock:
                    ids = list(self.running)
                for trial_id in ids:
                    self.storage.record_heartbeat(trial_id)
                for study in self.studies:
                    give_unbeaten_a_heartbeat(self.storage, self.study_ids[study.study_name])
                    optuna.storages.fail_stale_trials(study)
                    self.reconcile(study)
            except Exception as err:
                fatal = self.patient.fatal(err)
                if fatal is not None:
                    self._error = fatal
                    return


def _cost(name: str) -> int:
    """Parameters of one layer of the study's variant at 100 units: what its populations
    cost, in order."""
    return variants.build(arm(name.rpartition("/")[2]).spec, 1, 100).n_params()[0]


def _fail_orphans(storage: optuna.storages.RDBStorage, study_id: int) -> None:
    """Fail the study's running trials as their coordinator's death (infrastructure), for
    `reconcile` to queue again: called only where no coordinator but this one can live."""
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        fail(storage, trial_id, Failure.INFRASTRUCTURE, ORPHAN_ERROR)
