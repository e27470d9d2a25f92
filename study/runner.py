"""Random search over the paper's hyperparameters with Optuna's RDB storage as the engine.

One study per (benchmark, variant), named `<benchmark>/<variant>`. The process that creates
a study enqueues all N configurations at once (the storage's unique study name makes that
process unique), so the sample is the same whatever the number of workers or machines.
Each `odyssey run` is a coordinator: it alone talks to the storage for its local workers,
takes waiting trials by an atomic WAITING -> RUNNING update (row-locked on PostgreSQL),
records heartbeats, writes each trial's learning curve as Optuna intermediate values at
every epoch boundary, and tells results. A dead coordinator's trials go stale; the next
coordinator fails them and Optuna's RetryFailedTrialCallback re-enqueues them with the
same parameters, and they resume from their last epoch checkpoint. A study remembers the
protocol it was created with, and refuses to mix in trials trained another way.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import fcntl
import math
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import optuna
import torch
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

import variants

from . import benchmarks
from .errors import UserError
from .storage import open_storage
from .train import PopulationTrainer, Protocol, TrialConfig
from .train import TrialState as TrainState

SEARCH_SPACE = {
    "hidden_size": IntDistribution(20, 200, log=True),
    "learning_rate": FloatDistribution(1e-6, 1e-2, log=True),
    "one_minus_momentum": FloatDistribution(0.01, 1.0, log=True),
    "input_noise": FloatDistribution(0.0, 1.0),
}
SAMPLERS = ("random", "qmc")
MAX_ATTEMPTS = 3  # a trial whose training raised is retried this many times in all


def study_name(benchmark: str, variant: str) -> str:
    return f"{benchmark}/{variant}"


def stable_seed(*parts: object) -> int:
    """A seed from names and numbers that is the same in every process and on every machine."""
    return zlib.crc32("/".join(map(str, parts)).encode())


# --- storage ----------------------------------------------------------------------------


@contextlib.contextmanager
def exclusive_sqlite(url: str) -> Iterator[None]:
    """One coordinator per SQLite file: SQLite cannot hand out a waiting trial exactly once
    to two processes, so a second `odyssey run` on the same file is refused."""
    if not url.startswith("sqlite:///"):
        yield
        return
    path = Path(url.removeprefix("sqlite:///") + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another `odyssey run` is using {url}; give that one more --workers, "
                "or use PostgreSQL to run several coordinators on one study"
            ) from None
        yield


def sample_configs(n: int, sampler: str, seed: int) -> list[dict]:
    """N parameter sets drawn by an Optuna sampler over the paper's distributions."""
    if sampler == "random":
        source = optuna.samplers.RandomSampler(seed=seed)
    elif sampler == "qmc":
        source = optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed)
    else:
        raise UserError(f"unknown sampler {sampler!r}; expected one of {', '.join(SAMPLERS)}")
    draft = optuna.create_study(sampler=source)
    configs = []
    for _ in range(n):
        trial = draft.ask(SEARCH_SPACE)
        configs.append(trial.params)
        draft.tell(trial, 0.0)
    return configs


def protocol_record(preset: str, protocol: Protocol) -> dict:
    """What a study stores of how its trials are trained: the preset and every field that
    changes a trial's result."""
    return {"preset": preset, **protocol.results_fields()}


def stored_protocol(study: optuna.Study) -> dict | None:
    """The protocol a study was run with. Studies made before it was stored with the study
    are read from their first finished trial (those trained with frames averaged)."""
    if "protocol" in study.user_attrs:
        return study.user_attrs["protocol"]
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if "protocol" in trial.user_attrs:
            fields = {
                k: v for k, v in trial.user_attrs["protocol"].items() if k != "eval_batch_size"
            }
            return {"preset": trial.user_attrs.get("preset"), "loss_reduction": "mean", **fields}
    return None


def check_protocol(name: str, stored: dict, wanted: dict) -> None:
    """One line naming every difference between a study's protocol and this run's."""
    keys = [k for k in {**stored, **wanted} if stored.get(k) != wanted.get(k)]
    if keys:
        was = ", ".join(f"{k} {stored.get(k)}" for k in keys)
        now = ", ".join(f"{k} {wanted.get(k)}" for k in keys)
        raise UserError(
            f"study {name} was run with {was}, not {now}: rerun it with the same options, "
            "or give another --storage for the new protocol"
        )


