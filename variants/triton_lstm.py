"""The recurrence of one direction as persistent Triton kernels: the GPU path.

Computes exactly what `cell.recurrence` computes, with the same signature, in one kernel
launch forward and one backward. The fused path (`fused.py`) issues some ten launches per
time step; on a GPU each launch costs microseconds while a step of a small LSTM is
nanoseconds of arithmetic, so there the time loop has to move inside the kernel.

Program layout. The K B sequences of a call are rows r = k B + b (trial k, sequence b); a
program takes `Layout.rows` of them and walks the whole time loop. In training B = 1 and a
program holds one row, so the grid is one program per trial (per direction: the layer calls
once per direction). Each row reads its own trial's weights, so rows of a program may
belong to different trials (evaluation batches). The hidden size N is padded to NP, a power
of two, inside the program (masked loads and stores: padding never reaches memory). Each
step computes, for every block b of z, i, f, o,

    a_b(t) = pre_x_b(t) + y(t-1) R_b^T  [+ gates(t-1) R_gg,b^T]    (one product per block)

as `chunk`-wide passes over the inputs n: each pass reads `chunk` consecutive floats of
every row of R (rows contiguous along n, so the sums run along memory, within a warp) and
of y(t-1), which the program wrote one step earlier and reads back (a barrier orders the
two). R is read from global memory every step: a trial's R (4 N^2 floats, 160 kB at
N = 100) stays in the SM's L1 while one program owns the SM, and in L2 otherwise (K = 256
such trials are 40 MB, an H100's L2 holds 50 MB); `Layout.r_cache` picks the load path
(".ca": through L1, ".cg": L2 only). The backward's products run over the other index of
R, so it reads a transposed copy R^T (and R_gg^T), made once per call.
The input projection W x + b of all steps is one batched GEMM before the kernel
(in `layer.py`).

Forward: saves the activations z, i, f, o (after their nonlinearities) and the cell states
c(0..T) of every step, [K, T + 1, B, *] with step 0 the initial state. The forward-only
path (no gradient needed, e.g. evaluation) saves nothing but the outputs; with full gate
recurrence it keeps the previous step's gates in a two-slot ring.

Backward through time, the same programs, t = T-1 .. 0, with the
gradient dc of c(t) carried in registers and d_pre(t+1) (the pre-activation gradients of
the step after) read back from memory:

    dy(t)   = dL/dy(t) + d_pre(t+1) R                    (one product over all G rows)
    d_o     = dy h o(1-o),  dc += dy o h' + d_o p_o       (h = tanh c or c)
    d_i     = dc z i(1-i)   (coupled: dc (z - c(t-1)) i(1-i)),  d_f = dc c(t-1) f(1-f)
    d_z     = dc i g'(a_z)
    dc(t-1) = dc f (coupled: 1 - i; no f gate: 1) + d_i p_i + d_f p_f

and with full gate recurrence each gate's activation gradient first gains
d_pre_gates(t+1) R_gg (its column block). The weight gradients are batched GEMMs over all
steps after the loop (torch): dR = sum_t d_pre(t)^T y(t-1), dR_gg = sum_t d_pre_gates(t)^T
gates(t-1), dp from d_pre and the saved cell states, dy(0) = d_pre(0) R.

Arithmetic is in the tensors' dtype (float32 in training; TF32 is never used: the products
are FMA reductions, not tl.dot). tanh goes through exp, since Triton has no portable tanh.
Under `TRITON_INTERPRET=1` the same kernels run on CPU tensors (the tests use this).

Measured options (H = 20, 50, 100, 200; `scripts/triton_options.py`): not yet measured on
a GPU. `default_layout` is chosen from ptxas's register counts alone (no spills).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.function import once_differentiable

from .spec import Spec


@dataclass(frozen=True)
class Layout:
    """How the programs walk a recurrence: the kernels' tuning knobs."""

    chunk: int  # inputs per pass of a matrix-vector product (a power of two)
    rows: int  # sequences of one trial per program (a power of two)
    num_warps: int
    r_cache: str  # ".ca": R through L1 (on chip while it fits), ".cg": from L2 only


_override: Layout | None = None


def use_layout(layout: Layout | None) -> None:
    """Run every later call with `layout` (None: `default_layout`); for measurements."""
    global _override
    _override = layout


def padded(n: int) -> int:
    """The power of two (at least 16) that a program holds n units or sequences in."""
    return max(16, triton.next_power_of_2(n))


