"""Tiny benchmarks of each task kind with random data, for tests of the training engine."""

import torch

from study.benchmarks.core import Benchmark, Split


def make_split(task, n, M, O, seed, lengths=(5, 9)):
    gen = torch.Generator().manual_seed(seed)
    inputs, targets = [], []
    for _ in range(n):
        T = int(torch.randint(lengths[0], lengths[1] + 1, (1,), generator=gen))
        x = torch.randn(T, M, generator=gen)
        if task == "framewise":
            y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()  # learnable from the input
        elif task == "next_step":
            y = (torch.rand(T, O, generator=gen) < 0.3).float()
        else:
            y = torch.randint(1, O, (int(torch.randint(1, 3, (1,), generator=gen)),), generator=gen)
        inputs.append(x)
        targets.append(y)
    return Split(inputs, targets, [f"s{seed}-{i}" for i in range(n)])


def make_benchmark(task="framewise", n=(12, 6, 6), M=4, O=3, bidirectional=None):
    bidi = task != "next_step" if bidirectional is None else bidirectional
    return Benchmark(
        name=f"synthetic-{task}",
        task=task,
        input_size=M,
        output_size=O,
        bidirectional=bidi,
        train=make_split(task, n[0], M, O, 1),
        valid=make_split(task, n[1], M, O, 2),
        test=make_split(task, n[2], M, O, 3),
        metric="test metric",
        chance=1.0,
    )