def prepare_study(
    storage: optuna.storages.BaseStorage,
    benchmark: str,
    variant: str,
    n_trials: int,
    sampler: str,
    seed: int,
    protocol: dict | None = None,
) -> optuna.Study:
    """Create the study and enqueue its N configurations, or load it and top it up to N.
    `protocol` (see `protocol_record`) is stored with a new study and checked against an
    existing one."""
    name = study_name(benchmark, variant)
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction="minimize")
        have = 0
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage)
        deadline = time.time() + 60
        while "n_trials" not in study.user_attrs and time.time() < deadline:
            time.sleep(0.5)  # its creator is still enqueuing
        have = study.user_attrs.get("n_trials", 0)
        stored = stored_protocol(study)
        if protocol is not None and stored is not None:
            check_protocol(name, stored, protocol)
        if have > n_trials:
            raise UserError(
                f"study {name} already holds {have} trials; --trials {n_trials} cannot shrink it"
            ) from None
        if study.user_attrs.get("seed", seed) != seed:
            raise UserError(
                f"study {name} was sampled with --seed {study.user_attrs['seed']}, not {seed}"
            ) from None
        if study.user_attrs.get("sampler", sampler) != sampler:
            raise UserError(
                f"study {name} was sampled with --sampler {study.user_attrs['sampler']}, "
                f"not {sampler}"
            ) from None
    if protocol is not None and "protocol" not in study.user_attrs:
        study.set_user_attr("protocol", protocol)
    if n_trials > have:
        configs = sample_configs(n_trials, sampler, stable_seed(seed, name))
        present = {t.user_attrs.get("config_index") for t in study.get_trials(deepcopy=False)}
        for index in sorted(set(range(have, n_trials)) - present):
            study.add_trial(
                optuna.trial.create_trial(
                    state=TrialState.WAITING,
                    params=configs[index],
                    distributions=SEARCH_SPACE,
                    user_attrs={"config_index": index, "seed": stable_seed(seed, name, index)},
                )
            )
        study.set_user_attr("n_trials", n_trials)
        study.set_user_attr("sampler", sampler)
        study.set_user_attr("seed", seed)
    return study


# --- a job: one population of trials, trained in a worker --------------------------------


@dataclass(frozen=True)
class Job:
    benchmark: str
    data_path: str | None
    variant: str
    spec: variants.Spec  # carried, so that workers need not know how the name was registered
    protocol: Protocol
    device: str
    order_seed: int
    trials: tuple[tuple[int, TrialConfig, str], ...]  # (trial number, config, checkpoint path)

    @property
    def key(self) -> tuple[str, int]:
        return self.variant, self.trials[0][0]


# A message after every epoch of a population: (job key, population epoch, trials), each
# trial (number, epoch, validation metric, best validation metric so far, done).
EpochReport = tuple[tuple[str, int], int, list[tuple[int, int, float, float, bool]]]
_report: Callable[[EpochReport], None] | None = None  # set in worker processes


def train_job(job: Job, report: Callable[[EpochReport], None] | None = None) -> list[dict]:
    """Train the job's trials, checkpointing each after every epoch, then `report`ing the
    epoch (in a worker, to the coordinator's queue); results by trial.

    Trials resumed from checkpoints train in one population per epoch they stopped at, so
    that each goes on with the sequence order it would have seen without the interruption.
    """
    report = report or _report
    bench = benchmarks.load(job.benchmark, job.data_path)
    by_epoch: dict[int, list] = {}
    for number, config, checkpoint in job.trials:
        state = TrainState.load(checkpoint) if os.path.exists(checkpoint) else None
        if state is not None and state.config != config:
            state = None  # a file left by another trial: start afresh
        epoch = state.epoch if state is not None else 0
        by_epoch.setdefault(epoch, []).append((number, config, checkpoint, state))
    results = []
    for members in by_epoch.values():
        trainer = PopulationTrainer(
            bench, job.spec, job.protocol, device=job.device, order_seed=job.order_seed
        )
        for _, config, _, state in members:
            if state is None:
                trainer.add(config)
            else:
                trainer.add_state(state)

        def save(trainer: PopulationTrainer, members=members) -> None:
            trained = []
            for state, (number, _, checkpoint, _) in zip(trainer.trials, members):
                if state.epoch == trainer.epoch:  # trained this epoch
                    state.save(checkpoint)
                    trained.append(
                        (number, state.epoch, state.history[-1][0], state.best_value, state.done)
                    )
            if report is not None:
                report((job.key, trainer.epoch, trained))

        for (number, *_), result in zip(members, trainer.run(on_epoch=save)):
            results.append({"number": number, **asdict(result), "population": len(members)})
    return results


