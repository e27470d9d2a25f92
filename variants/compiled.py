"""The recurrence of one direction as compiled loops over time: the CPU fast path.

Computes exactly what `cell.recurrence` computes, with the same signature. The fused path
still pays Python and dispatch for each of its ops at every step, and at large K streams
all K recurrent matrices through memory at every step. Here each trial's whole time loop,
forward and backward, runs in C++ (csrc/recurrence.cpp): the threads of torch's own
OpenMP pool take trials (with fewer trials than threads, parts of a trial's batch), so
that a trial's R (160 kB at N = 100 in float32) stays in its core's cache for all T steps,
and a step is a vector-matrix product plus the gate arithmetic in vectorised loops. The
weight gradients are sums over all steps and stay batched GEMMs after the loop:

    dR = sum_t d_pre(t)^T y(t-1),    dR_gg = sum_{t>0} d_gates(t)^T gates(t-1).

The library (this recurrence and study/training/optim.py's update, csrc/*.cpp) is plain C++ behind a
C interface, loaded with ctypes, and does not depend on torch's C++ ABI: it builds on first
use with the system's C++ compiler in about 4 s of CPU on this project's 2-core machines (a
torch.utils.cpp_extension module that only includes torch/extension.h takes 35 s there) and
is cached under the user's cache folder, keyed by sources, compiler, flags and CPU. It uses
OpenMP, and so shares the runtime that torch has loaded. Where it cannot be built, the first
call says so in one line on stderr, layer.py uses the fused path and the optimizer torch ops.
Every pointer goes to the kernels with the number of elements it reaches, and they check
those against the sizes they are given before touching memory (`call` raises their reason).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .spec import Spec

# One library of every compiled CPU kernel: the recurrence, the family's (csrc/family.cpp,
# used by variants/family_compiled.py) and the optimizer's update (csrc/update.cpp, used by
# study/training/optim.py).
SOURCES = tuple(sorted((Path(__file__).with_name("csrc")).glob("*.cpp")))
HEADERS = tuple(sorted((Path(__file__).with_name("csrc")).glob("*.h")))  # in the cache key
# Code generation: ODYSSEY_CXXFLAGS replaces these (e.g. "-O3" for a build that runs on any
# x86-64 and rounds alike on every one of them); the flags a shared library needs stay.
TUNING = ("-O3", "-march=native")
FLAGS = ("-std=c++17", "-shared", "-fPIC")
OPENMP = "-fopenmp"  # where the compiler lacks it (Apple's clang), the kernels run on one thread
SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


# The tensors of struct Problem, in its order.
POINTERS = (
    "x",
    "r",
    "gg",
    "rt",
    "ggt",
    "peephole",
    "acts",
    "cells",
    "tanh_c",
    "ys",
    "grad_c",
    "d_pre",
    "d_peephole",
    "d_y0",
    "d_c0",
)


class _Problem(ctypes.Structure):
    """struct Problem of csrc/recurrence.cpp."""

    _fields_ = [
        (name, ctypes.c_int64)
        for name in (
            "T",
            "K",
            "B",
            "N",
            "threads",
            "gate_i",
            "gate_f",
            "gate_o",
            "input_activation",
            "output_activation",
            "coupled",
            "st",
            "sk",
            "sb",
        )
    ]
    _fields_ += [(name, ctypes.c_void_p) for name in POINTERS]
    _fields_ += [("extent", ctypes.c_int64 * len(POINTERS))]


def cache_dir() -> Path:
    """Where built libraries are kept ($XDG_CACHE_HOME/lstm-odyssey, else ~/.cache/...)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lstm-odyssey"


def _cpu() -> str:
    """What -march=native depends on: a library built for one CPU may not run on another."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    features = next((line for line in lines if line.startswith(("flags", "Features"))), "")
    return f"{platform.machine()} {platform.processor()} {features}"


def flags() -> list[str]:
    """The compiler's flags: $ODYSSEY_CXXFLAGS (else TUNING), then FLAGS."""
    tuning = os.environ.get("ODYSSEY_CXXFLAGS")
    return [*(shlex.split(tuning) if tuning is not None else TUNING), *FLAGS]


