"""`odyssey check`: every variant and cell of the family builds, runs forward and backward,
and its size and the recurrence that ran (with why, where that is not the one auto chose)
are reported."""

from __future__ import annotations

import argparse

import torch
from rich.console import Console

import variants
from variants.layer import checked_backend

from ..training.trainer import resolve_device
from .tables import word_table


def cmd_check(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    rows = []
    x = torch.randn(50, 1, 39, device=device)
    whys = {}
    cells = [name for name in variants.FAMILY if name not in variants.PAPER_VARIANTS]
    for name in [*variants.PAPER_VARIANTS, *cells]:
        lstm = variants.build(name, 39, 100, device=device)
        out, _ = lstm(x)
        out.square().mean().backward()
        grad = torch.cat([p.grad.flatten() for p in lstm.parameters()]).norm().item()
        if not torch.isfinite(out).all() or grad == 0:
            raise RuntimeError(f"variant {name} produced no usable output")
        path, why = checked_backend(lstm.backend, lstm.spec, device, x.dtype)
        if why:
            whys[name] = why
        rows.append(
            [
                name,
                lstm.spec.describe() if lstm.spec.cell == "lstm" else lstm.cell.title,
                f"{lstm.n_params()[0]:,}",
                "x".join(map(str, out.shape)),  # one word: it never wraps
                f"{grad:.3g}",
                path + (" *" if why else ""),
            ]
        )
    console = Console()
    console.print(f"variants (input 39, hidden 100, one direction) on {device}")
    headers = ["variant", "switches", "parameters", "output", "grad norm", "recurrence"]
    console.print(word_table(headers, rows, console.width, left=2))
    for name, why in whys.items():
        console.print(f"* {name}: {why}; the fused path ran", highlight=False, soft_wrap=True)
    return 0
