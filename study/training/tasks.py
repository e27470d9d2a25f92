"""Losses and metrics of the three kinds of benchmark, for a population of K trials.

Logits are [T, K, B, O]; every function returns one value per trial ([K]), so that the
trials of a population never mix. A metric is returned as (numerator, denominator) per
trial, summed over a split and divided once: errors / frames, edits / target labels,
NLL / frames.

The training loss is the authors' (their library's error functions normalise by the
number of sequences only): per sequence, cross-entropy and Bernoulli NLL summed over the
sequence's frames, CTC the sequence's own CTC loss; a batch of B sequences is divided by
B. Averaging over frames instead ("mean", a recorded deviation) divides every gradient
by the sequence length and so shifts the useful learning rates by that factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class Batch:
    """Sequences padded at the end to a common length T."""

    inputs: Tensor  # [T, B, M]
    lengths: Tensor  # [B] (on the CPU)
    targets: Tensor  # framewise [T, B] long; next_step [T, B, O]; ctc [sum of L_b] long
    target_lengths: Tensor | None = None  # ctc: [B]

    def to(self, device: torch.device) -> Batch:
        return Batch(
            self.inputs.to(device),
            self.lengths,
            self.targets.to(device),
            self.target_lengths,
        )


def collate(task: str, inputs: list[Tensor], targets: list[Tensor]) -> Batch:
    lengths = torch.tensor([len(x) for x in inputs])
    x = torch.nn.utils.rnn.pad_sequence(inputs)
    if task == "ctc":
        return Batch(x, lengths, torch.cat(targets), torch.tensor([len(t) for t in targets]))
    return Batch(x, lengths, torch.nn.utils.rnn.pad_sequence(targets))


def _frame_mask(lengths: Tensor, T: int, device: torch.device) -> Tensor:
    """[T, 1, B]: 1 on real frames, 0 on padding."""
    return (torch.arange(T, device=device)[:, None] < lengths.to(device)[None, :])[:, None, :]


LOSS_REDUCTIONS = ("sum", "mean")


def loss(task: str, logits: Tensor, batch: Batch, reduction: str = "sum") -> Tensor:
    """Training loss per trial [K]: per sequence summed over its frames ("sum", the paper's)
    or averaged over them ("mean"), then averaged over the batch's sequences."""
    if reduction not in LOSS_REDUCTIONS:
        raise ValueError(f"reduction must be one of {LOSS_REDUCTIONS}, got {reduction!r}")
    T, K, B, _ = logits.shape
    frames = batch.lengths.to(logits.device) if reduction == "mean" else 1
    if task == "ctc":
        log_probs = logits.log_softmax(-1).reshape(T, K * B, -1)
        per_seq = F.ctc_loss(
            log_probs,
            batch.targets.repeat(K),
            batch.lengths.repeat(K),
            batch.target_lengths.repeat(K),
            reduction="none",
        ).view(K, B)
        return (per_seq / frames).mean(1)
    mask = _frame_mask(batch.lengths, T, logits.device)
    if task == "framewise":
        targets = batch.targets[:, None, :].expand(T, K, B)
        per_frame = F.cross_entropy(logits.permute(0, 3, 1, 2), targets, reduction="none")
    elif task == "next_step":
        targets = batch.targets[:, None].expand(T, K, B, -1)
        per_frame = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(-1)
    else:
        raise ValueError(f"unknown task {task!r}")
    return ((per_frame * mask).sum(0) / frames).mean(1)


def metric(task: str, logits: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
    """(numerator [K], denominator [K]) of the task's metric over this batch."""
    T, K, B, _ = logits.shape
    if task == "ctc":
        edits = torch.zeros(K, dtype=torch.float64)
        paths = logits.argmax(-1).cpu()  # [T, K, B]
        targets = batch.targets.split(batch.target_lengths.tolist())
        for b, target in enumerate(targets):
            truth = target.tolist()
            for k in range(K):
                decoded = best_path(paths[: batch.lengths[b], k, b])
                edits[k] += edit_distance(decoded, truth)
        return edits, torch.full((K,), float(batch.target_lengths.sum()), dtype=torch.float64)
    mask = _frame_mask(batch.lengths, T, logits.device)
    frames = torch.full((K,), float(batch.lengths.sum()), dtype=torch.float64)
    if task == "framewise":
        wrong = (logits.argmax(-1) != batch.targets[:, None, :]) & mask
        return wrong.sum((0, 2)).double().cpu(), frames
    if task == "next_step":
        targets = batch.targets[:, None].expand(T, K, B, -1)
        nll = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(-1)
        return (nll * mask).sum((0, 2)).double().cpu(), frames
    raise ValueError(f"unknown task {task!r}")


def best_path(path: Tensor) -> list[int]:
    """Best-path CTC decoding of frame-wise argmax labels: merge repeats, drop blanks (0)."""
    labels = torch.unique_consecutive(path).tolist()
    return [label for label in labels if label != 0]


def edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        diag, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (x != y))
    return row[-1]
