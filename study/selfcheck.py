"""`odyssey check`: every variant and cell of the family builds, runs forward and backward,
and its size is reported."""

from __future__ import annotations

import argparse

import torch
from rich.console import Console
from rich.table import Table

import variants


def cmd_check(args: argparse.Namespace) -> int:
    table = Table(title="variants (input 39, hidden 100, one direction)")
    for col in ("variant", "switches", "parameters", "output", "grad norm"):
        table.add_column(col)
    x = torch.randn(50, 1, 39)
    family = [name for name in variants.FAMILY if name not in variants.PAPER_VARIANTS]
    for name in [*variants.PAPER_VARIANTS, *family]:
        lstm = variants.build(name, 39, 100)
        out, _ = lstm(x)
        out.square().mean().backward()
        grad = torch.cat([p.grad.flatten() for p in lstm.parameters()]).norm().item()
        if not torch.isfinite(out).all() or grad == 0:
            raise RuntimeError(f"variant {name} produced no usable output")
        table.add_row(
            name,
            lstm.spec.describe() if lstm.spec.cell == "lstm" else lstm.cell.title,
            f"{lstm.n_params()[0]:,}",
            str(tuple(out.shape)),
            f"{grad:.3g}",
        )
    Console().print(table)
    return 0