def _worker_init(threads: int, reports: multiprocessing.Queue) -> None:
    global _report
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles Ctrl-C
    torch.set_num_threads(threads)
    _report = reports.put


# --- the coordinator ----------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    benchmark: str
    variants: tuple[str, ...]
    n_trials: int
    protocol: Protocol
    preset: str
    storage: str
    workers: int = 1
    population: int = 16
    device: str = "auto"
    seed: int = 0
    sampler: str = "random"
    data_path: str | None = None
    checkpoints: str = "results/checkpoints"
    heartbeat: int = 30
    time_limit: float | None = None  # seconds; then stop as on Ctrl-C


class Coordinator:
    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.storage = open_storage(options.storage, create=True, heartbeat=options.heartbeat)
        record = protocol_record(options.preset, options.protocol)
        self.studies = [
            prepare_study(
                self.storage,
                options.benchmark,
                v,
                options.n_trials,
                options.sampler,
                options.seed,
                record,
            )
            for v in options.variants
        ]
        self.study_ids = {
            s.study_name: self.storage.get_study_id_from_name(s.study_name) for s in self.studies
        }
        # One folder per storage: two studies of the same name in two storages never share.
        self.checkpoints = Path(options.checkpoints) / f"{stable_seed(options.storage):08x}"
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"--checkpoints {options.checkpoints}: {err.strerror}") from None
        self.running: dict[int, tuple[optuna.Study, FrozenTrial]] = {}  # trial id -> trial
        self.curve_steps: dict[int, set[int]] = {}  # trial id -> epochs already in the storage
        self.live: dict[tuple[str, int], tuple[str, int, int, float]] = {}  # job key -> epoch
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._versions = {
            "torch": torch.__version__,
            "optuna": optuna.__version__,
            "lstm-odyssey": _own_version(),
        }

    def take_job(self) -> Job | None:
        """Up to K waiting trials of the study with the most left, of similar hidden size."""
        opts = self.options
        by_waiting = sorted(
            ((s, s.get_trials(deepcopy=False, states=(TrialState.WAITING,))) for s in self.studies),
            key=lambda sw: -len(sw[1]),
        )
        for study, waiting in by_waiting:
            taken = []
            for trial in sorted(waiting, key=lambda t: t.params.get("hidden_size", 0)):
                trial_id = self.storage.get_trial_id_from_study_id_trial_number(
                    self.study_ids[study.study_name], trial.number
                )
                if self.storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                    self.storage.record_heartbeat(trial_id)
                    with self._lock:
                        self.running[trial_id] = (study, trial)
                        self.curve_steps[trial_id] = set(trial.intermediate_values)
                    taken.append(trial)
                if len(taken) == opts.population:
                    break
            if taken:
                variant = study.study_name.split("/", 1)[1]
                folder = self.checkpoints / opts.benchmark / variant
                folder.mkdir(parents=True, exist_ok=True)
                return Job(
                    benchmark=opts.benchmark,
                    data_path=opts.data_path,
                    variant=variant,
                    spec=variants.resolve(variant),
                    protocol=opts.protocol,
                    device=opts.device,
                    order_seed=stable_seed(opts.seed, study.study_name),
                    trials=tuple(
                        (
                            t.number,
                            trial_config(t),
                            str(
                                folder / f"{t.user_attrs['config_index']}-{t.user_attrs['seed']}.pt"
                            ),
                        )
                        for t in taken
                    ),
                )
        return None

    def finish(self, job: Job, results: list[dict] | None, error: str | None = None) -> None:
        """Tell each trial's result. After an error the trial goes back to the queue with its
        checkpoint, up to MAX_ATTEMPTS times; a trial that never had a finite metric fails."""
        by_number = {r["number"]: r for r in results or []}
        for number, _, checkpoint in job.trials:
            trial_id, (study, trial) = self._running_by_number(job.variant, number)
            result = by_number.get(number)
            try:
                if result is None:
                    attempts = trial.user_attrs.get("attempts", 1)
                    if attempts < MAX_ATTEMPTS:
                        self._requeue(study, trial, {"attempts": attempts + 1})
                    self.storage.set_trial_user_attr(trial_id, "error", error or "no result")
                    study.tell(number, state=TrialState.FAIL)
                    continue
                self._write_curve(trial_id, result["valid_curve"])
                if not math.isfinite(result["value"]):
                    self.storage.set_trial_user_attr(trial_id, "error", "no finite metric")
                    study.tell(number, state=TrialState.FAIL)
                else:
                    for key, value in self._attributes(job, result).items():
                        self.storage.set_trial_user_attr(trial_id, key, value)
                    study.tell(number, result["value"])
                with contextlib.suppress(FileNotFoundError):
                    os.remove(checkpoint)
            except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
                pass  # another coordinator failed it as stale meanwhile and re-enqueued it
            finally:
                with self._lock:
                    self.running.pop(trial_id, None)
                    self.curve_steps.pop(trial_id, None)
        self.live.pop(job.key, None)

    def _write_curve(self, trial_id: int, valid: list[float], first: int = 1) -> None:
        """Validation metric per epoch as the trial's intermediate values (epoch 1, 2, ...),
        skipping the epochs already written."""
        steps = self.curve_steps.setdefault(trial_id, set())
        for epoch, value in enumerate(valid, first):
            if epoch not in steps:
                self.storage.set_trial_intermediate_value(trial_id, epoch, value)
                steps.add(epoch)

    def record_epoch(self, report: EpochReport) -> None:
        """A population finished an epoch: its trials' points go into the storage now, so
        that a dashboard shows the curves while the study runs."""
        key, epoch, trained = report
        name = study_name(self.options.benchmark, key[0])
        for number, trial_epoch, valid, _, _ in trained:
            try:
                trial_id, _ = self._running_by_number(key[0], number)
                self._write_curve(trial_id, [valid], first=trial_epoch)
            except (KeyError, RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
                pass  # no longer ours: failed as stale by another coordinator
        active = sum(not done for *_, done in trained)
        best = min((b for _, _, _, b, _ in trained), default=math.inf)
        self.live[key] = (name, epoch, active, best)

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

    def _attributes(self, job: Job, result: dict) -> dict:
        return {
            "test_metric": result["test_metric"],
            "best_epoch": result["best_epoch"],
            "epochs": result["epochs"],
            "diverged": result["diverged"],
            "n_params": result["n_params"],
            "seconds": result["seconds"],
            "population": result["population"],
            "test_curve": result["test_curve"],
            "train_curve": result["train_curve"],
            "device": str(job.device),
            "preset": self.options.preset,
            "protocol": asdict(job.protocol),
            "versions": self._versions,
        }

    def _requeue(self, study: optuna.Study, trial: FrozenTrial, attrs: dict | None = None) -> None:
        """A waiting copy of a trial: same parameters, seed and configuration index. Its
        retry history is Optuna's own (as RetryFailedTrialCallback writes it), so that the
        original counts as requeued, not failed."""
        system_attrs = {"failed_trial": trial.number, "retry_history": [], **trial.system_attrs}
        system_attrs["retry_history"] = [*system_attrs["retry_history"], trial.number]
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs={**trial.user_attrs, **(attrs or {})},
                system_attrs=system_attrs,
            )
        )

    def requeue_running(self) -> int:
        """Give the trials in flight back to the queue (same parameters, checkpoints kept)."""
        with self._lock:
            running = list(self.running.items())
            self.running.clear()
        for trial_id, (study, trial) in running:
            self._requeue(study, trial)  # the copy first: an interrupt here loses nothing
            self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
        return len(running)

    def _running_by_number(self, variant: str, number: int):
        name = study_name(self.options.benchmark, variant)
        with self._lock:
            for trial_id, (study, trial) in self.running.items():
                if study.study_name == name and trial.number == number:
                    return trial_id, (study, trial)
        raise KeyError(f"{name} trial {number} is not running here")

    def heartbeats(self) -> None:
        while not self._stop.wait(self.options.heartbeat / 2):
            with self._lock:
                ids = list(self.running)
            for trial_id in ids:
                with contextlib.suppress(Exception):
                    self.storage.record_heartbeat(trial_id)

    def counts(self) -> dict[str, dict[str, int]]:
        return {s.study_name: state_counts(s.get_trials(deepcopy=False)) for s in self.studies}


