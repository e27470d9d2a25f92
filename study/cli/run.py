"""`odyssey run`: the command line's side of the runner (progress on a terminal or in a log
file, the closing summary)."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import fields

from .. import benchmarks
from ..benchmarks.metrics import metric_of
from ..runner.coordinator import Monitor, run
from ..runner.options import RunOptions, resolve_variants
from ..runner.queue import StudyProgress
from ..runner.search import study_name
from ..runner.signals import TimeLimitReached
from ..runner.status import StorageStatus, storage_status
from ..runner.storage import display_url
from ..training.trainer import TrialResult
from .parser import protocol_of
from .status import time_left_lines


class AnnouncingMonitor(Monitor):
    """Prints the run's first line once every check of its options and storage has passed,
    so that a refused run prints its one error line alone."""

    def __init__(self, console, banner: str, options: RunOptions) -> None:
        self.console, self.banner = console, banner
        self.n_trials, self.max_epochs = options.trials, options.protocol.max_epochs
        self.benchmark = options.benchmark
        self.metric = metric_of(options.benchmark).name

    def started(self, status: Callable[[], StorageStatus]) -> None:
        self.read_status = status
        self.console.print(self.banner, soft_wrap=True)

    def progress_text(self, progress: StudyProgress) -> str:
        """'epoch 37/150, 12 trials active, best valid NLL per step 8.91'."""
        return (
            f"epoch {progress.epoch}/{self.max_epochs}, {progress.active} trials active, "
            f"best valid {self.metric} {progress.best:.4g}"
        )

    def time_left(self) -> list[str]:
        """The time left of the run's benchmark (`odyssey status`'s lines), read from the
        storage: the round just begun and the whole study, at the workers training now."""
        status = self.read_status()
        estimate = next(e for e in status.time_left if e.benchmark == self.benchmark)
        return time_left_lines(estimate, status.workers)


class BarMonitor(AnnouncingMonitor):
    """A progress bar per study, on a terminal, short enough for 80 columns: what its
    figures are is said once, under the first line."""

    def __init__(self, console, banner: str, options: RunOptions, bar) -> None:
        super().__init__(console, banner, options)
        self.bar, self.tasks = bar, {}

    def started(self, status: Callable[[], StorageStatus]) -> None:
        super().started(status)
        self.console.print(
            "per variant: trials complete of those planned; the furthest epoch of its "
            "populations in training here, their trials still training and their best "
            f"validation {self.metric}",
            markup=False,
            highlight=False,
        )

    def studies(
        self, counts: dict[str, dict[str, int]], progress: dict[str, StudyProgress]
    ) -> None:
        for name, c in counts.items():
            if name not in self.tasks:
                self.tasks[name] = self.bar.add_task(name, total=self.n_trials, detail="")
            if name in progress:
                p = progress[name]
                detail = (
                    f"epoch {p.epoch}/{self.max_epochs}, {p.active} active, best valid {p.best:.4g}"
                )
            else:
                detail = f"running {c['running']}"
            if c["failed"]:
                detail += f", failed {c['failed']}"
            self.bar.update(self.tasks[name], completed=c["complete"], detail=detail)

    def round(self, number: int, total: int, sizes: tuple[int, int]) -> None:
        self.bar.console.print(_round_line(number, total, sizes))
        for line in self.time_left():
            self.bar.console.print(line, markup=False, highlight=False)


def _round_line(number: int, total: int, sizes: tuple[int, int]) -> str:
    return f"round {number} of {total}: hidden sizes {sizes[0]}-{sizes[1]}, every variant"


class LogMonitor(AnnouncingMonitor):
    """Timestamped lines for a log file (nohup, SLURM, CI): one per finished trial, at most
    one per study per `every` seconds, and the time left at each round and at most every
    `every_left` seconds."""

    def __init__(
        self,
        console,
        banner: str,
        options: RunOptions,
        every: float = 60.0,
        every_left: float = 900.0,
    ) -> None:
        super().__init__(console, banner, options)
        self.every, self.last = every, {}
        self.every_left, self.last_left = every_left, time.monotonic()

    def _print(self, text: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}", flush=True)

    def studies(
        self, counts: dict[str, dict[str, int]], progress: dict[str, StudyProgress]
    ) -> None:
        now = time.monotonic()
        for name, c in counts.items():
            line = f"{c['complete']}/{self.n_trials} complete, {c['running']} running"
            if c["failed"]:
                line += f", {c['failed']} failed"
            if name in progress:
                line += f"; {self.progress_text(progress[name])}"
            if now - self.last.get(name, -math.inf) >= self.every:
                self._print(f"{name}: {line}")
                self.last[name] = now
        if now - self.last_left >= self.every_left:
            self._print_time_left()

    def round(self, number: int, total: int, sizes: tuple[int, int]) -> None:
        self._print(_round_line(number, total, sizes))
        self._print_time_left()

    def _print_time_left(self) -> None:
        for line in self.time_left():
            self._print(line)
        self.last_left = time.monotonic()

    def trial(self, name: str, number: int, result: TrialResult) -> None:
        self._print(
            f"{name}: trial {number} done: {self.metric} valid {result.value:.4g}, "
            f"test {result.test_metric:.4g} at its best valid epoch {result.best_epoch} of "
            f"{result.epochs}{' (diverged)' if result.diverged else ''}"
        )


def run_options(args: argparse.Namespace) -> RunOptions:
    """The options of `odyssey run` (each field has the option's name)."""
    given = {f.name: getattr(args, f.name) for f in fields(RunOptions) if hasattr(args, f.name)}
    given["variants"] = resolve_variants(args.variants)
    given["protocol"] = protocol_of(args)
    return RunOptions(**given)


def cmd_run(args: argparse.Namespace) -> int:
    # A batch system ends a job with SIGTERM (and `kill` sends it): stop as on Ctrl-C,
    # trials in flight back to the queue, instead of leaving them to go stale. A shell
    # starts background jobs with SIGINT ignored; `kill -INT` should still stop the run.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    options = run_options(args).resolved()  # its device and K, said in the first line
    bench = benchmarks.load(options.benchmark, options.data)  # fails early; builds the cache
    banner = (
        f"[bold]{options.benchmark}[/]: {len(bench.train)} training sequences; "
        f"{len(options.variants)} variants x {options.trials} trials, preset {options.preset}, "
        f"{options.workers} worker(s), population {options.population}, {options.device}"
    )
    start = time.perf_counter()
    try:
        _run_shown(options, banner)
        stopped = False
    except TimeLimitReached:
        stopped = True
    return _closing(options, stopped, start)


def _run_shown(options: RunOptions, banner: str) -> None:
    """`run`, with progress bars on a terminal and timestamped lines elsewhere."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        run(options, LogMonitor(console, banner, options))
        return
    with Progress(
        TextColumn("{task.description:<20}"),
        BarColumn(bar_width=10),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        console=console,
    ) as bar:
        run(options, BarMonitor(console, banner, options, bar))


def _closing(options: RunOptions, stopped: bool, start: float) -> int:
    """The closing summary and what to do next; the exit status (1 if trials failed)."""
    names = {study_name(options.benchmark, v) for v in options.variants}
    rows = [row for row in storage_status(options.storage).studies if row["study"] in names]
    complete = sum(r["complete"] for r in rows)
    failed = sum(r["failed"] for r in rows)
    elapsed = time.perf_counter() - start
    shown = display_url(options.storage)
    if stopped:
        left = sum(r["waiting"] + r["running"] for r in rows)
        summary = (
            f"time limit of {options.time_limit:g} s reached after {elapsed:.0f} s: trials in "
            f"flight went back to the queue with their checkpoints; {complete} trials "
            f"complete, {left} left, {failed} failed"
        )
    else:
        summary = f"{complete} trials complete, {failed} failed, in {elapsed:.0f} s"
    # What reads the results is said as a fact, not as a next step: `make demo` runs the
    # report right after, and a "Next:" line would then tell of what already ran.
    print(
        f"{summary}. Results: {shown}, read by `odyssey status --storage {shown}` and "
        f"`odyssey report --storage {shown}`"
        + (".\nNext: rerun the same command to continue" if stopped else ""),
        file=sys.stderr,
    )
    if failed:
        errors = sum((Counter(r["errors"]) for r in rows), Counter())
        why = "; ".join(f"{error} ({n})" for error, n in errors.most_common(3))
        print(
            f"odyssey run: {failed} trial{'s' * (failed > 1)} failed: {why}. A rerun retries "
            "all but those whose own training raised the same error three times",
            file=sys.stderr,
        )
        return 1
    return 0
