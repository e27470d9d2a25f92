"""What a storage holds, study by study, how long its studies have left and who trains them:
what `odyssey status` prints and `study.status` returns. Reads only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..benchmarks.metrics import metric_of
from .estimate import TimeLeft, time_left
from .fleet import fleet, heartbeat_ages, live_workers
from .retries import failed_errors, state_counts
from .rounds import progress
from .search import foreign_reason, own_seconds
from .storage import open_storage


@dataclass(frozen=True)
class StorageStatus:
    """`studies`: one row per study of this tool (trial counts by state, rounds, diverged
    and blown-up trials, the best validation value and the test metric of that trial,
    compute hours spent and left, the errors of failed trials). `time_left`: per benchmark
    (`study.runner.estimate`). `processes`, `hosts`: who holds the running trials and who
    completed trials (`study.runner.fleet`); `workers`: those of the processes training
    now. `skipped`: a line for each study skipped as another application's."""

    studies: list[dict]
    time_left: list[TimeLeft]
    processes: list[dict]
    hosts: list[dict]
    workers: int
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """All of it as plain values (`odyssey status --json`), times in hours."""
        return {
            "studies": self.studies,
            "time_left": [row for t in self.time_left for row in t.rows(self.workers)],
            "processes": self.processes,
            "hosts": self.hosts,
        }


def storage_status(storage: str | optuna.storages.RDBStorage) -> StorageStatus:
    """Everything `odyssey status` shows of a storage: its URL, or a run's own open storage
    (read through its connections, as its other calls are). Reads only."""
    if isinstance(storage, str):
        storage = open_storage(storage)
    by_benchmark: dict[str, dict[str, list[FrozenTrial]]] = {}
    band_sizes, skipped, rows = {}, [], []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        reason = foreign_reason(study)
        if reason is not None:
            skipped.append(f"skipped study {summary.study_name}: not this tool's ({reason})")
            continue
        trials = study.get_trials(deepcopy=False)
        band_sizes[study.study_name] = study.user_attrs.get("band_size")
        by_benchmark.setdefault(study.study_name.rpartition("/")[0], {})[study.study_name] = trials
        rows.append(_row(study.study_name, trials, band_sizes[study.study_name]))
    estimates = [time_left(b, studies, band_sizes) for b, studies in by_benchmark.items()]
    for row in rows:
        part = next(e for e in estimates if row["study"] in e.studies).studies[row["study"]]
        row["left_hours"] = None if part.compute_s is None else part.compute_s / 3600
        row["left_sd_hours"] = None if part.sd_s is None else part.sd_s / 3600
    all_trials = {name: t for studies in by_benchmark.values() for name, t in studies.items()}
    study_ids = {storage.get_study_id_from_name(name): name for name in all_trials}
    held = fleet(all_trials, heartbeat_ages(storage, study_ids), datetime.now())
    return StorageStatus(
        studies=rows,
        time_left=estimates,
        processes=held["processes"],
        hosts=held["hosts"],
        workers=live_workers(held["processes"]),
        skipped=skipped,
    )


def _row(name: str, trials: list[FrozenTrial], band_size: int | None) -> dict:
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = min(complete, key=lambda t: t.value, default=None)
    return {
        "study": name,
        **state_counts(trials),
        "rounds": None if band_size is None else "/".join(map(str, progress(trials, band_size))),
        "diverged": sum(bool(t.user_attrs.get("diverged")) for t in complete),
        "blew_up": _blown_up(name, complete),
        "best_valid": None if best is None else best.value,
        "test_at_best_valid": None if best is None else best.user_attrs.get("test_metric"),
        "compute_hours": sum(own_seconds(t.user_attrs) or 0.0 for t in complete) / 3600,
        "errors": dict(failed_errors(trials)),
    }


def _blown_up(name: str, complete: list) -> int | None:
    """Complete trials whose value is past the benchmark's blow-up level (the report's
    `blew_up`: 10 % worse than an untrained network); None where it has no such level."""
    level = metric_of(name.rpartition("/")[0]).blow_up
    return None if level is None else sum(t.value > level for t in complete)
