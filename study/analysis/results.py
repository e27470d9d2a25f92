"""The tables `odyssey report` writes into its folder, and `read_results` to load them all in
one call (the notebooks' first cell): every figure can be redrawn from them without a storage
and without refitting a forest."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from .checks import CHECK_COLUMNS, PROTOCOL
from .curves import CURVE_COLUMNS
from .fanova import OUT_OF_BAG
from .stats import SUMMARY_COLUMNS
from .trials import COLUMNS, STUDY_COLUMNS, read_trials

FANOVA, PED_ANOVA = "fanova", "ped-anova"  # the two lenses of importance.csv
IMPORTANCE_COLUMNS = [
    "benchmark",
    "variant",  # a variant, or `all` for the forest pooled over the benchmark's variants
    "lens",  # FANOVA (the paper's) or PED_ANOVA (Optuna's, main effects only)
    "term",
    "order",
    "importance",
    "std",  # over the forest's trees (fANOVA only)
    "held_out_r2",  # R² of the forest this row came from on trials it was not fitted on
    "held_out",  # how they were held out: out-of-bag, or whole configurations (fANOVA only)
    "n_trials",  # complete trials with a test metric the lens was computed from
]
# `covered`: the value (both values) within the range the variant's complete trials span
MARGINAL_COLUMNS = ["benchmark", "variant", "param", "value", "mean", "std", "covered"]
INTERACTION_COLUMNS = [
    "benchmark",
    "variant",
    "term",  # "first:second"
    "first_value",
    "second_value",
    "mean",
    "std",
    "covered",
]
_COLUMNS = {
    "trials": COLUMNS,
    "studies": STUDY_COLUMNS,
    "summary": SUMMARY_COLUMNS,
    "importance": IMPORTANCE_COLUMNS,
    "checks": CHECK_COLUMNS,
    "marginals": MARGINAL_COLUMNS,
    "interactions": INTERACTION_COLUMNS,
    "curves": CURVE_COLUMNS,
}
# Text columns besides benchmark and variant; their empty cells read back as "".
_STRINGS = {
    "studies": ["sample", "data_sha256"],
    "summary": ["direction", "paired_direction", "paper_agreement"],
    "importance": ["lens", "term", "held_out"],
    "checks": [*PROTOCOL, "edge_flags"],
    "marginals": ["param"],
    "interactions": ["term"],
}


@dataclass
class Results:
    """Every table of a report folder (docs/report.md gives the columns)."""

    trials: pd.DataFrame
    studies: pd.DataFrame
    summary: pd.DataFrame
    importance: pd.DataFrame
    checks: pd.DataFrame
    marginals: pd.DataFrame
    interactions: pd.DataFrame
    curves: pd.DataFrame

    def of_benchmark(self, benchmark: str) -> Results:
        """The same tables restricted to `benchmark`'s rows (their order and index kept): what
        each section of the report reads, so that none of them filters by benchmark. A plain
        Results: what a subclass holds beside the tables (`Analysis.models`) stays behind."""
        tables = {name: getattr(self, name) for name in _COLUMNS}
        return Results(
            **{name: table[table.benchmark == benchmark] for name, table in tables.items()}
        )

    def write_tables(self, out: Path) -> list[Path]:
        """`<name>.csv` per table under `out`."""
        paths = []
        for name in _COLUMNS:
            path = out / f"{name}.csv"
            getattr(self, name).to_csv(path, index=False)
            paths.append(path)
        return paths


def read_results(folder: str | Path) -> Results:
    """All tables `odyssey report` wrote into `folder`. A table missing from an older report
    folder comes back empty, with its columns."""
    folder = Path(folder)
    tables = {}
    for field in fields(Results):
        name = field.name
        path = folder / f"{name}.csv"
        if name == "trials":
            tables[name] = read_trials(path)
            continue
        if not path.is_file():
            tables[name] = pd.DataFrame(columns=_COLUMNS[name])
            continue
        strings = _STRINGS.get(name, [])
        dtype = {column: str for column in ["benchmark", "variant", *strings]}
        table = pd.read_csv(path, dtype=dtype, keep_default_na=False, na_values=[""])
        if name == "importance" and "oob_r2" in table:  # written before grouped hold-outs
            table = table.rename(columns={"oob_r2": "held_out_r2"})
            table["held_out"] = np.where(table.held_out_r2.notna(), OUT_OF_BAG, "")
        table = table.reindex(columns=_COLUMNS[name])  # an older folder: new columns empty
        table[strings] = table[strings].fillna("")  # empty cells are empty texts
        if name == "importance":  # folders written before the second lens: all fANOVA
            table["lens"] = table["lens"].replace("", FANOVA)
        tables[name] = table
    return Results(**tables)


def read_tables(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """trials, summary and importance of a report folder (`read_results` gives every table)."""
    results = read_results(folder)
    return results.trials, results.summary, results.importance
