"""The gated-RNN family's CPU fast path, computing exactly what `family.plain_recurrence`
computes, with its signature.

GRU, MGU and sLSTM: each trial's whole time loop, forward and backward, in C++
(csrc/family.cpp, in the library `compiled` builds), as the LSTM's compiled path; the weight
gradients are sums over all steps, batched GEMMs after the loop. minGRU and minLSTM have no
recurrent weights: their gates are computed for all steps at once with torch ops, leaving
the linear recurrence h(t) = a(t) h(t-1) + b(t), one compiled pass each way over memory.
"""

from __future__ import annotations

import ctypes
import functools

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import compiled, family


class _Problem(ctypes.Structure):
    """struct FamilyProblem of csrc/family.cpp."""

    _fields_ = [
        (name, ctypes.c_int64) for name in ("T", "K", "B", "N", "threads", "cell", "st", "sk", "sb")
    ] + [
        (name, ctypes.c_void_p)
        for name in (
            "x",
            "r",
            "rt",
            "c",
            "acts",
            "hs",
            "cs",
            "ns",
            "ms",
            "grad_c",
            "grad_n",
            "grad_m",
            "d_pre",
            "d_rec",
            "d_h0",
            "d_c0",
            "d_n0",
            "d_m0",
        )
    ]


_P, _I = ctypes.c_void_p, ctypes.c_int64
_SIGNATURES = {
    "family_forward": [ctypes.POINTER(_Problem)],
    "family_backward": [ctypes.POINTER(_Problem)],
    "scan_forward": [_P, _P, _P, _P, _I, _I, _I],  # a, b, h0, h, T, E, threads
    "scan_backward": [_P, _P, _P, _P, _P, _P, _P, _I, _I, _I],  # a, h0, h, g, da, db, dh0, ...
}


@functools.cache
def _kernels() -> dict[str, ctypes._CFuncPtr]:
    lib = compiled.library()
    kernels = {}
    for name, argtypes in _SIGNATURES.items():
        for suffix in compiled.SUFFIX.values():
            fn = getattr(lib, f"odyssey_{name}_{suffix}")
            fn.argtypes, fn.restype = argtypes, None
            kernels[f"{name}_{suffix}"] = fn
    return kernels


def _call(name: str, dtype: torch.dtype, *args) -> None:
    _kernels()[f"{name}_{compiled.SUFFIX[dtype]}"](*args)


