"""`odyssey report`: analyse a storage and write its tables, figures and REPORT.md."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

from ..analysis import analyse, default_out, load_storage, write
from ..analysis.trials import SkippedStudy
from ..runner.storage import display_url


def cmd_report(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SkippedStudy)
            trials, epochs, studies = load_storage(args.storage, args.benchmark, args.reference)
    finally:  # one line per skipped study, also when none is left; others as Python shows them
        for warning in caught:
            if issubclass(warning.category, SkippedStudy):
                print(f"odyssey report: {warning.message}", file=sys.stderr)
            else:
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )
    out = Path(args.out) if args.out else default_out(args.storage)
    path = write(analyse(trials, epochs, studies), out, args.storage)
    source = display_url(args.storage)
    if args.reference:
        source += f" (V from {display_url(args.reference)})"
    complete = int((trials.state == "COMPLETE").sum())
    planned = pd.to_numeric(studies.planned, errors="coerce")
    plan = f" of {int(planned.sum()):,} planned" if len(planned) and planned.notna().all() else ""
    print(
        f"{complete:,} complete trials{plan} ({len(trials):,} rows stored, waiting and "
        f"requeued attempts included) of {trials.benchmark.nunique()} benchmark(s) from "
        f"{source} analysed in {time.perf_counter() - start:.1f} s.\nReport: {path}"
    )
    return 0
