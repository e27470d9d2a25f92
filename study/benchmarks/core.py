"""What every benchmark provides: three splits of sequences and how to score them."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

# framewise: softmax over classes at every frame, cross-entropy, frame classification error.
# ctc: softmax over labels + blank (index 0), CTC loss, label error rate by best-path decoding.
# next_step: sigmoid per output unit, Bernoulli negative log-likelihood per time step.
TASKS = ("framewise", "ctc", "next_step")


@dataclass
class Split:
    """One split. inputs[i] is float32 [T_i, input_size]; targets[i] by task:
    framewise long [T_i] in [0, output_size); ctc long [L_i] in [1, output_size) (0 = blank);
    next_step float32 {0, 1} [T_i, output_size] (the frame that follows inputs[i][t])."""

    inputs: list[Tensor]
    targets: list[Tensor]
    ids: list[str]  # where each sequence came from (utterances, chorale names), for audits

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def frames(self) -> int:
        return sum(len(x) for x in self.inputs)


@dataclass
class Benchmark:
    name: str
    task: str  # one of TASKS
    input_size: int
    output_size: int
    bidirectional: bool
    train: Split
    valid: Split
    test: Split
    metric: str  # e.g. "frame error", "label error rate", "NLL per step"
    chance: float  # the metric of a predictor that ignores the input, on the test split
    notes: dict = field(default_factory=dict)  # recipe, version, source paths
