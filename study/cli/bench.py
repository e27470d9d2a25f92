"""`odyssey bench`: training speed of the variants against torch.nn.LSTM (GRU and MGU against
torch.nn.GRU), in one process.

One training step = forward, backward and update over one sequence per trial (input 39,
batch 1 per trial). The baseline trains one torch.nn.LSTM at a time (oneDNN on CPU, cuDNN
on GPU); ours trains a population of K trials at once. Both use the same trivial head
(loss = sum of squares of the outputs) and the same optimizer (PopulationNesterov, which
for nn.LSTM's parameters acts as one trial). The family's targets (docs/family.md) are
printed after the table: GRU and MGU at most torch.nn.GRU's time per sequence, minGRU,
minLSTM and sLSTM at most V's time per trial, each at its best K. Each row times the two
interleaved, step
after step, so that a change in machine load hits both alike; the ratio is our median time
per trial over the baseline's median time per sequence. Each row names the recurrence
that ran (`--backend`; auto resolves to the fastest that runs here).
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
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import variants
from variants import family
from variants.layer import BACKENDS, checked_backend

from .. import __version__, benchmarks
from ..errors import UserError
from ..runner.options import resolve_variants
from ..training import tasks
from ..training.optim import PopulationNesterov
from ..training.protocol import Protocol
from ..training.trainer import PopulationTrainer, TrialConfig, resolve_device

INPUT_SIZE = 39
WARMUP = 2
LEARNING_RATE, MOMENTUM = 1e-4, 0.9

FULL = {"variants": ["V", "CIFG", "FGR"], "hidden": [20, 100, 200], "length": [100, 300]}
QUICK = {"variants": ["V", "CIFG", "FGR", *variants.FAMILY[1:]], "hidden": [100]}
GRU_BASELINE = ("GRU", "MGU")  # timed against torch.nn.GRU; the rest against torch.nn.LSTM


@dataclass(frozen=True)
class Row:
    variant: str
    backend: str  # the recurrence that ran
    why: str  # why it ran instead of the one asked for ("" when it is that one)
    population: int
    hidden: int
    length: int
    ms_per_trial: float  # median step time of the population / K
    baseline_ms: float  # median step time of one baseline model on one sequence
    ratio: float  # ms_per_trial / baseline_ms
    repeats: int
    baseline: str = "torch.nn.LSTM"


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
        grid["variants"] = list(resolve_variants(args.variants))
    return grid


def _positive_ints(option: str, text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise UserError(f"{option}: expected comma-separated positive integers, got {text!r}")
    return values


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


def _ours(
    variant: str, K: int, H: int, T: int, device: torch.device, backend: str
) -> Callable[[], None]:
    model = variants.build(variant, INPUT_SIZE, H, population=K, device=device, backend=backend)
    x = torch.randn(T, K, 1, INPUT_SIZE, device=device)
    lr, momentum = torch.full((K,), LEARNING_RATE), torch.full((K,), MOMENTUM)
    return _training_step(model, x, PopulationNesterov(list(model.parameters()), lr, momentum))


def _baseline(H: int, T: int, device: torch.device, gru: bool = False) -> Callable[[], None]:
    model = (torch.nn.GRU if gru else torch.nn.LSTM)(INPUT_SIZE, H, device=device)
    x = torch.randn(T, 1, INPUT_SIZE, device=device)
    lr, momentum = torch.full((1,), LEARNING_RATE), torch.full((1,), MOMENTUM)
    return _training_step(model, x, PopulationNesterov(list(model.parameters()), lr, momentum))


def _timed(step: Callable[[], None], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    step()
    _sync(device)
    return time.perf_counter() - start


def measure(
    variant: str,
    K: int,
    H: int,
    T: int,
    device: torch.device,
    repeats: int,
    backend: str = "auto",
) -> Row:
    """Median step times of ours and of the baseline, timed alternately."""
    torch.manual_seed(0)
    gru = variant in GRU_BASELINE
    ours, baseline = _ours(variant, K, H, T, device, backend), _baseline(H, T, device, gru)
    for _ in range(WARMUP):
        ours(), baseline()
    ours_s, base_s = [], []
    for _ in range(repeats):
        ours_s.append(_timed(ours, device))
        base_s.append(_timed(baseline, device))
    per_trial = statistics.median(ours_s) / K * 1e3
    base = statistics.median(base_s) * 1e3
    spec, dtype = variants.resolve(variant), torch.get_default_dtype()
    path, why = checked_backend(backend, spec, device, dtype)
    name = "torch.nn.GRU" if gru else "torch.nn.LSTM"
    return Row(variant, path, why, K, H, T, per_trial, base, per_trial / base, repeats, name)


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
        "lstm_odyssey": __version__,
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
        caption="ratio: ours per trial / the baseline per sequence, timed alternately in "
        "this process, medians; bold: the best K for the variant, H and T",
    )
    columns = ("variant", "backend", "K", "H", "T", "ours ms/trial", "baseline", "ms", "ratio")
    for col in columns:
        table.add_column(col, justify="right" if col in ("K", "H", "T", "ms", "ratio") else "left")
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
            r.backend,
            str(r.population),
            str(r.hidden),
            str(r.length),
            f"{r.ms_per_trial:.3f}",
            r.baseline.removeprefix("torch."),
            f"{r.baseline_ms:.3f}",
            ratio,
        )
    return table


def family_targets(rows: list[Row]) -> list[dict]:
    """The family's targets at each H and T measured, each cell at its best K: GRU and MGU
    against torch.nn.GRU per sequence, the others against V per trial (where V was run)."""
    best: dict[tuple[str, int, int], Row] = {}
    for r in rows:
        key = (r.variant, r.hidden, r.length)
        if key not in best or r.ms_per_trial < best[key].ms_per_trial:
            best[key] = r
    targets = []
    for (name, H, T), r in best.items():
        if name not in variants.FAMILY[1:]:
            continue
        if name in GRU_BASELINE:
            against, ratio = "torch.nn.GRU", r.ratio
        elif ("V", H, T) in best:
            against, ratio = "V", r.ms_per_trial / best[("V", H, T)].ms_per_trial
        else:
            continue
        targets.append(
            {"variant": name, "hidden": H, "length": T, "population": r.population,
             "against": against, "ratio": ratio, "met": ratio <= 1.0}
        )  # fmt: skip
    return targets


def step_flops(spec: variants.Spec, inputs: int, hidden: int, outputs: int, directions: int) -> int:
    """Floating-point operations (2 per multiply-add) of one time step of one trial in its
    matrix products, forward and backward; the gate arithmetic is left out. Per direction,
    with G = (1 + gates) H rows of stacked blocks: forward W x, R y(t-1) and, with full gate
    recurrence, R_gg gates(t-1); backward each weight's gradient plus R^T and R_gg^T times
    the step's gradient (none for the data x). The head maps D H outputs to O: forward, its
    weight gradient and its input gradient."""
    G = (1 + len(spec.gates)) * hidden
    gg = (len(spec.gates) * hidden) ** 2 if spec.full_gate_recurrence else 0
    per_direction = 2 * (2 * G * inputs + 3 * G * hidden + 3 * gg)
    return directions * per_direction + 3 * 2 * outputs * directions * hidden


def matmul_ceiling(device: torch.device, size: int = 1024, repeats: int = 5) -> float:
    """GFLOP/s of a float32 size x size x size torch.mm here (same threads): what the BLAS
    reaches on this hardware, the ceiling for any engine's matrix products."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    times = [_timed(lambda: torch.mm(a, b), device) for _ in range(repeats + 1)][1:]
    return 2 * size**3 / statistics.median(times) / 1e9