def default_layout(N: int, B: int) -> Layout:
    """8 inputs per pass, a warp per 16 to 32 padded units, two rows a program only up to
    NP = 128: the kernels of every preset then compile for sm_90 with at most 20 bytes of
    register spills (ptxas, H = 20, 50, 100, 200, B = 1 and 8), where passes of 32 to 128
    inputs spilled up to 8 kB. A pass's sum leaves its result on every lane that summed, so
    wider passes multiply the registers of every per-unit tensor."""
    NP = padded(N)
    warps = 2 if NP <= 32 else 4 if NP <= 64 else 8 if NP <= 256 else 16
    rows = 2 if B > 1 and NP <= 128 else 1
    return Layout(chunk=8, rows=rows, num_warps=warps, r_cache=".ca")


def interpreted() -> bool:
    """Whether the kernels run in Triton's interpreter (TRITON_INTERPRET=1 at import)."""
    return not isinstance(_forward_kernel, triton.runtime.JITFunction)


def recurrence(
    spec: Spec,
    pre_x: Tensor,  # [T, K, B, G]  W x + b for every step
    w_hh: Tensor,  # [K, G, N]     R, blocks stacked like pre_x
    peephole: Tensor | None,  # [K, len(gates) * N]
    w_gg: Tensor | None,  # [K, len(gates) * N, len(gates) * N]  rows: gate b at t, cols: a at t-1
    y0: Tensor,  # [K, B, N]
    c0: Tensor,  # [K, B, N]
) -> tuple[Tensor, Tensor]:
    """Block outputs y for every step [T, K, B, N] and the last cell state c_T [K, B, N]."""
    if pre_x.device.type != "cuda" and not interpreted():
        raise ValueError(
            "backend 'triton' runs on CUDA tensors (on CPU only under TRITON_INTERPRET=1), "
            f"got a tensor on {pre_x.device}"
        )
    inputs = (pre_x, w_hh, peephole, w_gg, y0, c0)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
        return _Recurrence.apply(spec, *inputs)
    out, c_T, _ = _forward(spec, *inputs, save=False)
    return out, c_T


def _switches(spec: Spec, peephole: Tensor | None, w_gg: Tensor | None) -> dict:
    """The spec as the kernels' compile-time constants: block indices (-1: absent)."""
    blocks = spec.blocks
    return {
        "NB": len(blocks),
        "I_BLK": blocks.index("i") if "i" in blocks else -1,
        "F_BLK": blocks.index("f") if "f" in blocks else -1,
        "O_BLK": blocks.index("o") if "o" in blocks else -1,
        "COUPLED": spec.coupled_input_forget,
        "IN_ACT": spec.input_activation,
        "OUT_ACT": spec.output_activation,
        "PEEP": peephole is not None,
        "FGR": w_gg is not None,
    }


def _launch(N: int, B: int) -> tuple[Layout, dict]:
    layout = _override or default_layout(N, B)
    constants = {
        "ROWS": layout.rows,
        "NP": padded(N),
        "CHUNK": layout.chunk,
        "R_CACHE": layout.r_cache,
        "num_warps": layout.num_warps,
        "num_stages": 1,  # no software pipelining across the barriers of the time loop
    }
    return layout, constants


def _forward(spec, pre_x, w_hh, peephole, w_gg, y0, c0, save: bool):
    T, K, B, G = pre_x.shape
    N = y0.shape[-1]
    fgr = w_gg is not None
    ys = pre_x.new_empty(K, T + 1, B, N)  # y(t) at step t + 1; step 0 is y0
    ys[:, 0] = y0
    slots = T + 1 if save else 2
    acts = pre_x.new_empty(K, slots, B, G) if save or fgr else None
    if acts is not None:
        acts[:, 0] = 0  # the gates before the first step, for full gate recurrence
    cells = pre_x.new_empty(K, T + 1, B, N) if save else None
    if cells is not None:
        cells[:, 0] = c0
    c_T = pre_x.new_empty(K, B, N)
    layout, constants = _launch(N, B)
    _forward_kernel[(triton.cdiv(K * B, layout.rows),)](
        pre_x,
        *pre_x.stride(),
        c0,
        *c0.stride(),
        *_or_unused(pre_x, w_hh, peephole, w_gg),
        ys,
        *_or_unused(pre_x, acts, cells),
        c_T,
        T,
        K,
        B,
        N,
        slots,
        ACTS=acts is not None,
        SAVE=save,
        **_switches(spec, peephole, w_gg),
        **constants,
    )
    return ys[:, 1:].permute(1, 0, 2, 3), c_T, (ys, acts, cells)


