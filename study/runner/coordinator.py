"""The coordinator: each `odyssey run` is one. It alone talks to the storage for its workers.

It takes waiting trials (a heartbeat first, then an atomic WAITING -> RUNNING, row-locked on
PostgreSQL) in balanced rounds (`study.runner.rounds`), hands them to workers as jobs of up to K
trials of one band of hidden sizes, writes each trial's learning curve at every epoch
boundary and tells each trial's result the moment it stops. A background thread
beats the heart of its running trials and fails those of coordinators that stopped beating
theirs; `retries.reconcile` queues again what should run again.

Every storage step leaves a state that recovers if the process dies just after it: a
heartbeat without RUNNING is never read; a RUNNING trial with a heartbeat goes stale after
the grace period; a FAIL is queued again by the next `reconcile`; a COMPLETE is final. A
step that meets a transient storage error (a server restart, a lock timeout, a full disk)
is retried with backoff for up to the grace period, after which other coordinators take
over this one's trials anyway; then the run ends with one line. A permanent one (a read-only
SQLite file) ends it at once. Either line quotes the database, not Optuna's wrapper.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import TypeVar

import optuna
import sqlalchemy
import torch
from optuna.trial import FrozenTrial, TrialState

import variants

from .. import __version__
from ..errors import Interrupted, UserError
from ..training.trainer import resolve_device
from .locks import exclusive_sqlite
from .options import RunOptions
from .retries import (
    Failure,
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
from .storage import display_url, open_storage, sqlite_file, storage_identity, without_password
from .workers import EpochReport, InlinePool, Job, Outcome, WorkerPool

T = TypeVar("T")


class TimeLimitReached(BaseException):
    """The run's --time-limit has passed: stop as on Ctrl-C. A BaseException, so that the
    handlers for training errors do not take it for one."""


class Monitor:
    """What a run tells the user; the CLI draws it, the library default is silent."""

    def started(self) -> None:
        """The storage is open and its studies are ready: training begins. Every check of
        the run's options and storage has passed by now."""

    def studies(self, counts: dict[str, dict[str, int]], live: dict[str, str]) -> None:
        """Trial counts per study, and the epoch of its populations in training here."""

    def trial(self, name: str, number: int, result: dict) -> None:
        """A trial finished and was stored."""

    def round(self, number: int, total: int, sizes: tuple[int, int]) -> None:
        """Round `number` (1-based) of `total` began: configurations of these hidden sizes."""


def placement(options: RunOptions) -> tuple[torch.device, int]:
    """The device the run trains on, and its population size K (16 on CPU, 64 on a GPU
    unless given)."""
    device = resolve_device(options.device)
    return device, options.population or (64 if device.type == "cuda" else 16)


# SQLite errors no wait cures (sqlite3 gives their fixed texts): a read-only file or folder,
# one that cannot be opened, or is no database.
_PERMANENT_SQLITE = (
    "attempt to write a readonly database",
    "unable to open database file",
    "file is not a database",
    "database disk image is malformed",
    "access permission denied",
)


def _database_error(err: BaseException | None) -> sqlalchemy.exc.DBAPIError | None:
    """The driver's error behind `err` (Optuna wraps it in StorageInternalError), if any."""
    while err is not None:
        if isinstance(err, sqlalchemy.exc.DBAPIError):
            return err
        err = err.__cause__ or err.__context__
    return None


