"""The gated-RNN family as persistent Triton kernels: its GPU path.

Computes exactly what `cells.plain_recurrence` computes, with its signature, in one
launch forward and one backward, laid out as the LSTM's kernels (triton_lstm.py, whose
helpers and program layout it shares): a program takes `Layout.rows` sequences r = k B + b
and walks the whole time loop; the hidden size is padded to a power of two inside the
program; each product with R reads R (forward) or R^T (backward) from memory in
`chunk`-wide passes, and the vector it multiplies (h(t-1), MGU's f h(t-1), the step's
pre-activation gradients) is written to memory by the program and read back after a barrier.

Per cell (equations in docs/family.md):

- GRU and sLSTM: forward one product over all blocks per step; backward
  dh(t) = dL/dh(t) + [dh(t+1) u(t+1) for GRU] + d_rec(t+1) R, with sLSTM's c, n, m
  gradients carried in registers (the stabiliser's too, as csrc/family.cpp).
- MGU: two products per step each way, R_f h(t-1) then R_h (f h(t-1)), through a scratch
  row.
- minGRU, minLSTM: the gates of all steps are torch ops; the kernel is the linear scan
  h(t) = a(t) h(t-1) + b(t) over blocks of elements, and its reverse.

The weight gradients are batched GEMMs over all steps after the kernel (torch), shared with
family_compiled.py in `cells.recurrent_grads`. Under TRITON_INTERPRET=1 the kernels run on
CPU tensors (the tests).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import cells
from .triton_lstm import _launch, _project, _sigmoid, _tanh, interpreted

SCAN_BLOCK = 256  # elements per program of the scan


def recurrence(
    name: str,
    pre_x: Tensor,  # [T, K, B, nb N]
    w_hh: Tensor | None,  # [K, nr N, N]
    b_hh: Tensor | None,  # [K, nr N]
    states: tuple[Tensor, ...],  # each [K, B, N], h first
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Outputs h for every step [T, K, B, N] and the last states."""
    if pre_x.device.type != "cuda" and not interpreted():
        raise ValueError(
            "the family's triton kernels run on CUDA tensors (on CPU only under "
            f"TRITON_INTERPRET=1), got a tensor on {pre_x.device}"
        )
    return cells.fast_recurrence(name, pre_x, w_hh, b_hh, states, _Recurrence, _Scan)


class _Recurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name, pre_x, w_hh, b_hh, h0, *more):
        T, K, B, G = pre_x.shape
        N = h0.shape[-1]
        cell = cells.CELLS[name]
        w_hh = w_hh.contiguous()
        bias = b_hh.contiguous() if b_hh is not None else w_hh
        hs = pre_x.new_empty(K, T + 1, B, N)
        hs[:, 0] = h0
        acts = pre_x.new_empty(K, T, B, cell.saved * N)
        # The other states (sLSTM's c, n, m) for every step ([K, T + 1, B, N]); for a cell
        # of one state, the first is the scratch row [K, 1, B, N] (MGU's f h(t-1)).
        buffers = [pre_x.new_empty(K, T + 1, B, N) for _ in more]
        for buffer, s0 in zip(buffers, more):
            buffer[:, 0] = s0
        cs, ns, ms = buffers or (pre_x.new_empty(K, 1, B, N), hs, hs)
        layout, constants = _launch(N, B)
        _forward_kernel[(triton.cdiv(K * B, layout.rows),)](
            pre_x, *pre_x.stride(), w_hh, bias, hs, acts, cs, ns, ms, T, K, B, N,
            len(cell.blocks), CELL=cell.loop, A=cell.saved, **constants,
        )  # fmt: skip
        ctx.name = name
        ctx.save_for_backward(w_hh, hs, acts, *buffers)
        return hs[:, 1:].transpose(0, 1), *(b[:, T].clone() for b in buffers)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, *grad_states):
        w_hh, hs, acts, *buffers = ctx.saved_tensors
        cell = cells.CELLS[ctx.name]
        K, G, N = w_hh.shape
        T, B = acts.shape[1], acts.shape[2]
        d_pre = hs.new_zeros(K, T + 1, B, G)  # step T stays zero: nothing beyond the end
        d_rec = hs.new_zeros(K, T + 1, B, G) if cell.gated_recurrent_sum else d_pre
        d_h0 = hs.new_empty(K, B, N)
        grads = [s if s is not None else hs.new_zeros(K, B, N) for s in grad_states]
        grads = [g.contiguous() for g in grads] or [d_h0] * 3
        d_more = [hs.new_empty(K, B, N) for _ in grad_states]
        cs, ns = buffers[:2] if buffers else (hs, hs)
        layout, constants = _launch(N, B)
        _backward_kernel[(triton.cdiv(K * B, layout.rows),)](
            grad_out, *grad_out.stride(), w_hh.transpose(1, 2).contiguous(), hs, acts,
            cs, ns, *grads, d_pre, d_rec, d_h0, *(d_more or [d_h0] * 3), T, K, B, N,
            len(cell.blocks), CELL=cell.loop, A=cell.saved, **constants,
        )  # fmt: skip
        need = ctx.needs_input_grad
        d_w_hh, d_b_hh = cells.recurrent_grads(ctx.name, d_rec[:, :T], acts, hs, need[2:4])
        return (
            None,
            d_pre[:, :T].transpose(0, 1),
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
        h = torch.empty_like(a)
        E = h0.numel()
        _scan_forward[(triton.cdiv(E, SCAN_BLOCK),)](a, b, h0, h, a.shape[0], E, SCAN_BLOCK)
        ctx.save_for_backward(a, h0, h)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h):
        a, h0, h = ctx.saved_tensors
        g = grad_h.contiguous()
        da, db, dh0 = torch.empty_like(a), torch.empty_like(a), torch.empty_like(h0)
        E = h0.numel()
        _scan_backward[(triton.cdiv(E, SCAN_BLOCK),)](
            a, h0, h, g, da, db, dh0, a.shape[0], E, SCAN_BLOCK
        )
        return da, db, dh0


