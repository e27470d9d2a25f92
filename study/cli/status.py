"""`odyssey status`: the storage's studies as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import UserError
from ..runner.status import study_table
from ..runner.storage import display_url


def cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    rows, skipped = study_table(args.storage)
    for line in skipped:
        print(f"odyssey status: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        raise UserError(
            f"no studies of this tool in {display_url(args.storage)}; start one with `odyssey run`"
        )
    table = Table(title=display_url(args.storage))
    columns = [c for c in rows[0] if c != "errors"]
    for column in columns:
        if column == "study":
            table.add_column(column, no_wrap=True)
        else:
            table.add_column(column.replace("_", " "), justify="right")
    for row in rows:
        table.add_row(
            *(
                f"{v:.4g}" if isinstance(v, float) else "-" if v is None else str(v)
                for v in (row[c] for c in columns)
            )
        )
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    for row in rows:
        for error, n in row["errors"].items():
            console.print(f"{row['study']}: {n} failed: {error}", soft_wrap=True, markup=False)
    return 0
