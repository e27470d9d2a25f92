"""Why a trial failed, as its `failure` user attribute records it. Workers classify the
errors of training, the coordinator the rest; `study.runner.retries` reads the kind to decide
whether the configuration runs again."""

from __future__ import annotations

import enum


class Failure(enum.Enum):
    INTERRUPTED = "interrupted"  # Ctrl-C or --time-limit: runs again, not counted
    INFRASTRUCTURE = "infrastructure"  # a dead worker or coordinator, memory, disk, data
    TRAINING = "training"  # its own training raised
    # Earlier versions wrote it for a trial with no finite validation metric, which now
    # completes at +inf (it learned nothing): such a configuration runs again, to be recorded so.
    RESULT = "result"