def _transposed(w: Tensor | None) -> Tensor | None:
    return w.transpose(1, 2) if w is not None else None


def _or_unused(placeholder: Tensor, *tensors: Tensor | None) -> list[Tensor]:
    """Contiguous tensors for the kernels' pointers; a missing one (its switch is off, so
    the kernel never reads it) becomes `placeholder`."""
    return [placeholder if t is None else t.contiguous() for t in tensors]


class _Recurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spec, pre_x, w_hh, peephole, w_gg, y0, c0):
        out, c_T, (ys, acts, cells) = _forward(spec, pre_x, w_hh, peephole, w_gg, y0, c0, True)
        ctx.spec = spec
        ctx.save_for_backward(ys, acts, cells, w_hh, peephole, w_gg)
        return out, c_T

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_c):
        ys, acts, cells, w_hh, peephole, w_gg = ctx.saved_tensors
        spec: Spec = ctx.spec
        K, T1, B, N = ys.shape
        T, G = T1 - 1, w_hh.shape[1]
        d_pre = ys.new_empty(K, T + 1, B, G)
        d_pre[:, T] = 0  # nothing flows back from beyond the last step
        dc0 = ys.new_empty(K, B, N)
        layout, constants = _launch(N, B)
        _backward_kernel[(triton.cdiv(K * B, layout.rows),)](
            grad_out,
            *grad_out.stride(),
            grad_c,
            *grad_c.stride(),
            *_or_unused(w_hh, w_hh.transpose(1, 2), peephole, _transposed(w_gg), acts),
            cells,
            d_pre,
            dc0,
            T,
            K,
            B,
            N,
            **_switches(spec, peephole, w_gg),
            **constants,
        )
        d = d_pre[:, :T]
        need = ctx.needs_input_grad
        d_w_hh = d_peep = d_w_gg = d_y0 = None
        if need[2]:  # dR = sum over steps and sequences of d_pre(t)^T y(t-1)
            d_w_hh = torch.bmm(d.reshape(K, T * B, G).transpose(1, 2), ys[:, :T].reshape(K, -1, N))
        if need[3]:  # i and f see c(t-1), o sees c(t)
            parts = []
            for j, g in enumerate(spec.gates):
                c = cells[:, 1:] if g == "o" else cells[:, :T]
                parts.append((d[..., (j + 1) * N : (j + 2) * N] * c).sum((1, 2)))
            d_peep = torch.cat(parts, dim=-1)
        if need[4]:  # dR_gg = sum of d_pre_gates(t)^T gates(t-1); gates(-1) = 0 is slot 0
            NG = G - N
            d_gates = d[..., N:].reshape(K, T * B, NG)
            d_w_gg = torch.bmm(d_gates.transpose(1, 2), acts[:, :T, :, N:].reshape(K, -1, NG))
        if need[5]:
            d_y0 = torch.bmm(d_pre[:, 0], w_hh)
        d_pre_x = d.permute(1, 0, 2, 3)
        return None, d_pre_x, d_w_hh, d_peep, d_w_gg, d_y0, dc0 if need[6] else None


# --- kernels ----------------------------------------------------------------------------
# A program holds ROWS rows r = k B + b (trial k, sequence b) of NP columns; each row
# addresses its own trial's weights, so a program may span trials. Pointers to row starts
# are [ROWS] tensors.


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x):
    """2 sigmoid(2x) - 1: exp overflows to inf for very negative x, giving -1 exactly."""
    return 2.0 / (1.0 + tl.exp(-2.0 * x)) - 1.0


