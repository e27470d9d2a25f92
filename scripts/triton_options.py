"""Time the layouts of the triton recurrence kernels on a GPU (scripts/gpu_check.sh runs it).

For each hidden size H (default 20, 50, 100, 200): variant V, K = 256 trials, T = 100, one
sequence per trial, the recurrence alone (pre_x given, as `VariantLSTM` passes it). Each
layout of a small grid (inputs per pass `chunk`, `num_warps`, R through L1 or from L2
only) is timed for training (forward saving its activations, then the backward through
time and the weight gradients) and for evaluation (the forward-only kernel). The kernels
are compiled first by worker processes in parallel, into Triton's on-disk cache, so that
the timing process finds them compiled. Times are medians of 10 runs after 2 warm-ups.

    python scripts/triton_options.py [--hidden 20,50,100,200] [--json PATH]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import variants  # noqa: E402
from variants import triton_lstm  # noqa: E402
from variants.triton_lstm import Layout  # noqa: E402

K, T, B = 256, 100, 1
DEVICE = "cuda"
REPEATS, WARMUP = 10, 2


def layouts(H: int) -> list[Layout]:
    NP = triton_lstm.padded(H)
    chunks = [c for c in (4, 8, 16) if c <= NP]  # 32 and more spill registers (ptxas)
    grid = itertools.product(chunks, (2, 4, 8), (".ca", ".cg"))
    return [Layout(chunk=c, rows=1, num_warps=w, r_cache=r) for c, w, r in grid]


def inputs(H: int, requires_grad: bool) -> list[torch.Tensor | None]:
    spec = variants.resolve("V")
    G, NG = len(spec.blocks) * H, len(spec.gates) * H
    gen = torch.Generator(device=DEVICE).manual_seed(0)

    def rand(*shape, scale=0.1):
        return torch.randn(shape, generator=gen, device=DEVICE) * scale

    pre_x = rand(K, T, B, G, scale=1.0).permute(1, 0, 2, 3)  # the layer's layout
    tensors = [pre_x, rand(K, G, H), rand(K, NG), None, rand(K, B, H), rand(K, B, H)]
    return [t.requires_grad_(requires_grad) if t is not None else None for t in tensors]


def train_step(H: int):
    spec, tensors = variants.resolve("V"), inputs(H, requires_grad=True)

    def run() -> None:
        out, c_T = triton_lstm.recurrence(spec, *tensors)
        torch.autograd.backward([out, c_T], [torch.ones_like(out), torch.ones_like(c_T)])

    return run


def eval_step(H: int):
    spec, tensors = variants.resolve("V"), inputs(H, requires_grad=False)
    return lambda: triton_lstm.recurrence(spec, *tensors)


def compile_all(jobs: list[tuple[int, Layout]]) -> None:
    """Run each (H, layout) once: Triton compiles it into its on-disk cache."""
    for H, layout in jobs:
        triton_lstm.use_layout(layout)
        train_step(H)()
        eval_step(H)()
    torch.cuda.synchronize()


def median_ms(step) -> float:
    for _ in range(WARMUP):
        step()
    times = []
    for _ in range(REPEATS):
        torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="20,50,100,200")
    parser.add_argument("--workers", type=int, default=14, help="compiling processes")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("triton_options: needs a CUDA device", file=sys.stderr)
        return 3
    hidden = [int(h) for h in args.hidden.split(",")]
    jobs = [(H, layout) for H in hidden for layout in layouts(H)]
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        pool.map(compile_all, [jobs[w :: args.workers] for w in range(args.workers)])
    print(f"compiled {len(jobs)} layouts in {time.perf_counter() - start:.0f} s", flush=True)

    rows = []
    for H in hidden:
        default = triton_lstm.default_layout(H, B)
        for layout in layouts(H):
            triton_lstm.use_layout(layout)
            train_ms, eval_ms = median_ms(train_step(H)), median_ms(eval_step(H))
            rows.append(
                {
                    "H": H,
                    **asdict(layout),
                    "default": layout == default,
                    "train_ms": train_ms,
                    "eval_ms": eval_ms,
                    "train_us_per_trial_sequence": train_ms / K * 1e3,
                }
            )
        best = min((r for r in rows if r["H"] == H), key=lambda r: r["train_ms"])
        ours = next((r for r in rows if r["H"] == H and r["default"]), None)
        print(
            f"H={H}: best {best['chunk']}/{best['num_warps']}/{best['r_cache']} "
            f"{best['train_ms']:.3f} ms train, {best['eval_ms']:.3f} ms eval"
            + (f"; default {ours['train_ms']:.3f} ms train" if ours else "; default not in grid"),
            flush=True,
        )
    triton_lstm.use_layout(None)
    if args.json:
        settings = {"variant": "V", "K": K, "T": T, "B": B, "repeats": REPEATS}
        Path(args.json).write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
