"""`odyssey train`: one configuration (or a few side by side) trained the way a study trains
its trials, so that tuning by hand gives the numbers a study would."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import variants

from .. import benchmarks
from ..errors import UserError
from ..training.trainer import PopulationTrainer, TrialConfig, resolve_device
from .parser import protocol_of


def _values(option: str, text: str, kind: type) -> list:
    try:
        values = [kind(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values):
        raise UserError(f"{option}: expected comma-separated numbers, got {text!r}")
    return values


def configs(args) -> list[TrialConfig]:
    """One config per comma-separated value; an option with a single value applies to all."""
    columns = {
        "hidden_size": _values("--hidden-size", args.hidden_size, int),
        "learning_rate": _values("--learning-rate", args.learning_rate, float),
        "momentum": _values("--momentum", args.momentum, float),
        "input_noise": _values("--input-noise", args.input_noise, float),
    }
    n = max(len(v) for v in columns.values())
    for name, values in columns.items():
        if len(values) not in (1, n):
            raise UserError(
                f"--{name.replace('_', '-')} has {len(values)} values; expected 1 or {n}"
            )
        columns[name] = values * n if len(values) == 1 else values
    checks = (
        ("hidden_size", lambda v: v >= 1, "at least 1"),
        ("learning_rate", lambda v: v > 0, "positive"),
        ("momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
        ("input_noise", lambda v: v >= 0, "non-negative"),
    )
    for name, ok, what in checks:
        bad = [v for v in columns[name] if not ok(v)]
        if bad:
            raise UserError(f"--{name.replace('_', '-')} must be {what}, got {bad[0]}")
    return [
        TrialConfig(h, lr, m, noise, seed=args.seed) for h, lr, m, noise in zip(*columns.values())
    ]


def cmd_train(args) -> int:
    trials = configs(args)
    proto = protocol_of(args)
    try:  # every option is checked before the benchmark is built
        spec = variants.resolve(args.variant)
    except ValueError as err:
        raise UserError(f"--variant: {err}") from None
    device = str(resolve_device(args.device))
    bench = benchmarks.load(args.benchmark, args.data)
    trainer = PopulationTrainer(bench, spec, proto, device=device, order_seed=args.seed)
    for config in trials:
        trainer.add(config)
    several = len(trials) > 1
    metric = bench.metric
    print(
        f"{args.benchmark}, {trainer.spec.describe()}, preset {args.preset} "
        f"(at most {proto.max_epochs} epochs, patience {proto.patience}, loss "
        f"{proto.loss_reduction} over frames), {trainer.device}; metric: {metric}",
        flush=True,
    )
    # The training loss is the objective the updates minimise, over a sequence's frames as
    # --loss-reduction says; valid and test are the benchmark's metric (per step for NLL).
    reduced = "summed" if proto.loss_reduction == "sum" else "averaged"
    print(
        f"train {proto.loss_reduction}: the training loss {reduced} over each sequence's "
        f"frames, mean per update\nvalid, test: {metric} of the validation and test sets; "
        "* a new best valid",
        flush=True,
    )
    print(
        ("trial " if several else "")
        + f"epoch  train {proto.loss_reduction:<4}  valid      test       seconds",
        flush=True,
    )

    def line(trainer: PopulationTrainer) -> None:
        for k, state in enumerate(trainer.trials):
            if state.epoch != trainer.epoch:
                continue  # stopped earlier
            valid, test = state.history[-1]
            best = " *" if state.best_epoch == state.epoch else ""
            print(
                (f"{k:>5} " if several else "")
                + f"{state.epoch:>5}  {state.train_losses[-1]:>10.4g}  {valid:<9.5g}  "
                f"{test:<9.5g}  {state.seconds:>7.1f}{best}",
                flush=True,
            )

    results = trainer.run(on_epoch=line)
    for k, (config, result) in enumerate(zip(trials, results)):
        where = f"trial {k} ({config}): " if several else ""
        status = " (diverged)" if result.diverged else ""
        print(
            f"{where}best epoch {result.best_epoch} of {result.epochs}{status}: "
            f"valid {result.value:.5g}, test {result.test_metric:.5g} {metric}"
        )
    if args.json:
        record = {
            "benchmark": args.benchmark,
            "variant": args.variant,
            "preset": args.preset,
            "protocol": asdict(proto),
            "metric": metric,
            "trials": [{"config": asdict(c), **asdict(r)} for c, r in zip(trials, results)],
        }
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    return 0
