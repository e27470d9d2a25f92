"""Who holds the running trials: the host and process of each, read back for `odyssey status`.

A coordinator records on each trial it takes a `holder` user attribute (`holder_record`):
its host, process id, number of workers and heartbeat interval. The heartbeat itself is
Optuna's row in `trial_heartbeats`, refreshed every half interval while the trial trains;
a running trial whose heartbeat is older than its holder's grace (2 x interval + 1 s, the
runner's rule in `study.runner.options`) is stale: its coordinator stopped, and the next
coordinator that looks fails it and queues it again. The attribute stays on the trial
once it is complete, so completions are counted per host too.
"""

from __future__ import annotations

import os
import socket
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import optuna
import sqlalchemy
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

from .options import RunOptions

UNRECORDED = "-"  # the host of a trial taken before coordinators recorded theirs


def holder_record(options: RunOptions) -> dict:
    """What a coordinator writes on each trial it takes."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "workers": options.workers,
        "heartbeat": options.heartbeat,
    }


def heartbeat_ages(
    storage: optuna.storages.RDBStorage, study_ids: Mapping[int, str]
) -> dict[tuple[str, int], float]:
    """Seconds since the last heartbeat of each running trial that has one, by (study name,
    trial number), measured on the database's clock as Optuna measures staleness."""
    trials, beats = models.TrialModel, models.TrialHeartbeatModel
    query = (
        sqlalchemy.select(trials.study_id, trials.number, beats.heartbeat)
        .join(beats, beats.trial_id == trials.trial_id)
        .where(trials.state == TrialState.RUNNING)
    )
    with storage.engine.connect() as connection:
        # PostgreSQL's now() carries a time zone, the stored heartbeats none (as Optuna does).
        now = connection.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        now = now.replace(tzinfo=None)
        rows = connection.execute(query).all()
    return {
        (study_ids[study], number): (now - beat).total_seconds()
        for study, number, beat in rows
        if study in study_ids
    }


def fleet(
    trials_by_study: Mapping[str, Sequence[FrozenTrial]],
    ages: Mapping[tuple[str, int], float],
    now: datetime,
) -> dict[str, list[dict]]:
    """Two tables as lists of rows. `processes`: one row per (host, pid) holding running
    trials, with its workers, running trials, how many of them are stale and the age of its
    freshest heartbeat. `hosts`: one row per host that holds or completed trials, with its
    processes, running and stale trials, completed trials and those completed in the hour
    before `now` (the reader's clock, as Optuna stamps completions with the writer's)."""
    processes: dict[tuple[str, object], dict] = {}
    complete, last_hour = Counter(), Counter()
    for name, trials in trials_by_study.items():
        for trial in trials:
            holder = trial.user_attrs.get("holder")
            holder = holder if isinstance(holder, dict) else {}
            host = str(holder.get("host", UNRECORDED))
            if trial.state == TrialState.COMPLETE:
                complete[host] += 1
                done = trial.datetime_complete
                last_hour[host] += done is not None and now - done <= timedelta(hours=1)
            if trial.state != TrialState.RUNNING:
                continue
            key = (host, holder.get("pid"))
            row = processes.setdefault(
                key,
                {
                    "host": host,
                    "pid": holder.get("pid"),
                    "workers": holder.get("workers"),
                    "running": 0,
                    "stale": 0,
                    "heartbeat_age_s": None,
                },
            )
            age = ages.get((name, trial.number))
            grace = 2 * holder.get("heartbeat", RunOptions.heartbeat) + 1
            row["running"] += 1
            row["stale"] += age is None or age > grace  # no heartbeat: Optuna never fails it
            if age is not None:
                freshest = row["heartbeat_age_s"]
                row["heartbeat_age_s"] = age if freshest is None else min(freshest, age)
    by_host: dict[str, dict] = defaultdict(
        lambda: {"processes": 0, "running": 0, "stale": 0, "complete": 0, "last_hour": 0}
    )
    for row in processes.values():
        host = by_host[row["host"]]
        host["processes"] += 1
        host["running"] += row["running"]
        host["stale"] += row["stale"]
    for host, n in complete.items():
        by_host[host]["complete"] = n
        by_host[host]["last_hour"] = last_hour[host]
    return {
        "processes": sorted(processes.values(), key=lambda r: (r["host"], str(r["pid"]))),
        "hosts": [{"host": host, **by_host[host]} for host in sorted(by_host)],
    }


def live_workers(processes: Sequence[dict]) -> int:
    """Workers of the processes that hold running trials and beat for at least one: the
    number the wall time left is reckoned at (a process that records none counts as one)."""
    return sum(r["workers"] or 1 for r in processes if r["running"] > r["stale"])
