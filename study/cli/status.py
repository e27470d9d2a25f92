"""`odyssey status`: the storage's studies, their time left and who trains them, as tables
that fit 80 columns, or as JSON."""

from __future__ import annotations

import argparse
import json
import sys

from ..benchmarks.metrics import metric_of
from ..errors import UserError
from ..runner.estimate import Left, TimeLeft
from ..runner.fleet import UNRECORDED
from ..runner.status import StorageStatus, storage_status
from ..runner.storage import display_url
from .tables import word_table

COUNTS = ("complete", "running", "waiting", "failed", "requeued", "rounds", "diverged", "blew_up")


def cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console

    status = storage_status(args.storage)
    for line in status.skipped:
        print(f"odyssey status: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
        return 0
    if not status.studies:
        raise UserError(
            f"no studies of this tool in {display_url(args.storage)}; start one with `odyssey run`"
        )
    console = Console(width=None if sys.stdout.isatty() else 80)
    console.print(display_url(args.storage), soft_wrap=True, markup=False)
    show(console, status)
    return 0


def show(console, status: StorageStatus) -> None:
    """Per benchmark: trials by state, results and compute, time left; then the fleet."""
    for estimate in status.time_left:
        rows = [r for r in status.studies if r["study"] in estimate.studies]
        metric = metric_of(estimate.benchmark)
        unit = f" ({metric.unit})" if metric.unit else ""
        console.print(f"\n{estimate.benchmark}: trials by state", markup=False)
        console.print(_counts_table(rows, console.width))
        console.print(
            f"\n{estimate.benchmark}, {metric.name}{unit}: the best validation value of each "
            "variant and the test value of that trial; compute hours spent and left (± 1 sd)",
            markup=False,
            highlight=False,
        )
        console.print(_results_table(rows, console.width))
        for line in time_left_lines(estimate, status.workers):
            console.print(line, soft_wrap=True, markup=False, highlight=False)
        for row in rows:
            for error, n in row["errors"].items():
                console.print(f"{row['study']}: {n} failed: {error}", soft_wrap=True, markup=False)
    console.print()
    _fleet(console, status)


def _counts_table(rows: list[dict], width: int):
    return word_table(
        ["variant", *(c.replace("_", " ") for c in COUNTS)],
        [[_variant(row), *(_text(row[c]) for c in COUNTS)] for row in rows],
        width,
    )


def _results_table(rows: list[dict], width: int):
    return word_table(
        ["variant", "best valid", "its test", "hours spent", "hours left"],
        [
            [
                _variant(row),
                _text(row["best_valid"]),
                _text(row["test_at_best_valid"]),
                f"{row['compute_hours']:.2f}",
                "unknown yet"
                if row["left_hours"] is None
                else f"{row['left_hours']:.2f} ± {row['left_sd_hours']:.2f}",
            ]
            for row in rows
        ],
        width,
    )


def time_left_lines(estimate: TimeLeft, workers: int) -> list[str]:
    """The running round's and the whole study's time left, one line each (`odyssey run`
    prints them too)."""
    if estimate.round is None:
        return [f"{estimate.benchmark}: nothing left to train"]
    at = f"at {workers} worker{'s' * (workers != 1)}" if workers else "no run is training now"
    return [
        f"{estimate.benchmark} time left, {at}:",
        f"  round {estimate.round} of {estimate.rounds}: {_left(estimate.this_round, workers)}",
        f"  whole study: {_left(estimate.total, workers)}",
    ]


def _left(part: Left, workers: int) -> str:
    trials = f"{part.trials} trial{'s' * (part.trials != 1)}"
    if part.compute_s is None:
        return f"{trials}, unknown yet (too few complete trials, or sizes, to fit every variant)"
    text = f"{trials}, {_hours(part.compute_s)} ± {_hours(part.sd_s)} compute"
    wall = part.wall_s(workers)
    return text if wall is None else f"{text}, {_hours(wall)} wall"


def _fleet(console, status: StorageStatus) -> None:
    """The processes holding running trials (or a line saying none is), then the trials
    of each host, where any records one."""
    if not status.processes:
        console.print("no trial is running", markup=False)
    else:
        console.print("running trials by process", markup=False)
        headers = ["host", "pid", "workers", "running", "stale", "heartbeat"]
        rows = [
            [
                _host(row["host"]),
                _text(row["pid"]),
                _text(row["workers"]),
                str(row["running"]),
                str(row["stale"]),
                "none" if row["heartbeat_age_s"] is None else f"{row['heartbeat_age_s']:.0f} s ago",
            ]
            for row in status.processes
        ]
        console.print(word_table(headers, rows, console.width))
    if any(row["host"] != UNRECORDED for row in status.hosts):
        console.print("\ntrials by host", markup=False)
        headers = ["host", "processes", "running", "stale", "complete", "last hour"]
        rows = [
            [_host(row["host"]), *(str(v) for v in list(row.values())[1:])] for row in status.hosts
        ]
        console.print(word_table(headers, rows, console.width))


def _host(name: str) -> str:
    """A host's short name, as `hostname -s` gives it: the tables stay narrow (JSON has
    the full name)."""
    return name.split(".", 1)[0]


def _variant(row: dict) -> str:
    return row["study"].rpartition("/")[2]


def _text(value) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _hours(seconds: float) -> str:
    """'2.3 h', '14 min' under an hour, '40 s' under a minute."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"
