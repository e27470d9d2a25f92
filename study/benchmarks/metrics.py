"""What each benchmark's metric is called, its unit, and the levels a result is judged against.

The report reads storages without loading the data, so the levels of the embedded benchmarks
are written here (from their cards in datasets/); a user-data benchmark's chance level comes
from its built cache when there is exactly one, else it is unknown and the check is skipped.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Metric:
    """A benchmark's test metric (lower is better) and its reference levels."""

    name: str  # e.g. "NLL per step"
    unit: str = ""  # e.g. "nats"; empty for rates
    chance: float | None = None  # a predictor that ignores the input, on the test split
    chance_means: str = ""  # what that predictor does, in words
    untrained: float | None = None  # an untrained network's level, where it is known exactly
    rate: bool = False  # an error rate: every frame or label wrong scores 1.0

    @property
    def cap(self) -> float | None:
        """The untrained reference: an untrained network's level (JSB: 61.0 nats, 0.5 for
        every key) where that is known, else 1.0 for an error rate (every frame or label
        wrong); None when neither is. Forests see test metrics capped at it."""
        if self.untrained is not None:
            return self.untrained
        return 1.0 if self.rate else None

    @property
    def blow_up(self) -> float | None:
        """The level past which a trial has blown up: BLOW_UP_MARGIN times the reference
        (an untrained network with random weights itself scores a little above 61.0, and a
        trial that never learned has not blown up)."""
        return None if self.cap is None else BLOW_UP_MARGIN * self.cap

    def label(self, prefix: str = "test") -> str:
        """An axis label: 'test NLL per step (nats)', 'test frame error rate'."""
        text = f"{prefix} {self.name}".strip()
        return f"{text} ({self.unit})" if self.unit else text


UNTRAINED_JSB = 88 * math.log(2)  # 0.5 for each of the 88 keys: 61.0 nats per step
BLOW_UP_MARGIN = 1.1  # how far past the untrained reference a trial has blown up

METRICS: dict[str, Metric] = {
    "jsb": Metric("NLL per step", "nats", 10.98, "each key's training frequency", UNTRAINED_JSB),
    "jsb-original": Metric(
        "NLL per step", "nats", 11.09, "each key's training frequency", UNTRAINED_JSB
    ),
    "digits-framewise": Metric(
        "frame error rate", "", 0.883, "always the most frequent training digit", rate=True
    ),
    "digits-ctc": Metric("label error rate", "", 1.0, "the empty output", rate=True),
    "timit": Metric(
        "frame error rate", "", None, "always the most frequent training phone", rate=True
    ),
    "iam-ondb": Metric("character error rate", "", 1.0, "the empty output", rate=True),
}
# Input size, output size and directions of the benchmarks whose shapes are fixed (from their
# cards in datasets/ and the paper): the report's parameter counts.
SHAPES = {
    "jsb": (88, 88, 1),
    "jsb-original": (88, 88, 1),
    "digits-framewise": (39, 10, 2),
    "digits-ctc": (39, 11, 2),
}
# Which of the paper's datasets a benchmark is (the same data) or stands in for (other data
# of the same kind of task: findings on it are context, not a test of the paper's claims).
PAPER_DATASET = {"jsb": "JSB", "jsb-original": "JSB", "timit": "TIMIT", "iam-ondb": "IAM"}
STAND_IN = {"digits-framewise": "TIMIT", "digits-ctc": "IAM"}


def metric_of(benchmark: str) -> Metric:
    """The metric of `benchmark`; a generic one for a benchmark this tool does not know."""
    metric = METRICS.get(benchmark, Metric("metric"))
    if metric.chance is None:
        chance = _cached_chance(benchmark)
        if chance is not None:
            metric = replace(metric, chance=chance)
    return metric


def _cached_chance(benchmark: str) -> float | None:
    """The chance level stored with the one built cache of `benchmark`, if exactly one."""
    from .cache import data_home

    found = []
    for path in sorted((data_home() / ".cache").glob(f"{benchmark}-*.npz")):
        try:
            with np.load(path, allow_pickle=False) as z:
                scalars = json.loads(str(z["meta"]))["scalars"]
        except (OSError, KeyError, ValueError):
            continue
        if scalars.get("name") == benchmark:
            found.append(float(scalars["chance"]))
    return found[0] if len(set(found)) == 1 else None
