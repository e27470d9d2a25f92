"""Where jobs train: in worker processes (`WorkerPool`), or in the coordinator's own process
(`InlinePool`, for --workers 1). A job is one population of trials of one variant.

Each worker answers through its own pipe, so the coordinator reads every epoch as it ends
and sees a worker die the moment it does, charging that worker's job alone. Workers ignore
Ctrl-C (the coordinator handles it) and exit when their coordinator dies.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait
from typing import NamedTuple

import torch

import variants

from .. import benchmarks
from ..errors import CheckpointError, UserError
from ..training.protocol import Protocol
from ..training.trainer import PopulationTrainer, TrialConfig, TrialResult
from ..training.trainer import TrialState as TrainState
from .failures import Failure


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


@dataclass(frozen=True)
class FinishedTrial:
    """A trial's result with its number in its study: what a worker sends for each trial
    that stopped, and what the coordinator tells the storage."""

    number: int
    result: TrialResult


class TrialProgress(NamedTuple):
    """Where a trial of a population stands after an epoch."""

    number: int  # the trial's number in its study
    epoch: int  # epochs it has trained
    valid: float  # validation metric of this epoch
    best: float  # best validation metric so far
    done: bool  # it stopped this epoch (or before)


class EpochReport(NamedTuple):
    """A message after every epoch of a population: the trials it trained, and the results
    of those that stopped in it, to be stored at once (their checkpoints are written)."""

    key: tuple[str, int]  # the job's
    epoch: int  # of the population
    trained: list[TrialProgress]
    results: list[FinishedTrial]


class Outcome(NamedTuple):
    """How a job ended: the results of its trials, or why it failed."""

    job: Job
    results: list[FinishedTrial] | None
    failure: tuple[Failure, str] | None


def train_job(job: Job, report: Callable[[EpochReport], None] | None = None) -> list[FinishedTrial]:
    """Train the job's trials, checkpointing each after every epoch, then `report`ing the
    epoch with the results of the trials that stopped in it; returns every trial's result.

    Trials resumed from checkpoints train in one population per epoch they stopped at, so
    that each goes on with the sequence order it would have seen without the interruption.
    """
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
            trained, stopped = [], []
            for state, (number, _, checkpoint, _) in zip(trainer.trials, members):
                if state.epoch == trainer.epoch:  # trained this epoch
                    _save(state, checkpoint)
                    valid = state.history[-1][0]
                    trained.append(
                        TrialProgress(number, state.epoch, valid, state.best_value, state.done)
                    )
                    if state.done:
                        stopped.append(FinishedTrial(number, state.result()))
            if report is not None:
                report(EpochReport(job.key, trainer.epoch, trained, stopped))

        for (number, *_), result in zip(members, trainer.run(on_epoch=save)):
            results.append(FinishedTrial(number, result))
    return results


def _save(state: TrainState, checkpoint: str) -> None:
    """Write a trial's checkpoint, or stop the run: torch raises OSError (no space, a
    read-only folder) or, where a write comes up short, its own RuntimeError ("[enforce fail
    at inline_container.cc:...] unexpected pos ...")."""
    try:
        state.save(checkpoint)
    except (OSError, RuntimeError) as err:
        reason = (err.strerror if isinstance(err, OSError) else None) or str(err)
        raise CheckpointError(
            f"cannot write the checkpoint {checkpoint} ({reason.strip().splitlines()[0]}); "
            "the trials in flight went back to the queue: free space or give --checkpoints "
            "a writable folder, then rerun"
        ) from None


def classify(err: Exception) -> tuple[Failure, str]:
    """Whose fault an error of training is. A full disk, missing memory or data fail any
    trial, so they are the infrastructure's; anything else is the trial's own."""
    text = f"{type(err).__name__}: {err}".strip().splitlines()[0]
    if isinstance(err, (OSError, MemoryError, torch.cuda.OutOfMemoryError, UserError)):
        return Failure.INFRASTRUCTURE, text
    return Failure.TRAINING, text