def state_counts(trials: list[FrozenTrial]) -> dict[str, int]:
    """How many trials are complete, running, waiting, failed, and requeued: a FAIL row
    whose trial went back to the queue (an interrupt, a time limit, a lost heartbeat, a
    retried error) is not a failure, its copy carries it on."""
    states = [t.state for t in trials]
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    requeued = sum(t.state == TrialState.FAIL and t.number in retried for t in trials)
    return {
        "complete": states.count(TrialState.COMPLETE),
        "running": states.count(TrialState.RUNNING),
        "waiting": states.count(TrialState.WAITING),
        "failed": states.count(TrialState.FAIL) - requeued,
        "requeued": requeued,
    }


def trial_config(trial: FrozenTrial) -> TrialConfig:
    p = trial.params
    return TrialConfig(
        hidden_size=int(p["hidden_size"]),
        learning_rate=float(p["learning_rate"]),
        momentum=1.0 - float(p["one_minus_momentum"]),
        input_noise=float(p["input_noise"]),
        seed=int(trial.user_attrs["seed"]),
    )


def _own_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lstm-odyssey")
    except PackageNotFoundError:
        return "unknown"


class TimeLimitReached(BaseException):
    """The run's --time-limit has passed: stop as on Ctrl-C. A BaseException, so that the
    handlers for training errors do not take it for one."""


