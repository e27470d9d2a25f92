"""What a storage holds, study by study: the table `odyssey status` prints. Reads only."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from ..benchmarks.metrics import metric_of
from .retries import failed_errors, state_counts
from .rounds import progress
from .search import foreign_reason, own_seconds
from .storage import open_storage


def study_table(storage_url: str) -> tuple[list[dict], list[str]]:
    """One row per study of this tool: trial counts by state, diverged, best value, compute
    time, the errors of failed trials; and a line for each study skipped as another
    application's. Reads the storage only."""
    storage = open_storage(storage_url)
    rows, skipped = [], []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        reason = foreign_reason(study)
        if reason is not None:
            skipped.append(f"skipped study {summary.study_name}: not this tool's ({reason})")
            continue
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        band_size = study.user_attrs.get("band_size")
        rows.append(
            {
                "study": summary.study_name,
                **state_counts(trials),
                "rounds": None
                if band_size is None
                else "/".join(map(str, progress(trials, band_size))),
                "diverged": sum(bool(t.user_attrs.get("diverged")) for t in complete),
                "blew_up": _blown_up(summary.study_name, complete),
                "best_value": min((t.value for t in complete), default=None),
                "compute_hours": sum(own_seconds(t.user_attrs) or 0.0 for t in complete) / 3600,
                "errors": dict(failed_errors(trials)),
            }
        )
    return rows, skipped


def _blown_up(name: str, complete: list) -> int | None:
    """Complete trials whose value is past the benchmark's blow-up level (the report's
    `blew_up`: 10 % worse than an untrained network); None where it has no such level."""
    level = metric_of(name.rpartition("/")[0]).blow_up
    return None if level is None else sum(t.value > level for t in complete)
