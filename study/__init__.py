"""The study: benchmarks, training, the Optuna runner, analysis, plots and the `odyssey` CLI."""
