"""The scoring rules the benchmarks name: best-path CTC decoding and label error rate."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def best_path(scores: Tensor, blank: int = 0) -> list[int]:
    """Best-path decoding of one sequence's [T, C] scores: argmax, merge repeats, drop blanks."""
    path = scores.argmax(-1).tolist()
    return [c for t, c in enumerate(path) if c != blank and (t == 0 or c != path[t - 1])]


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def label_error_rate(decoded: Sequence[Sequence[int]], targets: Sequence[Tensor]) -> float:
    """Total edit distance over total target length (a corpus-level rate, as for CER)."""
    errors = sum(edit_distance(d, t.tolist()) for d, t in zip(decoded, targets, strict=True))
    return errors / max(1, sum(len(t) for t in targets))


def frame_error(scores: Sequence[Tensor], targets: Sequence[Tensor]) -> float:
    """Fraction of frames whose argmax class differs from the label, over the whole split."""
    wrong = sum(int((s.argmax(-1) != y).sum()) for s, y in zip(scores, targets, strict=True))
    return wrong / max(1, sum(len(y) for y in targets))


def next_step_nll(logits: Sequence[Tensor], targets: Sequence[Tensor]) -> float:
    """Bernoulli negative log-likelihood per time step (nats, summed over keys), over the split."""
    total = sum(
        float(torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="sum"))
        for z, y in zip(logits, targets, strict=True)
    )
    return total / max(1, sum(len(y) for y in targets))
