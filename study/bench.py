"""`odyssey bench`: training speed of the variants against torch.nn.LSTM, in one process.

One training step = forward, backward and update over one sequence per trial (input 39,
batch 1 per trial). The baseline trains one torch.nn.LSTM at a time (oneDNN on CPU, cuDNN
on GPU); ours trains a population of K trials at once. Both use the same trivial head
(loss = sum of squares of the outputs) and the same optimizer (PopulationNesterov, which
for nn.LSTM's parameters acts as one trial). Each row times the two interleaved, step
after step, so that a change in machine load hits both alike; the ratio is our median time
per trial over the baseline's median time per sequence.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import variants
from study.errors import UserError
from study.optim import PopulationNesterov

INPUT_SIZE = 39
WARMUP = 2
LEARNING_RATE, MOMENTUM = 1e-4, 0.9

FULL = {"variants": ["V", "CIFG", "FGR"], "hidden": [20, 100, 200], "length": [100, 300]}
QUICK = {"variants": ["V", "CIFG", "FGR"], "hidden": [100]}


@dataclass(frozen=True)
class Row:
    variant: str
    population: int
    hidden: int
    length: int
    ms_per_trial: float  # median step time of the population / K
    baseline_ms: float  # median step time of one nn.LSTM on one sequence
    ratio: float  # ms_per_trial / baseline_ms
    repeats: int


def _grid(args: argparse.Namespace, device: torch.device) -> dict[str, list]:
    """The default grid (full or quick, CPU or GPU) with the options' lists put in."""
    gpu = device.type == "cuda"
    if args.quick:
        grid = dict(QUICK, population=[1, 64, 256] if gpu else [1, 16, 64])
        grid["length"] = [300] if gpu else [100]
    else:
        grid = dict(FULL, population=[1, 16, 64, 256] if gpu else [1, 16, 64])
    for key in ("population", "hidden", "length"):
        text = getattr(args, key)
        if text is not None:
            grid[key] = _positive_ints(f"--{key}", text)
    if args.variants is not None:
        grid["variants"] = [v.strip() for v in args.variants.split(",")]
        for name in grid["variants"]:
            try:
                variants.resolve(name)
            except ValueError as err:
                raise UserError(f"--variants: {err}") from None
        canonical = {name.upper(): name for name in variants.PRESETS}
        grid["variants"] = [canonical[name.upper()] for name in grid["variants"]]
    return grid