@triton.jit
def _project(
    acc, x, x_ok, n_in, m, m_stride, row0, cols, col_ok, CHUNK: tl.constexpr, CACHE: tl.constexpr
):
    """acc[r, j] + sum_{n < n_in} M_r[row0 + j, n] x_r[n], CHUNK inputs n per pass.

    x and m point to each row's vector and matrix; M's rows are m_stride apart and
    contiguous along n, so a pass reads CHUNK consecutive floats of every row of M and its
    sums run along memory (within a warp).
    """
    step = tl.arange(0, CHUNK)
    tile = cols[:, None] * m_stride + step[None, :]  # the same offsets for every block and pass
    m = m + row0 * m_stride
    for n0 in range(0, n_in, CHUNK):
        n = n0 + step
        ok = x_ok[:, None] & (n < n_in)[None, :]
        xv = tl.load(x[:, None] + n[None, :], mask=ok, other=0.0)
        mv = tl.load(
            (m + n0)[:, None, None] + tile[None, :, :],
            mask=col_ok[None, :, None] & ok[:, None, :],
            other=0.0,
            cache_modifier=CACHE,
        )
        acc += tl.sum(mv * xv[:, None, :], axis=2)
    return acc


@triton.jit
def _block_input(
    pre, pre_sg, y_prev, g_prev, w, gg, N, row_ok, cols, col_ok, mask,
    BLK: tl.constexpr, NB: tl.constexpr, FGR: tl.constexpr, CHUNK: tl.constexpr,
    R_CACHE: tl.constexpr,
):  # fmt: skip
    """Pre-activation of block BLK: pre_x + y(t-1) R_BLK^T [+ gates(t-1) R_gg,BLK^T]."""
    G = NB * N
    a = tl.load(pre + BLK * N * pre_sg, mask=mask, other=0.0)
    a = _project(a, y_prev, row_ok, N, w, N, BLK * N, cols, col_ok, CHUNK, R_CACHE)
    if FGR:
        NG = G - N
        a = _project(a, g_prev, row_ok, NG, gg, NG, (BLK - 1) * N, cols, col_ok, CHUNK, R_CACHE)
    return a