# --- kernels: rows r = k B + b of NP columns, as triton_lstm's ----------------------------


@triton.jit
def _log_sigmoid(x):
    return tl.minimum(x, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(x)))


@triton.jit
def _forward_kernel(
    pre_ptr, pre_st, pre_sk, pre_sb, pre_sg,  # pre_x [T, K, B, G], any strides
    w_ptr,  # R [K, G, N]
    c_ptr,  # GRU's c [K, G]
    hs_ptr,  # [K, T + 1, B, N], step 0 holds h0
    acts_ptr,  # out: [K, T, B, A N]
    cs_ptr, ns_ptr, ms_ptr,  # sLSTM: [K, T + 1, B, N], step 0 the initial state; MGU: cs
    # is the scratch row [K, 1, B, N]
    T, K, B, N,
    NB,  # pre-activation blocks
    CELL: tl.constexpr, A: tl.constexpr,
    ROWS: tl.constexpr, NP: tl.constexpr, CHUNK: tl.constexpr, R_CACHE: tl.constexpr,
):  # fmt: skip
    r = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    row_ok = r < K * B
    k, b = (r // B).to(tl.int64), r % B
    cols = tl.arange(0, NP)
    col_ok = cols < N
    mask = row_ok[:, None] & col_ok[None, :]
    on = cols[None, :]
    G = NB * N
    w = w_ptr + k * G * N
    pre = pre_ptr + (k * pre_sk + b * pre_sb)[:, None] + on * pre_sg
    hs = hs_ptr + (k * (T + 1) * B + b) * N  # each row's h(0); h(t) is t B N further
    acts = (acts_ptr + (k * T * B + b) * A * N)[:, None] + on
    h = tl.load(hs[:, None] + on, mask=mask, other=0.0)
    if CELL == 0:
        bias = (c_ptr + k * G)[:, None] + on
        c_r = tl.load(bias, mask=mask, other=0.0)
        c_u = tl.load(bias + N, mask=mask, other=0.0)
        c_n = tl.load(bias + 2 * N, mask=mask, other=0.0)
    if CELL == 1:
        fh_row = cs_ptr + (k * B + b) * N
    if CELL == 2:
        states = (k * (T + 1) * B + b) * N
        cs = (cs_ptr + states)[:, None] + on
        ns = (ns_ptr + states)[:, None] + on
        ms = (ms_ptr + states)[:, None] + on
        c = tl.load(cs, mask=mask, other=0.0)
        n = tl.load(ns, mask=mask, other=0.0)
        m = tl.load(ms, mask=mask, other=0.0)
    for t in range(T):
        h_prev = hs + t * B * N
        step = acts + t * B * A * N
        if CELL == 0:
            a_r = _project(c_r, h_prev, row_ok, N, w, N, 0, cols, col_ok, CHUNK, R_CACHE)
            a_u = _project(c_u, h_prev, row_ok, N, w, N, N, cols, col_ok, CHUNK, R_CACHE)
            hn = _project(c_n, h_prev, row_ok, N, w, N, 2 * N, cols, col_ok, CHUNK, R_CACHE)
            rg = _sigmoid(a_r + tl.load(pre, mask=mask, other=0.0))
            u = _sigmoid(a_u + tl.load(pre + N * pre_sg, mask=mask, other=0.0))
            cand = _tanh(tl.load(pre + 2 * N * pre_sg, mask=mask, other=0.0) + rg * hn)
            h = cand + u * (h - cand)
            tl.store(step, rg, mask=mask)
            tl.store(step + N, u, mask=mask)
            tl.store(step + 2 * N, cand, mask=mask)
            tl.store(step + 3 * N, hn, mask=mask)
        elif CELL == 1:
            f = tl.load(pre, mask=mask, other=0.0)
            f = _sigmoid(_project(f, h_prev, row_ok, N, w, N, 0, cols, col_ok, CHUNK, R_CACHE))
            tl.store(fh_row[:, None] + on, f * h, mask=mask)
            tl.debug_barrier()  # f h(t-1) is the next product's input
            cand = tl.load(pre + N * pre_sg, mask=mask, other=0.0)
            cand = _project(cand, fh_row, row_ok, N, w, N, N, cols, col_ok, CHUNK, R_CACHE)
            cand = _tanh(cand)
            h = h + f * (cand - h)
            tl.store(step, f, mask=mask)
            tl.store(step + N, cand, mask=mask)
        else:
            a_z = tl.load(pre, mask=mask, other=0.0)
            a_i = tl.load(pre + N * pre_sg, mask=mask, other=0.0)
            a_f = tl.load(pre + 2 * N * pre_sg, mask=mask, other=0.0)
            a_o = tl.load(pre + 3 * N * pre_sg, mask=mask, other=0.0)
            a_z = _project(a_z, h_prev, row_ok, N, w, N, 0, cols, col_ok, CHUNK, R_CACHE)
            a_i = _project(a_i, h_prev, row_ok, N, w, N, N, cols, col_ok, CHUNK, R_CACHE)
            a_f = _project(a_f, h_prev, row_ok, N, w, N, 2 * N, cols, col_ok, CHUNK, R_CACHE)
            a_o = _project(a_o, h_prev, row_ok, N, w, N, 3 * N, cols, col_ok, CHUNK, R_CACHE)
            lf = _log_sigmoid(a_f) + m
            took_i = (n == 0.0) | (a_i >= lf)  # no state yet, or i~ wins
            m = tl.where(took_i, a_i, lf)
            ig = tl.exp(a_i - m)
            fg = tl.exp(tl.where(n == 0.0, float("-inf"), lf - m))  # no state: keep none
            z = _tanh(a_z)
            o = _sigmoid(a_o)
            c = fg * c + ig * z
            n = fg * n + ig
            h = o * c / n
            tl.store(step, z, mask=mask)
            tl.store(step + N, ig, mask=mask)
            tl.store(step + 2 * N, fg, mask=mask)
            tl.store(step + 3 * N, o, mask=mask)
            tl.store(step + 4 * N, _sigmoid(a_f), mask=mask)
            tl.store(step + 5 * N, took_i.to(h.dtype), mask=mask)
            tl.store(cs + (t + 1) * B * N, c, mask=mask)
            tl.store(ns + (t + 1) * B * N, n, mask=mask)
            tl.store(ms + (t + 1) * B * N, m, mask=mask)
        tl.store((h_prev + B * N)[:, None] + on, h, mask=mask)
        pre += pre_st
        tl.debug_barrier()  # this step's h is the next step's input


@triton.jit
def _backward_kernel(
    go_ptr, go_st, go_sk, go_sb, go_sn,  # dL/dh [T, K, B, N], any strides
    rt_ptr,  # R^T [K, N, G]
    hs_ptr, acts_ptr, cs_ptr, ns_ptr,  # from the forward
    gc_ptr, gn_ptr, gm_ptr,  # sLSTM: dL/dc_T, dL/dn_T, dL/dm_T [K, B, N]
    dpre_ptr,  # out: [K, T + 1, B, G], step T zero
    drec_ptr,  # out: GRU's gradient of R h + c, like dpre (else dpre itself)
    dh0_ptr, dc0_ptr, dn0_ptr, dm0_ptr,  # out: [K, B, N]
    T, K, B, N,
    NB,  # pre-activation blocks
    CELL: tl.constexpr, A: tl.constexpr,
    ROWS: tl.constexpr, NP: tl.constexpr, CHUNK: tl.constexpr, R_CACHE: tl.constexpr,
):  # fmt: skip
    r = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    row_ok = r < K * B
    k, b = (r // B).to(tl.int64), r % B
    cols = tl.arange(0, NP)
    col_ok = cols < N
    mask = row_ok[:, None] & col_ok[None, :]
    on = cols[None, :]
    G = NB * N
    rt = rt_ptr + k * N * G
    go = go_ptr + (k * go_sk + b * go_sb)[:, None] + on * go_sn + (T - 1) * go_st
    hs = (hs_ptr + (k * (T + 1) * B + b) * N)[:, None] + on
    acts = (acts_ptr + (k * T * B + b) * A * N)[:, None] + on
    dpre = dpre_ptr + (k * (T + 1) * B + b) * G
    drec = drec_ptr + (k * (T + 1) * B + b) * G
    row = (k * B + b) * N
    carry = tl.zeros([ROWS, NP], dtype=go_ptr.dtype.element_ty)
    if CELL == 2:
        states = (k * (T + 1) * B + b) * N
        cs = (cs_ptr + states)[:, None] + on
        ns = (ns_ptr + states)[:, None] + on
        dc = tl.load(gc_ptr + row[:, None] + on, mask=mask, other=0.0)
        dn = tl.load(gn_ptr + row[:, None] + on, mask=mask, other=0.0)
        dm = tl.load(gm_ptr + row[:, None] + on, mask=mask, other=0.0)
    for s in range(T):
        t = T - 1 - s
        step = acts + t * B * A * N
        d_here = (dpre + t * B * G)[:, None] + on
        r_next = drec + (t + 1) * B * G  # zero at t = T - 1
        dh = carry + tl.load(go, mask=mask, other=0.0)
        if CELL == 1:  # only R_f h(t-1) is read through the next step's d_f
            dh = _project(dh, r_next, row_ok, N, rt, G, 0, cols, col_ok, CHUNK, R_CACHE)
        else:
            dh = _project(dh, r_next, row_ok, G, rt, G, 0, cols, col_ok, CHUNK, R_CACHE)
        h_prev = tl.load(hs + t * B * N, mask=mask, other=0.0)
        if CELL == 0:
            rg = tl.load(step, mask=mask, other=0.0)
            u = tl.load(step + N, mask=mask, other=0.0)
            cand = tl.load(step + 2 * N, mask=mask, other=0.0)
            hn = tl.load(step + 3 * N, mask=mask, other=0.0)
            d_n = dh * (1.0 - u) * (1.0 - cand * cand)
            d_u = dh * (h_prev - cand) * u * (1.0 - u)
            d_r = d_n * hn * rg * (1.0 - rg)
            d_rec = (drec + t * B * G)[:, None] + on
            tl.store(d_here, d_r, mask=mask)
            tl.store(d_here + N, d_u, mask=mask)
            tl.store(d_here + 2 * N, d_n, mask=mask)
            tl.store(d_rec, d_r, mask=mask)
            tl.store(d_rec + N, d_u, mask=mask)
            tl.store(d_rec + 2 * N, d_n * rg, mask=mask)
            carry = dh * u
        elif CELL == 1:
            f = tl.load(step, mask=mask, other=0.0)
            cand = tl.load(step + N, mask=mask, other=0.0)
            d_cand = dh * f * (1.0 - cand * cand)
            tl.store(d_here + N, d_cand, mask=mask)
            tl.debug_barrier()  # d_candidate is the next product's input
            zero = tl.zeros([ROWS, NP], dtype=go_ptr.dtype.element_ty)
            d_fh = _project(
                zero, dpre + t * B * G + N, row_ok, N, rt + N, G, 0, cols, col_ok, CHUNK,
                R_CACHE,
            )  # fmt: skip
            d_f = (dh * (cand - h_prev) + d_fh * h_prev) * f * (1.0 - f)
            tl.store(d_here, d_f, mask=mask)
            carry = dh * (1.0 - f) + d_fh * f
        else:
            z = tl.load(step, mask=mask, other=0.0)
            ig = tl.load(step + N, mask=mask, other=0.0)
            fg = tl.load(step + 2 * N, mask=mask, other=0.0)
            o = tl.load(step + 3 * N, mask=mask, other=0.0)
            sf = tl.load(step + 4 * N, mask=mask, other=0.0)
            took_i = tl.load(step + 5 * N, mask=mask, other=0.0) != 0.0
            c = tl.load(cs + (t + 1) * B * N, mask=mask, other=0.0)
            c_prev = tl.load(cs + t * B * N, mask=mask, other=0.0)
            n = tl.load(ns + (t + 1) * B * N, mask=mask, other=1.0)
            n_prev = tl.load(ns + t * B * N, mask=mask, other=0.0)
            h_tilde = c / n
            d_o = dh * h_tilde * o * (1.0 - o)
            dct = dc + dh * o / n
            dnt = dn - dh * o * h_tilde / n
            e_i = (dct * z + dnt) * ig
            e_f = (dct * c_prev + dnt * n_prev) * fg
            d_m = dm - e_i - e_f
            d_i = e_i + tl.where(took_i, d_m, 0.0)
            d_lf = e_f + tl.where(took_i, 0.0, d_m)
            tl.store(d_here, dct * ig * (1.0 - z * z), mask=mask)
            tl.store(d_here + N, d_i, mask=mask)
            tl.store(d_here + 2 * N, d_lf * (1.0 - sf), mask=mask)
            tl.store(d_here + 3 * N, d_o, mask=mask)
            dc = dct * fg
            dn = dnt * fg
            dm = d_lf
            carry = tl.zeros([ROWS, NP], dtype=go_ptr.dtype.element_ty)
        go -= go_st
        tl.debug_barrier()  # this step's gradients are the previous step's input
    # dh(0) from step 0's pre-activation gradients, and the elementwise carry
    dh = _project(carry, drec, row_ok, NB * N if CELL != 1 else N, rt, G, 0, cols, col_ok,
                  CHUNK, R_CACHE)  # fmt: skip
    tl.store(dh0_ptr + row[:, None] + on, dh, mask=mask)
    if CELL == 2:
        tl.store(dc0_ptr + row[:, None] + on, dc, mask=mask)
        tl.store(dn0_ptr + row[:, None] + on, dn, mask=mask)
        tl.store(dm0_ptr + row[:, None] + on, dm, mask=mask)


@triton.jit
def _scan_forward(a_ptr, b_ptr, h0_ptr, h_ptr, T, E, BLOCK: tl.constexpr):
    e = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = e < E
    h = tl.load(h0_ptr + e, mask=ok, other=0.0)
    for t in range(T):
        at = t * E + e
        h = tl.load(a_ptr + at, mask=ok, other=0.0) * h + tl.load(b_ptr + at, mask=ok, other=0.0)
        tl.store(h_ptr + at, h, mask=ok)


@triton.jit
def _scan_backward(a_ptr, h0_ptr, h_ptr, g_ptr, da_ptr, db_ptr, dh0_ptr, T, E,
                   BLOCK: tl.constexpr):  # fmt: skip
    e = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = e < E
    carry = tl.zeros([BLOCK], dtype=g_ptr.dtype.element_ty)
    for s in range(T):
        t = T - 1 - s
        at = t * E + e
        d = tl.load(g_ptr + at, mask=ok, other=0.0) + carry
        if t > 0:
            prev = tl.load(h_ptr + at - E, mask=ok, other=0.0)
        else:
            prev = tl.load(h0_ptr + e, mask=ok, other=0.0)
        tl.store(db_ptr + at, d, mask=ok)
        tl.store(da_ptr + at, d * prev, mask=ok)
        carry = d * tl.load(a_ptr + at, mask=ok, other=0.0)
    tl.store(dh0_ptr + e, carry, mask=ok)