class _CallerError(BaseException):
    """An error of `on_epoch`, carried through training (which catches Exceptions)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class InlinePool:
    """Training in the coordinator's own process (--workers 1): a job trains when submitted,
    reporting each epoch to `on_epoch`, and its outcome waits for `wait`. A BaseException
    (Ctrl-C, the time limit) from training or `on_epoch` goes through to the caller."""

    def __init__(self, threads: int, on_epoch: Callable[[EpochReport], None]) -> None:
        torch.set_num_threads(threads)
        self.on_epoch = on_epoch
        self._outcomes: list[Outcome] = []

    @property
    def free(self) -> bool:
        return not self._outcomes

    idle = free  # one slot: free and idle are the same

    def submit(self, job: Job) -> None:
        def report(epoch: EpochReport) -> None:
            try:
                self.on_epoch(epoch)
            except Exception as err:  # the coordinator's (a lost storage), not training's
                raise _CallerError(err) from err

        try:
            self._outcomes.append(Outcome(job, train_job(job, report), None))
        except _CallerError as caller:
            raise caller.error from None
        except CheckpointError:
            raise  # the machine's fault: the run stops
        except Exception as err:  # a bug in training must not lose the study
            self._outcomes.append(Outcome(job, None, classify(err)))

    def wait(self, timeout: float) -> list[Outcome]:
        outcomes, self._outcomes = self._outcomes, []
        return outcomes

    def close(self) -> None:
        """Nothing runs outside `submit`."""

    def __enter__(self) -> InlinePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    job: Job | None = None


class WorkerPool:
    """`size` worker processes, started as jobs come and replaced when they die; each trains
    one job at a time. `wait` hands each epoch report to `on_epoch` as it arrives and returns
    the jobs that ended, a dead worker's job failed as infrastructure."""

    def __init__(self, size: int, threads: int, on_epoch: Callable[[EpochReport], None]) -> None:
        self.size, self.threads, self.on_epoch = size, threads, on_epoch
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []

    @property
    def free(self) -> bool:
        busy = sum(w.job is not None for w in self._workers)
        return busy < self.size

    @property
    def idle(self) -> bool:
        return all(w.job is None for w in self._workers)

    def submit(self, job: Job) -> None:
        for worker in [w for w in self._workers if w.job is None]:
            try:
                worker.conn.send(job)
            except OSError:  # it died idle
                self._bury(worker)
                continue
            worker.job = job
            return
        worker = self._start()
        worker.conn.send(job)
        worker.job = job

    def wait(self, timeout: float) -> list[Outcome]:
        """Outcomes of the jobs that ended within `timeout` seconds (possibly none)."""
        wait([h for w in self._workers for h in (w.conn, w.process.sentinel)], timeout)
        outcomes: list[Outcome] = []
        for worker in list(self._workers):
            gone = False
            while worker.conn.poll():  # its messages first: a worker may answer, then die
                try:
                    kind, payload = worker.conn.recv()
                except (EOFError, OSError):
                    gone = True
                    break
                if kind == "epoch":
                    self.on_epoch(payload)
                elif kind == "stop":
                    raise CheckpointError(payload)
                elif worker.job is not None:
                    if kind == "done":
                        outcomes.append(Outcome(worker.job, payload, None))
                    else:
                        outcomes.append(Outcome(worker.job, None, payload))
                    worker.job = None
            if gone or not worker.process.is_alive():
                worker.process.join()
                if worker.job is not None:
                    failure = (Failure.INFRASTRUCTURE, _death(worker.process.exitcode))
                    outcomes.append(Outcome(worker.job, None, failure))
                self._bury(worker)
        return outcomes

    def close(self) -> None:
        """Kill the workers: a Ctrl-C must not wait for populations to finish."""
        for worker in self._workers:
            worker.process.kill()
        for worker in self._workers:
            worker.process.join()
            worker.conn.close()
        self._workers.clear()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> _Worker:
        """A new worker, the pool's before a Ctrl-C held meanwhile is raised here."""
        # Started once per process, the resource tracker unblocks SIGINT as it starts: not
        # inside the block below.
        resource_tracker.ensure_running()
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(theirs, self.threads), daemon=True)
        with _sigint_blocked():
            process.start()
            theirs.close()
            worker = _Worker(process, ours)
            self._workers.append(worker)
        return worker

    def _bury(self, worker: _Worker) -> None:
        worker.conn.close()
        self._workers.remove(worker)


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"worker killed by {name}{hint}"
    return f"worker exited with status {exitcode}"


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread meanwhile. A process spawned now inherits the mask, so
    that a Ctrl-C while it imports torch waits there until `_serve` ignores it (where it
    would otherwise print a traceback per worker); here it is raised just after, never
    lost (ignoring SIGINT here instead would drop it). The standard library starts its
    resource tracker so."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _serve(conn: Connection, threads: int) -> None:
    """A worker process: train the jobs sent down `conn`, answering with each epoch and then
    the results, or the error. It ignores Ctrl-C: the coordinator stops it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # drops one pending since the start, too
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    torch.set_num_threads(threads)
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the coordinator closed the pool
            return
        try:
            results = train_job(job, lambda report: conn.send(("epoch", report)))
        except CheckpointError as err:
            conn.send(("stop", str(err)))
        except Exception as err:
            conn.send(("failed", classify(err)))
        else:
            conn.send(("done", results))


def _exit_with_parent(parent: int) -> None:
    """End this worker once its coordinator is gone (even SIGKILLed): it is then reparented."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)