@triton.jit
def _forward_kernel(
    pre_ptr, pre_st, pre_sk, pre_sb, pre_sg,  # pre_x [T, K, B, G], any strides
    c0_ptr, c0_sk, c0_sb, c0_sn,  # c0 [K, B, N], any strides
    w_ptr,  # R [K, G, N]
    peep_ptr,  # [K, NG]
    gg_ptr,  # R_gg [K, NG, NG]
    ys_ptr,  # out: [K, T + 1, B, N], step 0 holds y0
    acts_ptr,  # out: [K, S, B, G], step t's activations at slot (t + 1) % S; slot 0 zero
    cells_ptr,  # out: [K, T + 1, B, N], step 0 holds c0
    ct_ptr,  # out: [K, B, N]
    T, K, B, N, S,
    NB: tl.constexpr, I_BLK: tl.constexpr, F_BLK: tl.constexpr, O_BLK: tl.constexpr,
    COUPLED: tl.constexpr, IN_ACT: tl.constexpr, OUT_ACT: tl.constexpr,
    PEEP: tl.constexpr, FGR: tl.constexpr, ACTS: tl.constexpr, SAVE: tl.constexpr,
    ROWS: tl.constexpr, NP: tl.constexpr, CHUNK: tl.constexpr, R_CACHE: tl.constexpr,
):  # fmt: skip
    r = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    row_ok = r < K * B
    k, b = (r // B).to(tl.int64), r % B
    cols = tl.arange(0, NP)
    col_ok = cols < N
    mask = row_ok[:, None] & col_ok[None, :]
    G = NB * N
    NG = G - N
    w = w_ptr + k * G * N
    gg = gg_ptr + k * NG * NG
    peep = (peep_ptr + k * NG)[:, None] + cols[None, :]
    if PEEP:
        if I_BLK >= 0:
            p_i = tl.load(peep + (I_BLK - 1) * N, mask=mask, other=0.0)
        if F_BLK >= 0:
            p_f = tl.load(peep + (F_BLK - 1) * N, mask=mask, other=0.0)
        if O_BLK >= 0:
            p_o = tl.load(peep + (O_BLK - 1) * N, mask=mask, other=0.0)
    c = tl.load(
        c0_ptr + (k * c0_sk + b * c0_sb)[:, None] + cols[None, :] * c0_sn, mask=mask, other=0.0
    )
    pre = pre_ptr + (k * pre_sk + b * pre_sb)[:, None] + cols[None, :] * pre_sg  # step 0
    ys = ys_ptr + (k * (T + 1) * B + b) * N  # each row's y0; y(t) is T steps on
    acts = acts_ptr + (k * S * B + b) * G
    cells = (cells_ptr + (k * (T + 1) * B + b) * N)[:, None] + cols[None, :]
    for t in range(T):
        y_prev = ys + t * B * N
        g_prev = acts + (t % S) * B * G + N
        z = _block_input(
            pre, pre_sg, y_prev, g_prev, w, gg, N, row_ok, cols, col_ok, mask,
            0, NB, False, CHUNK, R_CACHE,
        )  # fmt: skip
        if IN_ACT:
            z = _tanh(z)
        zi = z
        if I_BLK >= 0:
            a_i = _block_input(
                pre, pre_sg, y_prev, g_prev, w, gg, N, row_ok, cols, col_ok, mask,
                I_BLK, NB, FGR, CHUNK, R_CACHE,
            )  # fmt: skip
            if PEEP:
                a_i += p_i * c
            i = _sigmoid(a_i)
            zi = z * i
        if COUPLED:  # c = i z + (1 - i) c(t-1)
            c = c + i * (z - c)
        elif F_BLK >= 0:
            a_f = _block_input(
                pre, pre_sg, y_prev, g_prev, w, gg, N, row_ok, cols, col_ok, mask,
                F_BLK, NB, FGR, CHUNK, R_CACHE,
            )  # fmt: skip
            if PEEP:
                a_f += p_f * c
            f = _sigmoid(a_f)
            c = zi + f * c
        else:
            c = zi + c
        h = c
        if OUT_ACT:
            h = _tanh(c)
        y = h
        if O_BLK >= 0:
            a_o = _block_input(
                pre, pre_sg, y_prev, g_prev, w, gg, N, row_ok, cols, col_ok, mask,
                O_BLK, NB, FGR, CHUNK, R_CACHE,
            )  # fmt: skip
            if PEEP:
                a_o += p_o * c
            o = _sigmoid(a_o)
            y = h * o
        tl.store((y_prev + B * N)[:, None] + cols[None, :], y, mask=mask)
        if ACTS:
            act = (acts + ((t + 1) % S) * B * G)[:, None] + cols[None, :]
            tl.store(act, z, mask=mask)
            if I_BLK >= 0:
                tl.store(act + I_BLK * N, i, mask=mask)
            if F_BLK >= 0:
                tl.store(act + F_BLK * N, f, mask=mask)
            if O_BLK >= 0:
                tl.store(act + O_BLK * N, o, mask=mask)
        if SAVE:
            tl.store(cells + (t + 1) * B * N, c, mask=mask)
        pre += pre_st  # a pointer step: no 32-bit offset t * pre_st to overflow
        tl.debug_barrier()  # this step's y and gates are the next step's inputs
    tl.store(ct_ptr + (k * B + b)[:, None] * N + cols[None, :], c, mask=mask)


@triton.jit
def _backward_kernel(
    go_ptr, go_st, go_sk, go_sb, go_sn,  # dL/dout [T, K, B, N], any strides
    gc_ptr, gc_sk, gc_sb, gc_sn,  # dL/dc_T [K, B, N], any strides
    rt_ptr,  # R^T [K, N, G]
    peep_ptr,  # [K, NG]
    ggt_ptr,  # R_gg^T [K, NG, NG]
    acts_ptr,  # [K, T + 1, B, G] from the forward
    cells_ptr,  # [K, T + 1, B, N] from the forward
    dpre_ptr,  # out: [K, T + 1, B, G], step T zero on entry
    dc0_ptr,  # out: [K, B, N]
    T, K, B, N,
    NB: tl.constexpr, I_BLK: tl.constexpr, F_BLK: tl.constexpr, O_BLK: tl.constexpr,
    COUPLED: tl.constexpr, IN_ACT: tl.constexpr, OUT_ACT: tl.constexpr,
    PEEP: tl.constexpr, FGR: tl.constexpr,
    ROWS: tl.constexpr, NP: tl.constexpr, CHUNK: tl.constexpr, R_CACHE: tl.constexpr,
):  # fmt: skip
    r = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    row_ok = r < K * B
    k, b = (r // B).to(tl.int64), r % B
    cols = tl.arange(0, NP)
    col_ok = cols < N
    mask = row_ok[:, None] & col_ok[None, :]
    G = NB * N
    NG = G - N
    rt = rt_ptr + k * N * G
    ggt = ggt_ptr + k * NG * NG
    peep = (peep_ptr + k * NG)[:, None] + cols[None, :]
    if PEEP:
        if I_BLK >= 0:
            p_i = tl.load(peep + (I_BLK - 1) * N, mask=mask, other=0.0)
        if F_BLK >= 0:
            p_f = tl.load(peep + (F_BLK - 1) * N, mask=mask, other=0.0)
        if O_BLK >= 0:
            p_o = tl.load(peep + (O_BLK - 1) * N, mask=mask, other=0.0)
    dc = tl.load(
        gc_ptr + (k * gc_sk + b * gc_sb)[:, None] + cols[None, :] * gc_sn, mask=mask, other=0.0
    )
    go = go_ptr + (k * go_sk + b * go_sb)[:, None] + cols[None, :] * go_sn + (T - 1) * go_st
    dpre = dpre_ptr + (k * (T + 1) * B + b) * G
    acts = (acts_ptr + (k * (T + 1) * B + b) * G)[:, None] + cols[None, :]
    cells = (cells_ptr + (k * (T + 1) * B + b) * N)[:, None] + cols[None, :]
    for s in range(T):
        t = T - 1 - s
        d_next = dpre + (t + 1) * B * G  # d_pre(t + 1): zero at t = T - 1
        d_here = (dpre + t * B * G)[:, None] + cols[None, :]
        act = acts + (t + 1) * B * G  # step t's activations are at slot t + 1
        dy = tl.load(go, mask=mask, other=0.0)
        dy = _project(dy, d_next, row_ok, G, rt, G, 0, cols, col_ok, CHUNK, R_CACHE)
        z = tl.load(act, mask=mask, other=0.0)
        c = tl.load(cells + (t + 1) * B * N, mask=mask, other=0.0)
        c_prev = tl.load(cells + t * B * N, mask=mask, other=0.0)
        h = c
        if OUT_ACT:
            h = _tanh(c)
        dh = dy
        if O_BLK >= 0:
            o = tl.load(act + O_BLK * N, mask=mask, other=0.0)
            d_o = dy * h
            if FGR:
                d_o = _project(
                    d_o, d_next + N, row_ok, NG, ggt, NG, (O_BLK - 1) * N, cols, col_ok,
                    CHUNK, R_CACHE,
                )  # fmt: skip
            d_o = d_o * o * (1.0 - o)
            tl.store(d_here + O_BLK * N, d_o, mask=mask)
            dh = dy * o
        if OUT_ACT:
            dh = dh * (1.0 - h * h)
        dc += dh
        if O_BLK >= 0 and PEEP:
            dc += d_o * p_o
        # dc is dL/dc(t) in full; now the blocks that c(t) = z i + f c(t-1) came from.
        d_z = dc
        carry = dc  # dL/dc(t-1) through f (f = 1 without a forget gate)
        if I_BLK >= 0:
            i = tl.load(act + I_BLK * N, mask=mask, other=0.0)
            d_z = dc * i
            d_i = dc * z
            if COUPLED:  # f = 1 - i
                d_i = dc * (z - c_prev)
                carry = dc * (1.0 - i)
            if FGR:
                d_i = _project(
                    d_i, d_next + N, row_ok, NG, ggt, NG, (I_BLK - 1) * N, cols, col_ok,
                    CHUNK, R_CACHE,
                )  # fmt: skip
            d_i = d_i * i * (1.0 - i)
            tl.store(d_here + I_BLK * N, d_i, mask=mask)
        if F_BLK >= 0:
            f = tl.load(act + F_BLK * N, mask=mask, other=0.0)
            carry = dc * f
            d_f = dc * c_prev
            if FGR:
                d_f = _project(
                    d_f, d_next + N, row_ok, NG, ggt, NG, (F_BLK - 1) * N, cols, col_ok,
                    CHUNK, R_CACHE,
                )  # fmt: skip
            d_f = d_f * f * (1.0 - f)
            tl.store(d_here + F_BLK * N, d_f, mask=mask)
        if PEEP:  # i and f saw c(t-1) through their peepholes
            if I_BLK >= 0:
                carry += d_i * p_i
            if F_BLK >= 0:
                carry += d_f * p_f
        if IN_ACT:
            d_z = d_z * (1.0 - z * z)
        tl.store(d_here, d_z, mask=mask)
        dc = carry
        go -= go_st
        tl.debug_barrier()  # this step's d_pre is the previous step's input
    tl.store(dc0_ptr + (k * B + b)[:, None] * N + cols[None, :], dc, mask=mask)
