"""What the paper found (Greff et al. 2017; docs/paper.md §6), as data: the report quotes it
beside each finding of a study and says whether the study agrees or differs. Its protocol is
the `paper` preset (`study.training.protocol.PROTOCOLS`), which presets deviate from; its
datasets and their stand-ins are in `study.benchmarks.metrics` (PAPER_DATASET, STAND_IN)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

DATASETS = ("TIMIT", "IAM", "JSB")
# Figure 3: the variants significantly worse than V on each dataset. NFG and NOAF are worse on
# all three datasets; NIG, NOG and NIAF on TIMIT and IAM only; CIFG and NP never differ; FGR
# gives no gain (worse on JSB).
WORSE_ON = {
    "NIG": {"TIMIT", "IAM"},
    "NFG": {"TIMIT", "IAM", "JSB"},
    "NOG": {"TIMIT", "IAM"},
    "NIAF": {"TIMIT", "IAM"},
    "NOAF": {"TIMIT", "IAM", "JSB"},
    "NP": set(),
    "CIFG": set(),
    "FGR": {"JSB"},
}
# Figure 3's verdict against V by dataset and variant: "worse" or "" (not different).
DIRECTION = {
    dataset: {v: ("worse" if dataset in on else "") for v, on in WORSE_ON.items()}
    for dataset in DATASETS
}
# Published LSTMs' test NLL per step on JSB's 229 / 76 / 77 split (docs/paper.md §7): the
# level a working protocol reaches.
PUBLISHED = {"JSB": (8.45, 8.7)}
TOP_TRIALS = 20  # a side in Figure 3's comparisons: the best 10 % of 200 trials


@dataclass(frozen=True)
class Share:
    """The paper's words on a parameter's main-effect share of the variance (Figure 5), and
    the shares that agree with them: above `low` and below `high`."""

    says: str
    low: float = -math.inf
    high: float = math.inf

    def agrees(self, share: float) -> bool:
        return self.low < share < self.high  # NaN agrees with nothing


# Figure 5, fANOVA of V in log space: the parameters from most to least important ...
RANKING = ("learning_rate", "hidden_size", "input_noise", "one_minus_momentum")
# ... with the shares the paper gives in words (hidden size's is its rank, "second") ...
SHARES = {
    "learning_rate": Share("more than two thirds", low=2 / 3),
    "one_minus_momentum": Share("almost nothing", high=0.05),
    "input_noise": Share("small", high=0.1),
}
# ... and the interactions: small, the largest between these two.
LARGEST_PAIR = ("learning_rate", "hidden_size")
PAIRS = "interactions small, the largest learning rate × hidden size"

# Figure 4, V's marginals: a broad basin in BASIN's, a trend in each other's.
BASIN = "learning_rate"
MARGINALS = {
    "learning_rate": "a broad basin of good learning rates",
    "hidden_size": "bigger networks help, with diminishing returns",
    "input_noise": "noise mostly hurts",
}
TIME = "bigger networks cost more time"


def ranked(names: Iterable[str]) -> list[str]:
    """`names` from the most to the least important in the paper (RANKING), then the
    parameters it did not search, in their order."""
    names = list(names)
    return [n for n in RANKING if n in names] + [n for n in names if n not in RANKING]