class Monitor:
    """What a run tells the user; the CLI draws it, the library default is silent."""

    def studies(self, counts: dict[str, dict[str, int]], live: dict[str, str]) -> None:
        """Trial counts per study, and the epoch of its populations in training here."""

    def trial(self, name: str, number: int, result: dict) -> None:
        """A trial finished and was stored."""


def run(options: RunOptions, monitor: Monitor | None = None) -> dict[str, dict[str, int]]:
    """Run the study until no trial is waiting or running anywhere; returns trial counts.

    With `options.time_limit`, stop after that many seconds as on Ctrl-C (trials in flight
    back to the queue, checkpoints kept) and raise TimeLimitReached; with one worker
    (training in this process) the stop comes at the first epoch boundary after the limit.
    """
    monitor = monitor or Monitor()
    with exclusive_sqlite(options.storage):
        coordinator = Coordinator(options)
        limit = options.time_limit
        deadline = math.inf if limit is None else time.monotonic() + limit
        beat = threading.Thread(target=coordinator.heartbeats, daemon=True)
        beat.start()
        threads = max(1, (os.cpu_count() or 1) // options.workers)
        if options.workers == 1:
            torch.set_num_threads(threads)
        context = multiprocessing.get_context("spawn")
        reports: queue.Queue | multiprocessing.Queue = (
            queue.Queue() if options.workers == 1 else context.Queue()
        )

        def new_pool() -> cf.ProcessPoolExecutor | None:
            if options.workers == 1:
                return None  # train in this process
            return cf.ProcessPoolExecutor(
                options.workers,
                mp_context=context,
                initializer=_worker_init,
                initargs=(threads, reports),
            )

        def in_process_report(report: EpochReport) -> None:
            coordinator.record_epoch(report)
            monitor.studies(counts, coordinator.live_detail())
            if time.monotonic() > deadline:  # this epoch's checkpoints are written
                raise TimeLimitReached

        def drain() -> None:
            while True:
                try:
                    coordinator.record_epoch(reports.get_nowait())
                except queue.Empty:
                    return

        pool = new_pool()
        in_flight: dict[cf.Future, tuple[Job, cf.Executor | None]] = {}  # job, its pool
        last_look = -math.inf
        try:
            while True:
                if time.monotonic() > deadline:
                    raise TimeLimitReached
                look = time.monotonic() - last_look >= options.heartbeat / 2
                if look:  # stale trials of dead coordinators, at the heartbeat's pace
                    for study in coordinator.studies:
                        optuna.storages.fail_stale_trials(study)
                    last_look = time.monotonic()
                taken = False
                while len(in_flight) < options.workers and (job := coordinator.take_job()):
                    taken = True
                    if pool is None:
                        future: cf.Future = cf.Future()
                        counts = coordinator.counts()
                        monitor.studies(counts, coordinator.live_detail())
                        try:
                            future.set_result(train_job(job, in_process_report))
                        except Exception as err:  # a bug in training must not lose the study
                            future.set_exception(err)
                    else:
                        try:
                            future = pool.submit(train_job, job)
                        except cf.process.BrokenProcessPool:  # a worker died: start afresh
                            pool = new_pool()
                            future = pool.submit(train_job, job)
                    in_flight[future] = (job, pool)
                if look or taken or not in_flight:
                    counts = coordinator.counts()
                monitor.studies(counts, coordinator.live_detail())
                if not in_flight:
                    if not any(c["running"] or c["waiting"] for c in counts.values()):
                        return counts
                    time.sleep(min(5.0, options.heartbeat / 2))  # others' trials still running
                    continue
                wait = max(0.0, min(1.0, deadline - time.monotonic()))
                done, _ = cf.wait(in_flight, timeout=wait, return_when=cf.FIRST_COMPLETED)
                drain()
                for future in done:
                    job, its_pool = in_flight.pop(future)
                    try:
                        results = future.result()
                    except Exception as err:  # killed worker (out of memory) or a training error
                        coordinator.finish(job, None, error=f"{type(err).__name__}: {err}")
                        if isinstance(err, cf.process.BrokenProcessPool) and its_pool is pool:
                            pool = new_pool()
                    else:
                        coordinator.finish(job, results)
                        for result in results:
                            name = study_name(options.benchmark, job.variant)
                            monitor.trial(name, result["number"], result)
                if done:
                    counts = coordinator.counts()
        except KeyboardInterrupt:
            requeued = coordinator.requeue_running()
            raise UserError(
                f"interrupted; {requeued} running trials went back to the queue with their "
                "checkpoints: rerun the same command to continue"
            ) from None
        except TimeLimitReached:
            coordinator.requeue_running()
            raise
        finally:
            coordinator._stop.set()
            if pool is not None:
                workers = list((pool._processes or {}).values())
                pool.shutdown(wait=False, cancel_futures=True)
                for process in workers:  # a Ctrl-C must not wait for populations to finish
                    process.kill()


def resolve_variants(text: str) -> tuple[str, ...]:
    """Variant names from `--variants`: 'all' (the paper's nine) or a comma-separated list of
    names and '+' combinations, spelt as registered ('cifg+np' -> 'CIFG+NP'), each once."""
    if text.strip().lower() == "all":
        return variants.PAPER_VARIANTS
    spelling = {name.upper(): name for name in variants.PRESETS}
    names = []
    for item in text.split(","):
        if not item.strip():
            continue
        try:
            variants.resolve(item)
        except ValueError as err:
            raise UserError(f"--variants: {err}") from None
        name = "+".join(spelling[part.strip().upper()] for part in item.split("+"))
        if name not in names:
            names.append(name)
    if not names:
        raise UserError("--variants needs a comma-separated list of variants or 'all'")
    return tuple(names)


# --- command line -------------------------------------------------------------------------


class BarMonitor(Monitor):
    """A progress bar per study, on a terminal."""

    def __init__(self, bar, n_trials: int) -> None:
        self.bar, self.n_trials, self.tasks = bar, n_trials, {}

    def studies(self, counts: dict[str, dict[str, int]], live: dict[str, str]) -> None:
        for name, c in counts.items():
            if name not in self.tasks:
                self.tasks[name] = self.bar.add_task(name, total=self.n_trials, detail="")
            detail = live.get(name) or f"running {c['running']}"
            if c["failed"]:
                detail += f", failed {c['failed']}"
            self.bar.update(self.tasks[name], completed=c["complete"], detail=detail)


class LogMonitor(Monitor):
    """Timestamped lines for a log file (nohup, SLURM, CI): one per finished trial and at
    most one per study per `every` seconds."""

    def __init__(self, n_trials: int, every: float = 60.0) -> None:
        self.n_trials, self.every, self.last = n_trials, every, {}

    def _print(self, text: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}", flush=True)

    def studies(self, counts: dict[str, dict[str, int]], live: dict[str, str]) -> None:
        now = time.monotonic()
        for name, c in counts.items():
            line = f"{c['complete']}/{self.n_trials} complete, {c['running']} running"
            if c["failed"]:
                line += f", {c['failed']} failed"
            if name in live:
                line += f"; {live[name]}"
            if now - self.last.get(name, -math.inf) >= self.every:
                self._print(f"{name}: {line}")
                self.last[name] = now

    def trial(self, name: str, number: int, result: dict) -> None:
        self._print(
            f"{name}: trial {number} done: valid {result['value']:.4g}, "
            f"test {result['test_metric']:.4g} at epoch {result['best_epoch']} of "
            f"{result['epochs']}{' (diverged)' if result['diverged'] else ''}"
        )


def cmd_run(args) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from .train import protocol, resolve_device

    for flag in ("trials", "workers", "heartbeat"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.time_limit is not None and not args.time_limit > 0:
        raise UserError(f"--time-limit must be a positive number of seconds, got {args.time_limit}")
    device = resolve_device(args.device)
    population = args.population
    if population is None:
        population = 64 if device.type == "cuda" else 16
    if population < 1:
        raise UserError(f"--population must be at least 1, got {population}")
    proto = protocol(
        args.preset,
        max_epochs=args.max_epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        forget_bias=args.forget_bias,
        clip_norm=args.clip_norm,
        loss_reduction=args.loss_reduction,
    )
    options = RunOptions(
        benchmark=args.benchmark,
        variants=resolve_variants(args.variants),
        n_trials=args.trials,
        protocol=proto,
        preset=args.preset,
        storage=args.storage,
        workers=args.workers,
        population=population,
        device=str(device),
        seed=args.seed,
        sampler=args.sampler,
        data_path=args.data,
        checkpoints=args.checkpoints,
        heartbeat=args.heartbeat,
        time_limit=args.time_limit,
    )
    if args.sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {args.sampler!r}; expected one of {', '.join(SAMPLERS)}")
    console = Console(stderr=True)
    bench = benchmarks.load(args.benchmark, args.data)  # fails early, and builds the cache once
    console.print(
        f"[bold]{args.benchmark}[/]: {len(bench.train)} training sequences; "
        f"{len(options.variants)} variants x {args.trials} trials, preset {args.preset}, "
        f"{args.workers} worker(s), population {population}, {device}",
        soft_wrap=True,
    )
    start = time.perf_counter()
    stopped = False
    try:
        if console.is_terminal:
            with Progress(
                TextColumn("{task.description:<28}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeRemainingColumn(),
                console=console,
            ) as bar:
                counts = run(options, BarMonitor(bar, args.trials))
        else:
            counts = run(options, LogMonitor(args.trials))
    except TimeLimitReached:
        stopped = True
        counts = {
            s["study"]: s
            for s in study_table(args.storage)
            if s["study"] in {study_name(args.benchmark, v) for v in options.variants}
        }
    complete = sum(c["complete"] for c in counts.values())
    failed = sum(c["failed"] for c in counts.values())
    elapsed = time.perf_counter() - start
    if stopped:
        left = sum(c["waiting"] + c["running"] for c in counts.values())
        summary = (
            f"time limit of {args.time_limit:g} s reached after {elapsed:.0f} s: trials in "
            f"flight went back to the queue with their checkpoints; {complete} trials "
            f"complete, {left} left, {failed} failed"
        )
    else:
        summary = f"{complete} trials complete, {failed} failed, in {elapsed:.0f} s"
    print(
        f"{summary}. Results: {args.storage}\nNext: "
        + ("rerun the same command to continue; " if stopped else "")
        + f"odyssey status --storage {args.storage}; "
        f"odyssey report --storage {args.storage} --out <folder>",
        file=sys.stderr,
    )
    return 0


def study_table(storage_url: str) -> list[dict]:
    """One row per study: trial counts by state, diverged, best value, compute time."""
    storage = open_storage(storage_url)  # an existing storage: status creates nothing
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        rows.append(
            {
                "study": summary.study_name,
                **state_counts(trials),
                "diverged": sum(bool(t.user_attrs.get("diverged")) for t in complete),
                "best_value": min((t.value for t in complete), default=None),
                # trials of a population share its wall time
                "compute_hours": sum(
                    t.user_attrs.get("seconds", 0.0) / t.user_attrs.get("population", 1)
                    for t in complete
                )
                / 3600,
            }
        )
    return rows


def cmd_status(args) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    rows = study_table(args.storage)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        raise UserError(f"no studies in {args.storage}; start one with `odyssey run`")
    table = Table(title=args.storage)
    for column in rows[0]:
        if column == "study":
            table.add_column(column, no_wrap=True)
        else:
            table.add_column(column.replace("_", " "), justify="right")
    for row in rows:
        table.add_row(
            *(
                f"{v:.4g}" if isinstance(v, float) else "-" if v is None else str(v)
                for v in row.values()
            )
        )
    Console(width=None if sys.stdout.isatty() else 120).print(table)
    return 0