def _positive_ints(option: str, text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise UserError(f"{option}: expected comma-separated positive integers, got {text!r}")
    return values


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available to this torch build")
    return torch.device(name)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _training_step(
    model: torch.nn.Module, x: torch.Tensor, optimizer: PopulationNesterov
) -> Callable[[], None]:
    def step() -> None:
        optimizer.lookahead()
        optimizer.zero_grad()
        out, _ = model(x)
        out.square().sum().backward()
        optimizer.step()

    return step


def _ours(variant: str, K: int, H: int, T: int, device: torch.device) -> Callable[[], None]:
    model = variants.build(variant, INPUT_SIZE, H, population=K, device=device)
    x = torch.randn(T, K, 1, INPUT_SIZE, device=device)
    lr, momentum = torch.full((K,), LEARNING_RATE), torch.full((K,), MOMENTUM)
    return _training_step(model, x, PopulationNesterov(list(model.parameters()), lr, momentum))


def _baseline(H: int, T: int, device: torch.device) -> Callable[[], None]:
    model = torch.nn.LSTM(INPUT_SIZE, H, device=device)
    x = torch.randn(T, 1, INPUT_SIZE, device=device)
    lr, momentum = torch.full((1,), LEARNING_RATE), torch.full((1,), MOMENTUM)
    return _training_step(model, x, PopulationNesterov(list(model.parameters()), lr, momentum))


def _timed(step: Callable[[], None], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    step()
    _sync(device)
    return time.perf_counter() - start


def measure(variant: str, K: int, H: int, T: int, device: torch.device, repeats: int) -> Row:
    """Median step times of ours and of the baseline, timed alternately."""
    torch.manual_seed(0)
    ours, baseline = _ours(variant, K, H, T, device), _baseline(H, T, device)
    for _ in range(WARMUP):
        ours(), baseline()
    ours_s, base_s = [], []
    for _ in range(repeats):
        ours_s.append(_timed(ours, device))
        base_s.append(_timed(baseline, device))
    per_trial = statistics.median(ours_s) / K * 1e3
    base = statistics.median(base_s) * 1e3
    return Row(variant, K, H, T, per_trial, base, per_trial / base, repeats)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict:
    """What the numbers depend on: device, versions, threads, load."""
    info = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lstm_odyssey": metadata.version("lstm-odyssey"),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "load_average": list(os.getloadavg()),
    }
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32  # nn.LSTM may use TF32
        info["matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    return info


def _table(rows: list[Row], env: dict) -> Table:
    table = Table(
        title=f"fwd+bwd+update per trial-sequence (input {INPUT_SIZE}, batch 1 per trial)\n"
        f"{env['device']}: {env['device_name']}, {env['torch_threads']} threads, "
        f"torch {env['torch']}",
        caption="ratio: ours per trial / torch.nn.LSTM per sequence, timed alternately in "
        "this process, medians; bold: the best K for the variant, H and T",
    )
    for col in ("variant", "K", "H", "T", "ours ms/trial", "nn.LSTM ms", "ratio"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    best = {}
    for r in rows:
        key = (r.variant, r.hidden, r.length)
        best[key] = min(best.get(key, r.ratio), r.ratio)
    for r in rows:
        ratio = f"{r.ratio:.2f}"
        if len(rows) > 1 and r.ratio == best[(r.variant, r.hidden, r.length)]:
            ratio = f"[bold]{ratio}[/bold]"
        table.add_row(
            r.variant,
            str(r.population),
            str(r.hidden),
            str(r.length),
            f"{r.ms_per_trial:.3f}",
            f"{r.baseline_ms:.3f}",
            ratio,
        )
    return table


def cmd_bench(args: argparse.Namespace) -> int:
    device = _device(args.device)
    grid = _grid(args, device)
    repeats = 5 if args.quick else 7
    env = environment(device)
    configs = [
        (v, K, H, T)
        for H in grid["hidden"]
        for T in grid["length"]
        for v in grid["variants"]
        for K in grid["population"]
    ]
    rows = []
    console = Console()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("bench", total=len(configs))
        for v, K, H, T in configs:
            progress.update(task, description=f"{v} K={K} H={H} T={T}")
            rows.append(measure(v, K, H, T, device, repeats))
            progress.advance(task)
    env["load_average_after"] = list(os.getloadavg())
    console.print(_table(rows, env))
    load = max(env["load_average"][0], env["load_average_after"][0])
    console.print(
        f"load average {env['load_average'][0]:.2f} before, "
        f"{env['load_average_after'][0]:.2f} after; {env['cpu_count']} CPUs"
    )
    if device.type == "cpu" and load > (env["cpu_count"] or 1):
        console.print(
            "[yellow]The machine was busy with other work: times and ratios are unreliable "
            "(threads wait for cores). Rerun on an idle machine.[/yellow]"
        )
    if args.json:
        settings = {
            "input_size": INPUT_SIZE,
            "batch_per_trial": 1,
            "warmup": WARMUP,
            "repeats": repeats,
            "statistic": "median",
            "loss": "sum of squares of the outputs",
            "optimizer": f"PopulationNesterov lr={LEARNING_RATE} momentum={MOMENTUM} "
            "(one trial for nn.LSTM)",
            "baseline": "torch.nn.LSTM, one model, one sequence per step",
        }
        record = {"environment": env, "settings": settings, "rows": [asdict(r) for r in rows]}
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n")
    return 0
