"""The gated-RNN family's CPU fast path, computing exactly what `cells.plain_recurrence`
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

from . import cells, compiled

# The tensors of struct FamilyProblem, in its order.
POINTERS = (
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


class _Problem(ctypes.Structure):
    """struct FamilyProblem of csrc/family.cpp."""

    _fields_ = [
        (name, ctypes.c_int64)
        for name in (
            "T",
            "K",
            "B",
            "N",
            "threads",
            "cell",
            "blocks",
            "saved",
            "states",
            "st",
            "sk",
            "sb",
        )  # fmt: skip
    ]
    _fields_ += [(name, ctypes.c_void_p) for name in POINTERS]
    _fields_ += [("extent", ctypes.c_int64 * len(POINTERS))]


_P, _I = ctypes.c_void_p, ctypes.c_int64
# Each returns NULL, or why it did nothing: the sizes given do not fit.
_SIGNATURES = {
    "family_forward": [ctypes.POINTER(_Problem)],
    "family_backward": [ctypes.POINTER(_Problem)],
    # a, b, h0, h (each with its number of elements), T, E, threads
    "scan_forward": [_P, _I] * 4 + [_I, _I, _I],
    # a, h0, h, g, da, db, dh0 (each with its number of elements), T, E, threads
    "scan_backward": [_P, _I] * 7 + [_I, _I, _I],
}


@functools.cache
def _kernels() -> dict[str, ctypes._CFuncPtr]:
    lib = compiled.library()
    kernels = {}
    for name, argtypes in _SIGNATURES.items():
        for suffix in compiled.SUFFIX.values():
            fn = getattr(lib, f"odyssey_{name}_{suffix}")
            fn.argtypes, fn.restype = argtypes, ctypes.c_char_p
            kernels[f"{name}_{suffix}"] = fn
    return kernels


def _call(name: str, dtype: torch.dtype, *args) -> None:
    """Run kernel `name` for `dtype`; it checks the sizes it is given before touching
    memory, and says why it refused."""
    error = _kernels()[f"{name}_{compiled.SUFFIX[dtype]}"](*args)
    if error is not None:
        raise RuntimeError(f"compiled {name}: {error.decode()}")


def _sized(*tensors: Tensor) -> list[int]:
    """Each tensor's address and how many elements it reaches, flat (the scan's arguments)."""
    return [v for t in tensors for v in (t.data_ptr(), compiled.extent(t))]


def recurrence(
    name: str,
    pre_x: Tensor,  # [T, K, B, nb N]  W x + b for every step
    w_hh: Tensor | None,  # [K, nr N, N]
    b_hh: Tensor | None,  # [K, nr N]
    states: tuple[Tensor, ...],  # each [K, B, N], h first
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Outputs h for every step [T, K, B, N] and the last states, for CPU tensors of float32
    or float64 where `compiled.runs` says so."""
    return cells.fast_recurrence(name, pre_x, w_hh, b_hh, states, _Recurrence, _Scan)


def _ptr(t: Tensor | None) -> int | None:
    return t.data_ptr() if t is not None else None


def _problem(name: str, strided: Tensor, N: int, **tensors: Tensor | None) -> _Problem:
    """The loop's sizes, `strided`'s [T, K, B, .] strides (the input forward, the output's
    gradient backward), the named buffers' addresses and how many elements each reaches."""
    T, K, B = strided.shape[:3]
    st, sk, sb = strided.stride()[:3]
    tensors["x"] = strided
    extents = (ctypes.c_int64 * len(POINTERS))(*(compiled.extent(tensors.get(n)) for n in POINTERS))
    cell = cells.CELLS[name]
    return _Problem(T=T, K=K, B=B, N=N, threads=torch.get_num_threads(), cell=cell.loop,
                    blocks=len(cell.blocks), saved=cell.saved, states=len(cell.states), st=st,
                    sk=sk, sb=sb, extent=extents,
                    **{key: _ptr(t) for key, t in tensors.items()})  # fmt: skip


