"""The study: benchmarks, training, the Optuna runner, analysis, plots and the `odyssey` CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lstm-odyssey")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "unknown"
