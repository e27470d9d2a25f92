"""The study: benchmarks, training, the Optuna runner, analysis, plots and the `odyssey` CLI.

The Python API in three calls, as the command line does it:

    >>> import study
    >>> study.run("jsb", variants="V,CIFG", trials=4, protocol="smoke",
    ...           storage="sqlite:///results/mine.db")        # -> trial counts per study
    >>> study.status("sqlite:///results/mine.db")["studies"]   # -> one row per study
    >>> study.report("sqlite:///results/mine.db", "results/mine")   # -> .../REPORT.md

`study.analysis` reads a storage or a report folder into tables (`read_results`) and draws the
figures; `variants.build` makes a cell. Each function imports what it needs when called, so
that `import study` (and `odyssey --help`) stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

try:
    __version__ = version("lstm-odyssey")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "unknown"

if TYPE_CHECKING:
    import pandas as pd

    from .runner.coordinator import Monitor
    from .training.protocol import Protocol

__all__ = ["__version__", "report", "run", "status"]


def run(
    benchmark: str,
    variants: str | Sequence[str] = "all",
    *,
    protocol: str | Protocol = "paper",
    monitor: Monitor | None = None,
    **options,
) -> dict[str, dict[str, int]]:
    """Train the random search of `variants` on `benchmark`, as `odyssey run` does, until no
    trial waits; returns the trial counts by state of each study. Rerun to continue.

    `variants`: names, or a comma-separated text with 'all' (the paper's nine) or 'family'.
    `protocol`: a preset name (paper, quick, smoke, demo) or a `Protocol`. `options`: the
    fields of `study.runner.options.RunOptions` (trials, storage, workers, population,
    device, seed, sampler, sample, data, checkpoints, heartbeat, time_limit), which are
    `odyssey run`'s options. `monitor`: progress callbacks (`study.runner.coordinator.Monitor`);
    none by default.
    """
    from dataclasses import fields

    from .errors import OptionError
    from .runner.coordinator import run as run_studies
    from .runner.options import RunOptions, resolve_variants
    from .training.protocol import Protocol
    from .training.protocol import protocol as preset

    known = [f.name for f in fields(RunOptions)][3:]  # after benchmark, variants, protocol
    unknown = [name for name in options if name not in known]
    if unknown:
        raise OptionError(unknown[0], f"is no option of run; expected one of {', '.join(known)}")
    if isinstance(variants, str):
        names = resolve_variants(variants)
    elif isinstance(variants, Sequence) and all(isinstance(v, str) for v in variants):
        names = resolve_variants(",".join(variants))
    else:
        raise OptionError("variants", f"must be names or a comma-separated text, got {variants!r}")
    if isinstance(protocol, str):
        chosen = preset(protocol)
    elif isinstance(protocol, Protocol):
        chosen = protocol
    else:
        raise OptionError("protocol", f"must be a preset name or a Protocol, got {protocol!r}")
    return run_studies(RunOptions(benchmark, names, chosen, **options), monitor)


def status(storage: str) -> dict[str, pd.DataFrame]:
    """What `odyssey status --json` prints, as tables. `studies`: one row per study of this
    tool (trial counts by state, rounds, diverged and blown-up trials, the best validation
    value and the test metric of that trial, compute hours spent and left, errors of failed
    trials). `time_left`: per benchmark, the running round's and the whole study's compute
    and wall time left. `processes` and `hosts`: who holds the running trials (stale ones
    counted) and trials completed per host. Reads only."""
    import pandas as pd

    from .runner.status import storage_status

    return {name: pd.DataFrame(rows) for name, rows in storage_status(storage).as_dict().items()}


def report(storage: str, out: str | Path | None = None, reference: str | None = None) -> Path:
    """Analyse `storage` and write the report into `out` (default: named after the storage,
    as `odyssey report`); returns the path of REPORT.md. `reference`: a storage whose V
    studies join the analysis (`odyssey report --reference`)."""
    from .analysis import analyse, default_out, load_storage, write

    folder = Path(out) if out is not None else default_out(storage)
    return write(analyse(*load_storage(storage, reference=reference)), folder, storage)