def recurrence(
    name: str,
    pre_x: Tensor,  # [T, K, B, nb N]  W x + b for every step
    w_hh: Tensor | None,  # [K, nr N, N]
    b_hh: Tensor | None,  # [K, nr N]
    states: tuple[Tensor, ...],  # each [K, B, N], h first
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Outputs h for every step [T, K, B, N] and the last states, for CPU tensors of float32
    or float64 where `compiled.runs` says so."""
    if pre_x.shape[0] == 0:
        raise ValueError("the compiled recurrence needs at least one step (T = 0)")
    return family.fast_recurrence(name, pre_x, w_hh, b_hh, states, _Recurrence, _Scan)


def _ptr(t: Tensor | None) -> int | None:
    return t.data_ptr() if t is not None else None


def _problem(name: str, strided: Tensor, N: int, **tensors: Tensor | None) -> _Problem:
    """The loop's sizes, `strided`'s [T, K, B, .] strides (the input forward, the output's
    gradient backward) and the named buffers' addresses."""
    T, K, B = strided.shape[:3]
    st, sk, sb = strided.stride()[:3]
    threads, cell = torch.get_num_threads(), family.LOOP_CODE[name]
    pointers = {key: _ptr(t) for key, t in tensors.items()}
    return _Problem(T=T, K=K, B=B, N=N, threads=threads, cell=cell, st=st, sk=sk, sb=sb,
                    x=strided.data_ptr(), **pointers)  # fmt: skip


class _Recurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name, pre_x, w_hh, b_hh, h0, *more):
        T, K, B, G = pre_x.shape
        N = h0.shape[-1]
        x = pre_x if pre_x.stride(-1) == 1 else pre_x.contiguous()
        w_hh = w_hh.contiguous()
        b_hh = b_hh.contiguous() if b_hh is not None else None
        rt = x.new_empty(K, N, G)
        acts = x.new_empty(K, T, B, family.SAVED[name] * N)
        hs = x.new_empty(K, T + 1, B, N)
        hs[:, 0] = h0
        cs = ns = ms = None
        if name == "slstm":
            cs, ns, ms = (x.new_empty(K, T + 1, B, N) for _ in range(3))
            for buffer, s0 in zip((cs, ns, ms), more):
                buffer[:, 0] = s0
        problem = _problem(name, x, N, r=w_hh, rt=rt, c=b_hh, acts=acts, hs=hs, cs=cs, ns=ns,
                           ms=ms)  # fmt: skip
        _call("family_forward", x.dtype, ctypes.byref(problem))
        ctx.name = name
        ctx.save_for_backward(rt, acts, hs, cs, ns)
        out = hs[:, 1:].transpose(0, 1)
        if name == "slstm":
            return out, cs[:, T].clone(), ns[:, T].clone(), ms[:, T].clone()
        return (out,)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, *grad_states):
        rt, acts, hs, cs, ns = ctx.saved_tensors
        name = ctx.name
        K, N, G = rt.shape
        T, B = acts.shape[1], acts.shape[2]
        g = grad_out if grad_out.stride(-1) == 1 else grad_out.contiguous()
        d_pre = acts.new_empty(K, T, B, G)
        d_rec = acts.new_empty(K, T, B, G) if name == "gru" else d_pre  # of R h' + c
        d_h0 = acts.new_empty(K, B, N)
        slstm = name == "slstm"
        grads = [
            (s.contiguous() if s is not None else acts.new_zeros(K, B, N)) for s in grad_states
        ]
        d_more = [acts.new_empty(K, B, N) for _ in grads]
        problem = _problem(name, g, N, rt=rt, acts=acts, hs=hs, cs=cs, ns=ns, d_pre=d_pre,
                           d_rec=d_rec if name == "gru" else None, d_h0=d_h0)  # fmt: skip
        if slstm:
            problem.grad_c, problem.grad_n, problem.grad_m = (t.data_ptr() for t in grads)
            problem.d_c0, problem.d_n0, problem.d_m0 = (t.data_ptr() for t in d_more)
        _call("family_backward", g.dtype, ctypes.byref(problem))

        need = ctx.needs_input_grad
        d_w_hh, d_b_hh = family.recurrent_grads(name, d_rec, acts, hs, need[2:4])
        return (
            None,
            d_pre.transpose(0, 1),
            d_w_hh,
            d_b_hh,
            d_h0 if need[4] else None,
            *(d if need[5 + k] else None for k, d in enumerate(d_more if slstm else [])),
        )


class _Scan(torch.autograd.Function):
    """h(t) = a(t) h(t-1) + b(t): a, b [T, K, B, N], h0 [K, B, N] -> h [T, K, B, N]."""

    @staticmethod
    def forward(ctx, a, b, h0):
        a, b, h0 = a.contiguous(), b.contiguous(), h0.contiguous()
        T = a.shape[0]
        h = torch.empty_like(a)
        threads = torch.get_num_threads()
        _call("scan_forward", a.dtype, a.data_ptr(), b.data_ptr(), h0.data_ptr(), h.data_ptr(),
              T, h0.numel(), threads)  # fmt: skip
        ctx.save_for_backward(a, h0, h)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h):
        a, h0, h = ctx.saved_tensors
        g = grad_h.contiguous()
        da, db, dh0 = torch.empty_like(a), torch.empty_like(a), torch.empty_like(h0)
        _call("scan_backward", a.dtype, a.data_ptr(), h0.data_ptr(), h.data_ptr(), g.data_ptr(),
              da.data_ptr(), db.data_ptr(), dh0.data_ptr(), a.shape[0], h0.numel(),
              torch.get_num_threads())  # fmt: skip
        return da, db, dh0