# struct FamilyProblem's slots for the states after h (sLSTM's c, n, m): their buffers over
# all steps, the gradients of their last values, and of their first.
STATE_SLOTS = (("cs", "grad_c", "d_c0"), ("ns", "grad_n", "d_n0"), ("ms", "grad_m", "d_m0"))


class _Recurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name, pre_x, w_hh, b_hh, h0, *more):
        T, K, B, G = pre_x.shape
        N = h0.shape[-1]
        x = pre_x if pre_x.stride(-1) == 1 else pre_x.contiguous()
        w_hh = w_hh.contiguous()
        b_hh = b_hh.contiguous() if b_hh is not None else None
        rt = x.new_empty(K, N, G)
        acts = x.new_empty(K, T, B, cells.CELLS[name].saved * N)
        hs = x.new_empty(K, T + 1, B, N)
        hs[:, 0] = h0
        buffers = [x.new_empty(K, T + 1, B, N) for _ in more]  # the other states, step 0 first
        for buffer, s0 in zip(buffers, more):
            buffer[:, 0] = s0
        slots = {slot[0]: b for slot, b in zip(STATE_SLOTS, buffers)}
        problem = _problem(name, x, N, r=w_hh, rt=rt, c=b_hh, acts=acts, hs=hs, **slots)
        _call("family_forward", x.dtype, ctypes.byref(problem))
        ctx.name = name
        ctx.save_for_backward(rt, acts, hs, *buffers)
        return hs[:, 1:].transpose(0, 1), *(b[:, T].clone() for b in buffers)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, *grad_states):
        rt, acts, hs, *buffers = ctx.saved_tensors
        name = ctx.name
        K, N, G = rt.shape
        T, B = acts.shape[1], acts.shape[2]
        g = grad_out if grad_out.stride(-1) == 1 else grad_out.contiguous()
        d_pre = acts.new_empty(K, T, B, G)
        apart = cells.CELLS[name].gated_recurrent_sum
        d_rec = acts.new_empty(K, T, B, G) if apart else d_pre  # of R h' + c
        d_h0 = acts.new_empty(K, B, N)
        grads = [
            (s.contiguous() if s is not None else acts.new_zeros(K, B, N)) for s in grad_states
        ]
        d_more = [acts.new_empty(K, B, N) for _ in grads]
        slots = {}
        for (states, grad, first), buffer, g_last, d_first in zip(
            STATE_SLOTS, buffers, grads, d_more
        ):
            slots.update({states: buffer, grad: g_last, first: d_first})
        problem = _problem(name, g, N, rt=rt, acts=acts, hs=hs, d_pre=d_pre,
                           d_rec=d_rec if apart else None, d_h0=d_h0, **slots)  # fmt: skip
        _call("family_backward", g.dtype, ctypes.byref(problem))

        need = ctx.needs_input_grad
        d_w_hh, d_b_hh = cells.recurrent_grads(name, d_rec, acts, hs, need[2:4])
        return (
            None,
            d_pre.transpose(0, 1),
            d_w_hh,
            d_b_hh,
            d_h0 if need[4] else None,
            *(d if need[5 + k] else None for k, d in enumerate(d_more)),
        )


class _Scan(torch.autograd.Function):
    """h(t) = a(t) h(t-1) + b(t): a, b [T, K, B, N], h0 [K, B, N] -> h [T, K, B, N]."""

    @staticmethod
    def forward(ctx, a, b, h0):
        a, b, h0 = a.contiguous(), b.contiguous(), h0.contiguous()
        T = a.shape[0]
        h = torch.empty_like(a)
        threads = torch.get_num_threads()
        _call("scan_forward", a.dtype, *_sized(a, b, h0, h), T, h0.numel(), threads)
        ctx.save_for_backward(a, h0, h)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h):
        a, h0, h = ctx.saved_tensors
        g = grad_h.contiguous()
        da, db, dh0 = torch.empty_like(a), torch.empty_like(a), torch.empty_like(h0)
        _call("scan_backward", a.dtype, *_sized(a, h0, h, g, da, db, dh0), a.shape[0],
              h0.numel(), torch.get_num_threads())  # fmt: skip
        return da, db, dh0