def transient(err: BaseException) -> bool:
    """Whether a storage error may pass by itself: a lost or refused connection, a lock
    timeout, a full disk; not a read-only or unreadable SQLite file."""
    cause = _database_error(err)
    if cause is None:
        return False
    if cause.connection_invalidated:
        return True
    if not isinstance(cause, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
        return False
    return not str(cause.orig).startswith(_PERMANENT_SQLITE)


def storage_reason(err: BaseException, url: str) -> str:
    """The first line of what the database said (not the wrapper's words), password masked."""
    cause = _database_error(err)
    text = str(cause.orig if cause is not None and cause.orig is not None else err).strip()
    return without_password(text, url).splitlines()[0] if text else type(err).__name__


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


def _writable_folder(folder: Path) -> None:
    """Create `folder` and write a file into it, or say in one line why that fails."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise UserError(
            f"checkpoint folder {folder}: {err.strerror or err}; give --checkpoints a folder "
            "this run can write"
        ) from None


class StopSignals:
    """Ctrl-C and SIGTERM, as `run` handles them. Python raises KeyboardInterrupt in the main
    thread wherever it is; inside a storage call that leaves the call's session
    mid-transaction (Optuna rolls back on exceptions, and KeyboardInterrupt is none) and, on
    SQLite, the file locked against the requeue that follows. So while a storage call is
    `held`, a stop waits for it to end (it raises just after); a second stop meanwhile does
    not wait."""

    def __init__(self) -> None:
        self.depth = 0
        self.pending = False

    def handle(self, signum: int, frame: object) -> None:
        if self.depth and not self.pending:
            self.pending = True
            return
        self.pending = False
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals interrupt the main thread only
            return
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.pending:
            self.pending = False
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """SIGINT and SIGTERM go to `handle` meanwhile (from the main thread only, where
        Python lets a handler be set)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


class Coordinator:
    """The storage side of a run: prepares the studies, takes jobs, tells results. Use it as
    a context manager, or `close()` it: that stops its heartbeats."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.stops = StopSignals()
        device, self.population = placement(options)
        self.device = str(device)
        self.storage = open_storage(options.storage, create=True, heartbeat=options.heartbeat)
        record = options.protocol.record()
        self.studies = [
            self._patient(
                prepare_study,
                self.storage,
                options.benchmark,
                v,
                n_trials=options.trials,
                sampler=options.sampler,
                seed=options.seed,
                sample=options.sample,
                band_size=self.population,
                protocol=record,
            )
            for v in options.variants
        ]
        # The heaviest variant first in each round, so that the round's last job is light.
        self.taking_order = sorted(self.studies, key=lambda s: -_cost(s.study_name))
        self.study_ids = {
            s.study_name: self.storage.get_study_id_from_name(s.study_name) for s in self.studies
        }
        self._queue = threading.Lock()  # one reconcile at a time in this process
        for study in self.studies:
            self.reconcile(study, fresh_run=True)
        self.round_of: dict[str, dict[int, int]] = {}  # study -> configuration -> round
        self.current_round: int | None = None
        # Made before any trial is taken: a folder that cannot be made strands none.
        self.checkpoints = checkpoint_folder(options)
        for variant in options.variants:
            _writable_folder(self.checkpoints / options.benchmark / variant)
        self.running: dict[int, tuple[optuna.Study, FrozenTrial]] = {}  # trial id -> trial
        self.curve_steps: dict[int, set[int]] = {}  # trial id -> epochs already in the storage
        self.live: dict[tuple[str, int], tuple[str, int, int, float]] = {}  # job key -> epoch
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error: Exception | None = None
        self._versions = {
            "torch": torch.__version__,
            "optuna": optuna.__version__,
            "lstm-odyssey": __version__,
        }
        self._thread = threading.Thread(target=self._maintain, name="heartbeats", daemon=True)
        self._thread.start()

    def __enter__(self) -> Coordinator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the heartbeats: this coordinator's running trials go stale from now on."""
        self._stop.set()
        self._thread.join(timeout=self.options.grace)

    # --- jobs ---------------------------------------------------------------------------

    def take_job(self) -> Job | None:
        """Up to K waiting trials of one study from the earliest round that has any (so
        requeued trials go first, and every study's band of a round starts before any band of
        the next), the heaviest variant first; trials of a band train together, smallest
        first. A free worker takes the next round's first band rather than wait for the last
        bands of this one to end."""
        waiting = {
            s.study_name: self._patient(s.get_trials, deepcopy=False, states=(TrialState.WAITING,))
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
                trial_id = self._patient(
                    self.storage.get_trial_id_from_study_id_trial_number,
                    self.study_ids[name],
                    trial.number,
                )
                if self._patient(self._take, trial_id):
                    with self._lock:
                        self.running[trial_id] = (study, trial)
                        self.curve_steps[trial_id] = set(trial.intermediate_values)
                    taken.append(trial)
                if len(taken) == self.population:
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
            study = next(s for s in self.studies if s.study_name == name)
            sizes, _ = configurations(self._patient(study.get_trials, deepcopy=False))
            band = study.user_attrs.get("band_size", self.population)
            self.round_of[name] = rounds(sizes, band)
        return self.round_of[name][index]

    def round_info(self, number: int) -> tuple[int, int, tuple[int, int]]:
        """Round `number` (0-based) as (1-based number, rounds in all, its hidden sizes)."""
        name = self.studies[0].study_name
        sizes = [
            t.params["hidden_size"]
            for t in self._patient(self.studies[0].get_trials, deepcopy=False)
            if self.round_of[name].get(t.user_attrs.get("config_index")) == number
        ]
        total = max(self.round_of[name].values()) + 1
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

    def _job(self, study: optuna.Study, trials: list[FrozenTrial]) -> Job:
        """The trials' job. Every study of a shared sample gets the same sequence order, so
        that V and a variant trained on one configuration differ only in the cell."""
        variant = study.study_name.split("/", 1)[1]
        source = sample_source(study.study_name, study.user_attrs)
        return Job(
            benchmark=self.options.benchmark,
            data_path=self.options.data,
            variant=variant,
            spec=variants.resolve(variant),
            protocol=self.options.protocol,
            device=self.device,
            order_seed=stable_seed(self.options.seed, source),
            trials=tuple(
                (t.number, trial_config(t), str(self._checkpoint(variant, t))) for t in trials
            ),
        )

    def _checkpoint(self, variant: str, trial: FrozenTrial) -> Path:
        attrs = trial.user_attrs
        folder = self.checkpoints / self.options.benchmark / variant
        return folder / f"{attrs['config_index']}-{attrs['seed']}.pt"

    def finish(
        self, job: Job, results: list[dict] | None, failure: tuple[Failure, str] | None = None
    ) -> list[dict]:
        """The job ended: tell each of its trials not yet told its result, or fail it saying
        why; then queue again what should run again. Returns the results told now."""
        by_number = {r["number"]: r for r in results or []}
        told, studies = [], set()
        for number, _, _ in job.trials:
            study = self._settle(job.variant, number, by_number.get(number), failure)
            if study is not None:
                studies.add(study)
                if number in by_number:
                    told.append(by_number[number])
        self.live.pop(job.key, None)
        for study in studies:
            self.reconcile(study)
        return told

    def _settle(
        self,
        variant: str,
        number: int,
        result: dict | None,
        failure: tuple[Failure, str] | None,
    ) -> optuna.Study | None:
        """Tell a trial running here its result, or fail it; a trial told COMPLETE drops its
        checkpoint. Returns its study, or None if it is not running here (told already)."""
        try:
            trial_id, (study, trial) = self._running_by_number(variant, number)
        except KeyError:
            return None
        try:
            if self._patient(self._tell, trial_id, result, failure):
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
        trial_id: int,
        result: dict | None,
        failure: tuple[Failure, str] | None,
    ) -> bool:
        """Whether the trial is now COMPLETE; else it is FAIL."""
        if result is None:
            fail(self.storage, trial_id, *(failure or (Failure.INFRASTRUCTURE, "no result")))
            return False
        self._write_curve(trial_id, result["valid_curve"])
        if not math.isfinite(result["value"]):
            fail(self.storage, trial_id, Failure.RESULT, "no finite metric")
            return False
        record = TrialRecord(
            **{f.name: result[f.name] for f in fields(TrialRecord) if f.name in result},
            device=self.device,
            preset=self.options.preset,
            protocol=self.options.protocol.record(),  # as the study's
            versions=self._versions,
        )
        for key, value in asdict(record).items():
            self.storage.set_trial_user_attr(trial_id, key, value)
        self.storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [result["value"]])
        return True

    def _write_curve(self, trial_id: int, valid: list[float], first: int = 1) -> None:
        """Validation metric per epoch as the trial's intermediate values (epoch 1, 2, ...),
        skipping the epochs already written."""
        steps = self.curve_steps.setdefault(trial_id, set())
        for epoch, value in enumerate(valid, first):
            if epoch not in steps:
                self.storage.set_trial_intermediate_value(trial_id, epoch, value)
                steps.add(epoch)

    def record_epoch(self, report: EpochReport) -> list[dict]:
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
                if not transient(err):
                    if _database_error(err) is None:
                        raise
                    raise self._broken(err) from None
        told = [
            result
            for result in report.results
            if self._settle(variant, result["number"], result, None) is not None
        ]
        active = sum(not t.done for t in report.trained)
        best = min((t.best for t in report.trained), default=math.inf)
        name = study_name(self.options.benchmark, variant)
        self.live[report.key] = (name, report.epoch, active, best)
        return told

    def live_detail(self) -> dict[str, str]:
        """Per study in training here: 'epoch 37/150, 12 trials active, best valid 8.91'."""
        by_study: dict[str, list] = {}
        for name, epoch, active, best in list(self.live.values()):
            by_study.setdefault(name, []).append((epoch, active, best))
        return {
            name: f"epoch {max(e for e, _, _ in rows)}/{self.options.protocol.max_epochs}, "
            f"{sum(a for _, a, _ in rows)} trials active, "
            f"best valid {min(b for _, _, b in rows):.4g}"
            for name, rows in by_study.items()
        }

    def requeue_running(self) -> int:
        """Ctrl-C or the time limit: the trials in flight go back to the queue (same
        parameters, checkpoints kept). Each is failed as interrupted, then `reconcile` queues
        its copy; a second Ctrl-C at any point leaves each trial either running (to go
        stale) or failed (to be queued by the next reconcile), never queued twice."""
        with self._lock:
            running = list(self.running)
            self.running.clear()
        requeued = 0
        for trial_id in running:
            try:
                self._patient(fail, self.storage, trial_id, Failure.INTERRUPTED, "interrupted")
                requeued += 1
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # told, or failed as stale by another coordinator, meanwhile
        for study in self.studies:
            self.reconcile(study)
        return requeued

    def reconcile(self, study: optuna.Study, *, fresh_run: bool = False) -> int:
        """`retries.reconcile`, one at a time in this process; how many were queued."""
        with self._queue:
            return self._patient(reconcile, self.storage, study, fresh_run=fresh_run)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            s.study_name: state_counts(self._patient(s.get_trials, deepcopy=False))
            for s in self.studies
        }

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
                if not transient(err):
                    self._error = self._broken(err) if _database_error(err) else err
                    return

    # --- outages ------------------------------------------------------------------------

    def _patient(self, call: Callable[..., T], *args, **kwargs) -> T:
        """`call(...)`, retried with backoff while the storage errs transiently, for up to
        the grace period; then one line. Every call given here may be repeated: it reads,
        or writes what it would write again, or decides anew from what it reads."""
        deadline = time.monotonic() + self.options.grace
        delay = 0.25
        while True:
            try:
                with self.stops.held():
                    return call(*args, **kwargs)
            except Exception as err:
                if not transient(err):
                    if _database_error(err) is None:
                        raise
                    raise self._broken(err) from None
                if time.monotonic() + delay > deadline:
                    raise UserError(
                        f"lost the storage {display_url(self.options.storage)} for "
                        f"{self.options.grace} s ({storage_reason(err, self.options.storage)}); "
                        "every result told before is kept: rerun the same command to continue"
                    ) from None
            time.sleep(delay)
            delay = min(2 * delay, 5.0)

    def _broken(self, err: Exception) -> UserError:
        """A storage error that waiting does not cure, as one line with the database's own
        reason."""
        return UserError(
            f"the storage {display_url(self.options.storage)} failed: "
            f"{storage_reason(err, self.options.storage)} (not an outage: not retried); "
            "every result told before is kept"
        )


