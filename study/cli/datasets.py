"""`odyssey datasets`: every benchmark, whether it is available, its sizes and chance level."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from ..benchmarks import describe, names
from ..errors import UserError

SPLITS = ("train", "valid", "test")


def parse_paths(pairs: list[str]) -> dict[str, str]:
    """--path NAME=PATH options as a dict, checked against the benchmark names."""
    paths = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not path or name not in names():
            raise UserError(f"--path expects NAME=PATH with NAME one of {', '.join(names())}")
        paths[name] = path
    return paths


def cmd_datasets(args: argparse.Namespace) -> int:
    paths = parse_paths(args.path or [])
    err = Console(stderr=True)
    rows = []
    for name in names():
        with err.status(f"loading {name} (built once, then cached)"):
            rows.append(describe(name, paths.get(name)))
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    table = Table(title="benchmarks: sequences / frames per split; metric lower is better")
    for col in ("benchmark", "available", "task", "in → out", *SPLITS, "metric", "chance"):
        table.add_column(col, no_wrap=True, justify="right" if col == "chance" else "left")
    for row in rows:
        if not row["available"]:
            table.add_row(row["name"], "no", *[""] * 7)
            continue
        sizes = [f"{row[s]['sequences']} / {row[s]['frames']}" for s in SPLITS]
        arrow = "⇄" if row["bidirectional"] else "→"
        table.add_row(
            row["name"],
            "yes",
            row["task"],
            f"{row['input_size']} {arrow} {row['output_size']}",
            *sizes,
            row["metric"],
            f"{row['chance']:.4g}",
        )
    console = Console(width=max(Console().width, 130))
    console.print(table)
    for row in rows:
        if not row["available"]:
            console.print(row["reason"], highlight=False, soft_wrap=True)
    return 0