def build() -> Path:
    """The shared library, compiled unless the cache holds it (atomic: workers may race)."""
    compiler = shlex.split(os.environ.get("CXX") or "c++")
    parts = [s.read_bytes() for s in SOURCES + HEADERS] + [" ".join([*compiler, *flags()]).encode()]
    key = hashlib.sha256(b"\0".join([*parts, _cpu().encode()])).hexdigest()[:16]
    path = cache_dir() / f"kernels-{key}.so"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        command = [*compiler, *flags(), *map(str, SOURCES), "-o", str(tmp)]
        try:
            subprocess.run([*command, OPENMP], check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError:
            subprocess.run(command, check=True, capture_output=True, text=True)
        os.replace(tmp, path)
    return path


_P, _I = ctypes.c_void_p, ctypes.c_int64
# Each returns NULL, or why it did nothing: the sizes given do not fit (see `call`).
_SIGNATURES = {
    "forward": [ctypes.POINTER(_Problem)],
    "backward": [ctypes.POINTER(_Problem)],
    # p, v, momentum [K] (each with its number of elements), K, n, threads
    "lookahead": [_P, _I, _P, _I, _P, _I, _I, _I, _I],
    # p, v, g, rate [K], active [K] (each with its number of elements), K, n, threads
    "step": [_P, _I, _P, _I, _P, _I, _P, _I, _P, _I, _I, _I, _I],
}


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled CPU kernels (built on the first call), or None where they cannot be
    built, said once on stderr."""
    try:
        lib = ctypes.CDLL(str(build()))
    except subprocess.CalledProcessError as err:
        reason = next(
            (line for line in err.stderr.splitlines() if "error" in line), f"exit {err.returncode}"
        )
    except OSError as err:
        reason = str(err)
    else:
        for name, argtypes in _SIGNATURES.items():
            for suffix in SUFFIX.values():
                fn = getattr(lib, f"odyssey_{name}_{suffix}")
                fn.argtypes, fn.restype = argtypes, ctypes.c_char_p
        return lib
    print(
        f"variants: no compiled CPU kernels ({reason.strip()}); using the fused path",
        file=sys.stderr,
    )
    return None


def call(name: str, dtype: torch.dtype, *args) -> None:
    """Run kernel `name` (forward, backward, lookahead, step) for `dtype`; the kernels
    check the sizes they are given before touching memory, and say why they refused."""
    error = getattr(library(), f"odyssey_{name}_{SUFFIX[dtype]}")(*args)
    if error is not None:
        raise RuntimeError(f"compiled {name}: {error.decode()}")


def extent(t: Tensor | None) -> int:
    """How many elements of memory t's data pointer reaches: 1 + the largest offset."""
    if t is None or t.numel() == 0:
        return 0
    return 1 + sum((size - 1) * stride for size, stride in zip(t.shape, t.stride()))


def runs(device: torch.device | str, dtype: torch.dtype) -> bool:
    """Whether the compiled recurrence runs for such tensors (builds it on the first call)."""
    return torch.device(device).type == "cpu" and dtype in SUFFIX and library() is not None


def recurrence(
    spec: Spec,
    pre_x: Tensor,  # [T, K, B, G]  W x + b for every step
    w_hh: Tensor,  # [K, G, N]     R, blocks stacked like pre_x
    peephole: Tensor | None,  # [K, len(gates) * N]
    w_gg: Tensor | None,  # [K, len(gates) * N, len(gates) * N]  rows: gate b at t, cols: a at t-1
    y0: Tensor,  # [K, B, N]
    c0: Tensor,  # [K, B, N]
) -> tuple[Tensor, Tensor]:
    """Block outputs y for every step [T, K, B, N] and the last cell state c_T [K, B, N],
    for CPU tensors of float32 or float64 where `runs` says so."""
    return _Recurrence.apply(spec, pre_x, w_hh, peephole, w_gg, y0, c0)


def _ptr(t: Tensor | None) -> int | None:
    return t.data_ptr() if t is not None else None


def _problem(spec: Spec, T: int, K: int, B: int, N: int, x: Tensor, **tensors) -> _Problem:
    """The C struct: shapes, switches, x's strides over [T, K, B], the tensors' pointers and
    how many elements each reaches."""
    position = {g: spec.gates.index(g) if g in spec.gates else -1 for g in "ifo"}
    tensors["x"] = x
    extents = (ctypes.c_int64 * len(POINTERS))(*(extent(tensors.get(n)) for n in POINTERS))
    return _Problem(
        T=T,
        K=K,
        B=B,
        N=N,
        threads=torch.get_num_threads(),
        gate_i=position["i"],
        gate_f=position["f"],
        gate_o=position["o"],
        input_activation=spec.input_activation,
        output_activation=spec.output_activation,
        coupled=spec.coupled_input_forget,
        st=x.stride(0),
        sk=x.stride(1),
        sb=x.stride(2),
        extent=extents,
        **{name: _ptr(t) for name, t in tensors.items()},
    )


def _rows(t: Tensor | None) -> Tensor | None:
    """t with a contiguous last axis (what the C code indexes by strides over the others)."""
    return t if t is None or t.stride(-1) == 1 else t.contiguous()


class _Recurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spec, pre_x, w_hh, peephole, w_gg, y0, c0):
        T, K, B, G = pre_x.shape
        N = y0.shape[-1]
        x = _rows(pre_x)
        w_hh = w_hh.contiguous()
        w_gg = w_gg.contiguous() if w_gg is not None else None
        rt = x.new_empty(K, N, G)  # R^T and R_gg^T, written by the forward pass
        ggt = torch.empty_like(w_gg) if w_gg is not None else None
        peephole = peephole.contiguous() if peephole is not None else None
        acts = x.new_empty(K, T, B, G)  # activations: z, then the gates
        cells = x.new_empty(K, T + 1, B, N)  # c(0) .. c(T)
        ys = x.new_empty(K, T + 1, B, N)  # y(0) .. y(T)
        cells[:, 0], ys[:, 0] = c0, y0
        tanh_c = x.new_empty(K, T, B, N) if spec.output_activation else None
        problem = _problem(
            spec,
            T,
            K,
            B,
            N,
            x,
            r=w_hh,
            gg=w_gg,
            rt=rt,
            ggt=ggt,
            peephole=peephole,
            acts=acts,
            cells=cells,
            tanh_c=tanh_c,
            ys=ys,
        )
        call("forward", x.dtype, ctypes.byref(problem))
        ctx.spec = spec
        ctx.save_for_backward(acts, cells, tanh_c, ys, rt, peephole, ggt)
        return ys[:, 1:].transpose(0, 1), cells[:, T].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_c):
        acts, cells, tanh_c, ys, rt, peephole, ggt = ctx.saved_tensors
        spec: Spec = ctx.spec
        K, T, B, G = acts.shape
        N = cells.shape[-1]
        NG = G - N
        g = _rows(grad_out)
        d_pre = acts.new_empty(K, T, B, G)
        # One partial sum per part of a trial's batch (at most B parts; the others stay 0).
        d_peep = acts.new_zeros(K, B, NG) if peephole is not None else None
        d_y0, d_c0 = acts.new_empty(K, B, N), acts.new_empty(K, B, N)
        grad_c = grad_c.contiguous()
        problem = _problem(
            spec,
            T,
            K,
            B,
            N,
            g,
            rt=rt,
            ggt=ggt,
            peephole=peephole,
            acts=acts,
            cells=cells,
            tanh_c=tanh_c,
            grad_c=grad_c,
            d_pre=d_pre,
            d_peephole=d_peep,
            d_y0=d_y0,
            d_c0=d_c0,
        )
        call("backward", g.dtype, ctypes.byref(problem))

        need = ctx.needs_input_grad
        d_w_hh = d_w_gg = None
        if need[2]:
            y_prev = ys[:, :-1].reshape(K, T * B, N)
            d_w_hh = torch.bmm(d_pre.view(K, T * B, G).transpose(1, 2), y_prev)
        if need[4]:
            d_gates = d_pre[:, 1:, :, N:].reshape(K, (T - 1) * B, NG)
            gates = acts[:, :-1, :, N:].reshape(K, (T - 1) * B, NG)
            d_w_gg = torch.bmm(d_gates.transpose(1, 2), gates)
        return (
            None,
            d_pre.transpose(0, 1),
            d_w_hh,
            d_peep.sum(1) if need[3] else None,
            d_w_gg,
            d_y0 if need[5] else None,
            d_c0 if need[6] else None,
        )