def training_throughput(
    name: str,
    populations: list[int],
    hidden: int,
    sequences: int,
    device: torch.device,
    backend: str = "auto",
) -> tuple[list[dict], float]:
    """Trial-sequences per second of the training engine on a real benchmark, for each K,
    next to one torch.nn.LSTM (+ linear head) trained the same way on the same sequences,
    each with the GFLOP/s its matrix products sustain; and those products' FLOPs per
    trial-sequence (`step_flops` times the timed sequences' mean length)."""
    bench = benchmarks.load(name)
    protocol = Protocol(max_epochs=1, max_sequences=sequences)
    timed = PopulationTrainer(bench, "V", protocol, device=str(device)).train_batches
    mean_length = sum(int(b.lengths.sum()) for b in timed) / sum(len(b.lengths) for b in timed)
    directions = 2 if bench.bidirectional else 1
    sequence_flops = mean_length * step_flops(
        variants.resolve("V"), bench.input_size, hidden, bench.output_size, directions
    )

    def ours(K: int) -> float:
        trainer = PopulationTrainer(bench, "V", protocol, device=str(device))
        for k in range(K):
            trainer.add(TrialConfig(hidden, LEARNING_RATE, MOMENTUM, 0.1, seed=k))
        population = trainer.pack(trainer.active)
        population.model.lstm.backend = backend
        population.step(trainer.train_batches[0])  # warm-up
        _sync(device)
        start = time.perf_counter()
        for batch in trainer.train_batches:
            population.step(batch)
        _sync(device)
        return K * len(trainer.train_batches) / (time.perf_counter() - start)

    def baseline() -> float:
        lstm = torch.nn.LSTM(
            bench.input_size, hidden, bidirectional=bench.bidirectional, device=device
        )
        head = torch.nn.Linear(hidden * (1 + bench.bidirectional), bench.output_size, device=device)
        params = [*lstm.parameters(), *head.parameters()]
        opt = PopulationNesterov(params, torch.tensor([LEARNING_RATE]), torch.tensor([MOMENTUM]))
        batches = timed

        def step(batch: tasks.Batch) -> None:
            opt.lookahead()
            x = batch.inputs + 0.1 * torch.randn_like(batch.inputs)
            logits = head(lstm(x)[0])[:, None]  # a population of one
            tasks.loss(bench.task, logits, batch).sum().backward()
            opt.step()
            opt.zero_grad()

        step(batches[0])
        _sync(device)
        start = time.perf_counter()
        for batch in batches:
            step(batch)
        _sync(device)
        return len(batches) / (time.perf_counter() - start)

    base = baseline()
    rows = [{"model": "torch.nn.LSTM", "backend": "", "why": "", "K": 1, "trial_seq_per_s": base}]
    for K in populations:
        speed = ours(K)
        path, why = checked_backend(backend, variants.resolve("V"), device, torch.float32)
        rows.append({"model": "V", "backend": path, "why": why, "K": K, "trial_seq_per_s": speed})
    single = next((r["trial_seq_per_s"] for r in rows[1:] if r["K"] == 1), None)
    for r in rows:
        r["vs_nn_lstm"] = r["trial_seq_per_s"] / base
        r["vs_K1"] = r["trial_seq_per_s"] / single if single else None
        r["gflops"] = r["trial_seq_per_s"] * sequence_flops / 1e9
    return rows, sequence_flops


