"""The coordinator: each `odyssey run` is one. `run` takes jobs from the storage's queue
(`study.runner.queue`), hands them to workers (`study.runner.workers`) and tells the
storage their results as they come, until no trial is waiting or running anywhere; it tells
a `Monitor` how the run goes. Ctrl-C, SIGTERM and --time-limit (`study.runner.signals`) send
the trials in flight back to the queue.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

from .. import benchmarks
from ..errors import Interrupted, StorageError
from ..training.trainer import TrialResult
from .locks import exclusive_sqlite
from .options import RunOptions
from .queue import StudyProgress, TrialQueue
from .search import study_name
from .signals import TimeLimitReached
from .status import StorageStatus
from .workers import EpochReport, FinishedTrial, InlinePool, WorkerPool


class Monitor:
    """What a run tells the user; the CLI draws it, the library default is silent."""

    def started(self, status: Callable[[], StorageStatus]) -> None:
        """The storage is open and its studies are ready: training begins. Every check of
        the run's options and storage has passed by now. `status` reads what `odyssey
        status` shows of the storage, as the run reads it (never open it anew: a Ctrl-C
        during such a read would leave it locked)."""

    def studies(
        self, counts: dict[str, dict[str, int]], progress: dict[str, StudyProgress]
    ) -> None:
        """Trial counts per study, and where its populations in training here stand."""

    def trial(self, name: str, number: int, result: TrialResult) -> None:
        """A trial finished and was stored."""

    def round(self, number: int, total: int, sizes: tuple[int, int]) -> None:
        """Round `number` (1-based) of `total` began: configurations of these hidden sizes."""


def run(options: RunOptions, monitor: Monitor | None = None) -> dict[str, dict[str, int]]:
    """Run the studies until no trial is waiting or running anywhere; returns trial counts.

    Ctrl-C sends the trials in flight back to the queue (checkpoints kept) and raises
    Interrupted. With `options.time_limit`, stop after that many seconds the same way and
    raise TimeLimitReached; with one worker (training in this process) the stop comes at
    the first epoch boundary after the limit.
    """
    monitor = monitor or Monitor()
    benchmarks.load(options.benchmark, options.data)  # its data present, before any write
    with (
        exclusive_sqlite(options.storage) as sole,
        TrialQueue(options, sole=sole) as queue,
        queue.stops.installed(),
    ):
        monitor.started(queue.status)
        limit = options.time_limit
        deadline = math.inf if limit is None else time.monotonic() + limit
        try:
            return _Loop(queue, monitor, deadline).run()
        except KeyboardInterrupt:
            requeued = queue.requeue_running()
            raise Interrupted(
                f"interrupted; {requeued} running trials went back to the queue with their "
                "checkpoints: rerun the same command to continue"
            ) from None
        except TimeLimitReached:
            queue.requeue_running()
            raise
        except StorageError:
            raise  # the requeue would fail alike: the trials go stale, to be retried
        except Exception:
            queue.requeue_running()  # an error of the run's own must strand no trial
            raise


class _Loop:
    """The main loop of a run: free workers take jobs, ended jobs are told, and the
    monitor hears of each. Trial counts are read again when results come and, since others
    change them too (stale trials failed and queued again, other machines), at the
    heartbeat's pace."""

    def __init__(self, queue: TrialQueue, monitor: Monitor, deadline: float) -> None:
        self.queue, self.monitor, self.deadline = queue, monitor, deadline
        self.options = queue.options
        self.counts, self.counted = queue.counts(), time.monotonic()
        self.shown_round: int | None = None
        self.look_again = 0.0  # when to look for a job again, while the round has none free

    def run(self) -> dict[str, dict[str, int]]:
        """Until no trial is waiting or running anywhere; returns the trial counts."""
        workers = self.options.workers
        threads = max(1, _usable_cpus() // workers)
        pool: InlinePool | WorkerPool = (
            InlinePool(threads, self.on_epoch)
            if workers == 1
            else WorkerPool(workers, threads, self.on_epoch)
        )
        with pool:
            while True:
                if time.monotonic() > self.deadline:
                    raise TimeLimitReached
                self.queue.check()
                if pool.free and time.monotonic() >= self.look_again:
                    self.submit(pool)
                self.collect(pool)
                if not pool.idle or not self.look_again:  # busy, or a job may be waiting
                    continue
                if self.done():
                    return self.counts

    def submit(self, pool: InlinePool | WorkerPool) -> None:
        """Jobs for the free workers, announcing each new round."""
        queue = self.queue
        while pool.free and (job := queue.take_job()):
            if self.shown_round is None or queue.current_round > self.shown_round:
                self.shown_round = queue.current_round
                self.monitor.round(*queue.round_info(self.shown_round))
            self.counts = queue.counts()
            self.monitor.studies(self.counts, queue.progress())
            pool.submit(job)
        if pool.free:  # the round's other trials are in flight: look again later
            self.look_again = time.monotonic() + min(5.0, self.options.heartbeat / 2)

    def collect(self, pool: InlinePool | WorkerPool) -> None:
        """Tell the jobs that ended within a second (or by the deadline) and show the
        counts."""
        outcomes = []
        if not pool.idle:
            outcomes = pool.wait(max(0.0, min(1.0, self.deadline - time.monotonic())))
        for job, results, failure in outcomes:
            self.told(job.variant, self.queue.finish(job, results, failure))
            self.look_again = 0.0
        stale = time.monotonic() - self.counted > self.options.heartbeat
        if outcomes or pool.idle or stale:
            self.counts, self.counted = self.queue.counts(), time.monotonic()
        self.monitor.studies(self.counts, self.queue.progress())

    def done(self) -> bool:
        """With every worker idle and no job free: whether no trial is left anywhere. Else
        wait for others' running trials, or look again for the trials queued meanwhile."""
        if _live(self.counts):
            time.sleep(min(5.0, self.options.heartbeat / 2))  # others' trials still running
            self.look_again = 0.0
        elif not sum(self.queue.reconcile(s) for s in self.queue.studies):
            self.counts = self.queue.counts()  # the background thread may have queued some
            if not _live(self.counts):
                return True
            self.look_again = 0.0
        return False

    def on_epoch(self, report: EpochReport) -> None:
        self.told(report.key[0], self.queue.record_epoch(report))
        self.monitor.studies(self.counts, self.queue.progress())
        if time.monotonic() > self.deadline:  # this epoch's checkpoints are written
            raise TimeLimitReached

    def told(self, variant: str, results: list[FinishedTrial]) -> None:
        name = study_name(self.options.benchmark, variant)
        for finished in results:
            self.monitor.trial(name, finished.number, finished.result)
        if results:
            self.counted = -math.inf  # read the counts again


def _usable_cpus() -> int:
    """The CPUs this process may run on: a batch system's allocation (Slurm's cgroup or
    affinity, taskset), not all of the node's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _live(counts: dict[str, dict[str, int]]) -> bool:
    return any(c["running"] or c["waiting"] for c in counts.values())
