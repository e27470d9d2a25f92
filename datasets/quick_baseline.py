"""Quick vanilla baseline for the dataset cards: torch.nn.LSTM + Adam, test metric at best valid.

    .venv/bin/python datasets/quick_baseline.py digits-framewise --epochs 30 --batch 16

Not the paper's protocol (that is `odyssey run`): a sanity check that a benchmark is learnable
and not solved, next to its chance level.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence

from study import benchmarks
from study.training import tasks


class Net(nn.Module):
    def __init__(self, bench: benchmarks.Benchmark, hidden: int):
        super().__init__()
        self.lstm = nn.LSTM(bench.input_size, hidden, bidirectional=bench.bidirectional)
        self.out = nn.Linear(hidden * (2 if bench.bidirectional else 1), bench.output_size)

    def forward(self, xs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = torch.tensor([len(x) for x in xs])
        packed = pack_padded_sequence(pad_sequence(xs), lengths, enforce_sorted=False)
        y, _ = pad_packed_sequence(self.lstm(packed)[0])
        return self.out(y), lengths


def loss_of(bench, z, lengths, ys):
    """The engine's loss (per sequence averaged over frames, then over the batch)."""
    return tasks.loss(bench.task, z[:, None], tasks.collate(bench.task, ys_inputs(z, lengths), ys))[
        0
    ]


@torch.no_grad()
def score(bench, net, split) -> float:
    """The engine's metric over a whole split."""
    z, lengths = net(split.inputs)
    num, den = tasks.metric(
        bench.task, z[:, None], tasks.collate(bench.task, ys_inputs(z, lengths), split.targets)
    )
    return float(num[0] / den[0])


def ys_inputs(z, lengths):
    """Stand-in inputs of the right lengths, so that collate pads targets as the engine does."""
    return [z.new_zeros(n, 1) for n in lengths.tolist()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", choices=benchmarks.names())
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    bench = benchmarks.load(args.benchmark)
    net = Net(bench, args.hidden)
    opt = torch.optim.Adam(net.parameters(), args.lr)
    best_valid, test_at_best, start = float("inf"), float("nan"), time.time()
    for epoch in range(args.epochs):
        order = torch.randperm(len(bench.train)).tolist()
        for k in range(0, len(order), args.batch):
            idx = order[k : k + args.batch]
            z, lengths = net([bench.train.inputs[i] for i in idx])
            loss = loss_of(bench, z, lengths, [bench.train.targets[i] for i in idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        valid, test = score(bench, net, bench.valid), score(bench, net, bench.test)
        if valid < best_valid:
            best_valid, test_at_best = valid, test
        print(f"epoch {epoch:3d}  valid {valid:.4f}  test {test:.4f}  {time.time() - start:.0f}s")
    print(
        f"{bench.name}: H={args.hidden} {args.epochs} epochs, best valid {best_valid:.4f}, "
        f"test at best valid {test_at_best:.4f}, chance {bench.chance:.4f}"
    )


if __name__ == "__main__":
    main()