def cmd_training(args: argparse.Namespace, device: torch.device, env: dict) -> int:
    populations = _positive_ints("--population", args.population or "1,4,16,64")
    hidden = _positive_ints("--hidden", args.hidden or "100")[0]
    rows, sequence_flops = training_throughput(
        args.training, populations, hidden, args.sequences, device, args.backend
    )
    ceiling = matmul_ceiling(device)
    table = Table(
        title=f"training throughput on {args.training}: V, hidden {hidden}, "
        f"first {args.sequences} training sequences, batch 1\n"
        f"{env['device']}: {env['device_name']}, {env['torch_threads']} threads",
        caption="one update per sequence per trial (forward, backward, Nesterov step, input "
        f"noise); GFLOP/s: of the {sequence_flops / 1e6:.1f} MFLOP of matrix products per "
        f"trial-sequence. A 1024^3 float32 torch.mm runs at {ceiling:.1f} GFLOP/s here: at "
        f"that rate throughout, at most {ceiling * 1e9 / sequence_flops:.0f} trial-seq/s",
    )
    for col in ("model", "backend", "K", "trial-seq/s", "GFLOP/s", "x nn.LSTM", "x K=1"):
        table.add_column(col, justify="left" if col in ("model", "backend") else "right")
    for r in rows:
        vs_k1 = f"{r['vs_K1']:.2f}" if r["vs_K1"] is not None and r["model"] == "V" else ""
        table.add_row(
            r["model"],
            r["backend"],
            str(r["K"]),
            f"{r['trial_seq_per_s']:.1f}",
            f"{r['gflops']:.1f}",
            f"{r['vs_nn_lstm']:.2f}",
            vs_k1,
        )
    Console().print(table)
    _say_why([r["why"] for r in rows])
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        ceilings = {"sequence_mflop": sequence_flops / 1e6, "matmul_gflops": ceiling}
        path.write_text(json.dumps({"environment": env, "rows": rows, **ceilings}, indent=2) + "\n")
    return 0


def _say_why(whys: list[str]) -> None:
    """One line per reason a row ran another recurrence than the one asked for."""
    for why in dict.fromkeys(w for w in whys if w):
        Console().print(
            f"[yellow]fused ran instead: {why}[/yellow]", highlight=False, soft_wrap=True
        )


def cmd_bench(args: argparse.Namespace) -> int:
    if args.backend not in BACKENDS:
        raise UserError(f"--backend: expected one of {', '.join(BACKENDS)}, got {args.backend!r}")
    if args.sequences < 1:  # checked here, before the benchmark is built
        raise UserError(f"--sequences: must be at least 1, got {args.sequences}")
    device = resolve_device(args.device)
    if args.training:
        return cmd_training(args, device, environment(device))
    grid = _grid(args, device)
    cells = [v for v in grid["variants"] if variants.resolve(v).cell != "lstm"]
    if cells and args.backend not in family.PATHS:
        raise UserError(
            f"--backend {args.backend}: {', '.join(cells)} run on {', '.join(family.PATHS)}"
        )
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
            rows.append(measure(v, K, H, T, device, repeats, args.backend))
            progress.advance(task)
    env["load_average_after"] = list(os.getloadavg())
    console.print(_table(rows, env))
    targets = family_targets(rows)
    for t in targets:
        console.print(
            f"{t['variant']} (H {t['hidden']}, T {t['length']}, best K {t['population']}): "
            f"{t['ratio']:.2f}x {t['against']} (target at most 1.0: "
            f"{'met' if t['met'] else 'not met'})"
        )
    _say_why([r.why for r in rows])
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
            "baseline": "torch.nn.LSTM (torch.nn.GRU for GRU and MGU), one model, one "
            "sequence per step",
        }
        record = {
            "environment": env,
            "settings": settings,
            "rows": [asdict(r) for r in rows],
            "family_targets": targets,
        }
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n")
    return 0
