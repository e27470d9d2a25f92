"""Piano rolls and next-step benchmarks, shared by `jsb` and `jsb-original`."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from ..errors import UserError
from .core import Benchmark, Split

LOWEST_PITCH = 21  # A0: the 88 keys of a piano, MIDI 21..108
KEYS = 88


def piano_roll(frames: Iterable[Iterable[int]], where: str = "") -> np.ndarray:
    """Binary roll [T, 88] from the MIDI pitches sounding in each frame."""
    frames = list(frames)
    roll = np.zeros((len(frames), KEYS), dtype=np.float32)
    for t, pitches in enumerate(frames):
        for pitch in pitches:
            key = int(pitch) - LOWEST_PITCH
            if not 0 <= key < KEYS:
                raise UserError(
                    f"{where}: pitch {pitch} is outside the 88 piano keys "
                    f"(MIDI {LOWEST_PITCH}..{LOWEST_PITCH + KEYS - 1})"
                )
            roll[t, key] = 1.0
    return roll


def next_step_split(rolls: list[np.ndarray], ids: list[str]) -> Split:
    """Predict frame t+1 from frames up to t: inputs roll[:-1], targets roll[1:]."""
    tensors = [torch.from_numpy(r) for r in rolls]
    return Split([r[:-1] for r in tensors], [r[1:] for r in tensors], list(ids))


def bernoulli_chance(train: Split, test: Split) -> float:
    """NLL per step (nats) on test of independent Bernoullis per key with training frequencies.

    Frequencies are Laplace-smoothed so a key never seen in training costs a finite amount.
    """
    train_targets = torch.cat(train.targets).double()
    p = (train_targets.sum(0) + 1) / (len(train_targets) + 2)
    y = torch.cat(test.targets).double()
    nll = -(y * p.log() + (1 - y) * (1 - p).log()).sum(1)
    return float(nll.mean())


def next_step_benchmark(name: str, splits: dict[str, Split], notes: dict) -> Benchmark:
    return Benchmark(
        name=name,
        task="next_step",
        input_size=KEYS,
        output_size=KEYS,
        bidirectional=False,
        train=splits["train"],
        valid=splits["valid"],
        test=splits["test"],
        metric="NLL per step",
        chance=bernoulli_chance(splits["train"], splits["test"]),
        notes={"lowest_pitch": LOWEST_PITCH, "keys": KEYS, **notes},
    )