def run(options: RunOptions, monitor: Monitor | None = None) -> dict[str, dict[str, int]]:
    """Run the studies until no trial is waiting or running anywhere; returns trial counts.

    Ctrl-C sends the trials in flight back to the queue (checkpoints kept) and raises
    Interrupted. With `options.time_limit`, stop after that many seconds the same way and
    raise TimeLimitReached; with one worker (training in this process) the stop comes at
    the first epoch boundary after the limit.
    """
    monitor = monitor or Monitor()
    with (
        exclusive_sqlite(options.storage),
        Coordinator(options) as coordinator,
        coordinator.stops.installed(),
    ):
        monitor.started()
        limit = options.time_limit
        deadline = math.inf if limit is None else time.monotonic() + limit
        try:
            return _loop(coordinator, options, monitor, deadline)
        except KeyboardInterrupt:
            requeued = coordinator.requeue_running()
            raise Interrupted(
                f"interrupted; {requeued} running trials went back to the queue with their "
                "checkpoints: rerun the same command to continue"
            ) from None
        except TimeLimitReached:
            coordinator.requeue_running()
            raise


def _loop(
    coordinator: Coordinator, options: RunOptions, monitor: Monitor, deadline: float
) -> dict[str, dict[str, int]]:
    counts, counted = coordinator.counts(), time.monotonic()
    name = coordinator.studies[0].study_name.rpartition("/")[0] + "/"
    shown_round = None
    look_again = 0.0  # when to look for a job again, while the current round has none free

    def told(variant: str, results: list[dict]) -> None:
        nonlocal counted
        for result in results:
            monitor.trial(name + variant, result["number"], result)
        if results:
            counted = -math.inf  # read the counts again

    def on_epoch(report: EpochReport) -> None:
        told(report.key[0], coordinator.record_epoch(report))
        monitor.studies(counts, coordinator.live_detail())
        if time.monotonic() > deadline:  # this epoch's checkpoints are written
            raise TimeLimitReached

    threads = max(1, (os.cpu_count() or 1) // options.workers)
    pool: InlinePool | WorkerPool = (
        InlinePool(threads, on_epoch)
        if options.workers == 1
        else WorkerPool(options.workers, threads, on_epoch)
    )
    with pool:
        while True:
            if time.monotonic() > deadline:
                raise TimeLimitReached
            coordinator.check()
            if pool.free and time.monotonic() >= look_again:
                while pool.free and (job := coordinator.take_job()):
                    if shown_round is None or coordinator.current_round > shown_round:
                        shown_round = coordinator.current_round
                        monitor.round(*coordinator.round_info(shown_round))
                    counts = coordinator.counts()
                    monitor.studies(counts, coordinator.live_detail())
                    pool.submit(job)
                if pool.free:  # the round's other trials are in flight: look again later
                    look_again = time.monotonic() + min(5.0, options.heartbeat / 2)
            outcomes: list[Outcome] = []
            if not pool.idle:
                wait = max(0.0, min(1.0, deadline - time.monotonic()))
                outcomes = pool.wait(wait)
            for job, results, failure in outcomes:
                told(job.variant, coordinator.finish(job, results, failure))
                look_again = 0.0
            # Others change the counts too (stale trials failed and queued again, other
            # machines), so they are read again at the heartbeat's pace.
            if outcomes or pool.idle or time.monotonic() - counted > options.heartbeat:
                counts, counted = coordinator.counts(), time.monotonic()
            monitor.studies(counts, coordinator.live_detail())
            if not pool.idle or not look_again:  # busy, or a job may be waiting: look
                continue
            if _live(counts):
                time.sleep(min(5.0, options.heartbeat / 2))  # others' trials still running
                look_again = 0.0
            elif not sum(coordinator.reconcile(s) for s in coordinator.studies):
                counts = coordinator.counts()  # the background thread may have queued some
                if not _live(counts):
                    return counts
                look_again = 0.0


def _live(counts: dict[str, dict[str, int]]) -> bool:
    return any(c["running"] or c["waiting"] for c in counts.values())


def _cost(name: str) -> int:
    """Parameters of one layer of the study's variant at 100 units: what its populations
    cost, in order."""
    return variants.build(name.rpartition("/")[2], 1, 100).n_params()[0]
