"""The recurrence of one direction with a hand-written backward through time: the fast path.

Computes exactly what `cell.recurrence` computes, with the same signature. Autograd would
record a graph of some twenty small ops per step; instead the forward pass writes every
step's activations into preallocated buffers with about ten in-place ops per step, and
the backward pass is written out by hand:

- every coefficient that does not depend on the incoming gradient (activation
  derivatives, peephole terms) is computed for all steps at once, before the loop;
- each step then costs one bmm for the recurrent projection (two with full gate
  recurrence) and about five elementwise ops;
- the weight gradients are one large bmm over all steps, after the loop.

Shapes: K trials, B sequences per trial, N hidden units; the blocks are z, then the gates
with weights of their own (those of i, f, o present, in that order), G = len(blocks) * N.
Gates i and f see c(t-1) through their peepholes and come right after z ("early" gates);
o sees c(t) and comes last.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .spec import Spec


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
    return _Recurrence.apply(spec, pre_x, w_hh, peephole, w_gg, y0, c0)


def _by_gate(spec: Spec, blocks: Tensor) -> dict[str, Tensor]:
    """The gate blocks of a [..., len(gates), N] tensor by name."""
    return {g: blocks[..., k, :] for k, g in enumerate(spec.gates)}


def _steps(tensor: Tensor | None, T: int) -> tuple[Tensor | None, ...]:
    """Per-step views of a [T, ...] tensor, made at once (indexing in the loop costs more)."""
    return tensor.unbind(0) if tensor is not None else (None,) * T


class _Recurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spec, pre_x, w_hh, peephole, w_gg, y0, c0):
        T, K, B, G = pre_x.shape
        N = y0.shape[-1]
        nb = len(spec.blocks)
        ne = len([g for g in spec.gates if g != "o"])
        acts = pre_x.new_empty(T, K, B, G)  # pre-activations, made activations in place
        cells = pre_x.new_empty(T + 1, K, B, N)  # c(0) .. c(T)
        cells[0] = c0
        out = pre_x.new_empty(T, K, B, N)
        tanh_c = pre_x.new_empty(T, K, B, N) if spec.output_activation else None
        r_t = w_hh.transpose(1, 2).contiguous()  # gemv reads R^T rows: 2x faster from cache
        gg_t = w_gg.transpose(1, 2) if w_gg is not None else None
        peep = peephole is not None
        peep_early = peephole[:, : ne * N].view(K, 1, ne, N) if peep and ne else None
        peep_o = peephole[:, -N:].view(K, 1, N) if peep and "o" in spec.gates else None

        blocks = acts.view(T, K, B, nb, N)
        gate = _by_gate(spec, blocks[:, :, :, 1:])
        per_step = zip(
            pre_x.unbind(0),
            acts.unbind(0),
            acts[..., N:].unbind(0),
            blocks[:, :, :, 1 : 1 + ne].unbind(0),
            blocks[:, :, :, 0].unbind(0),
            *(_steps(gate.get(g), T) for g in "ifo"),
            cells[:-1].unbind(0),
            cells[1:].unbind(0),
            _steps(tanh_c, T),
            out.unbind(0),
        )
        y, prev_gates = y0, None
        for pre_x_t, a, gates, early, z, i, f, o, c_prev, c, tanh_c_t, y_t in per_step:
            torch.baddbmm(pre_x_t, y, r_t, out=a)
            if gg_t is not None and prev_gates is not None:
                gates.baddbmm_(prev_gates, gg_t)
            prev_gates = gates
            if peep_early is not None:
                early.addcmul_(peep_early, c_prev[:, :, None])
            if peep_o is None:
                gates.sigmoid_()  # every gate at once
            else:
                early.sigmoid_()  # o waits for c(t)
            if spec.input_activation:
                z.tanh_()
            if spec.coupled_input_forget:  # c = i z + (1 - i) c_prev = c_prev + i (z - c_prev)
                torch.addcmul(c_prev, i, torch.sub(z, c_prev, out=c), out=c)
            else:
                torch.mul(z, i, out=c) if i is not None else c.copy_(z)
                c.addcmul_(c_prev, f) if f is not None else c.add_(c_prev)
            if peep_o is not None:
                o.addcmul_(peep_o, c).sigmoid_()
            h = torch.tanh(c, out=tanh_c_t) if tanh_c_t is not None else c
            y = torch.mul(h, o, out=y_t) if o is not None else y_t.copy_(h)

        ctx.spec = spec
        ctx.save_for_backward(acts, cells, tanh_c, out, y0, w_hh, peephole, w_gg)
        return out, cells[T].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_c):
        acts, cells, tanh_c, out, y0, w_hh, peephole, w_gg = ctx.saved_tensors
        spec: Spec = ctx.spec
        T, K, B, G = acts.shape
        N = cells.shape[-1]
        nb = len(spec.blocks)
        ne = len([g for g in spec.gates if g != "o"])
        nc = 1 + ne  # blocks whose gradient comes from dc(t): z and the early gates
        blocks = acts.view(T, K, B, nb, N)
        c_prev, c_cur = cells[:-1], cells[1:]
        h = tanh_c if tanh_c is not None else c_cur
        z = blocks[..., 0, :]
        gates = acts[..., N:]
        d_gates = (gates * (1 - gates)).view(T, K, B, nb - 1, N)  # sigmoid'
        gate, d_gate = _by_gate(spec, blocks[..., 1:, :]), _by_gate(spec, d_gates)
        i, f, o = gate.get("i"), gate.get("f"), gate.get("o")
        d_z = 1 - z * z if spec.input_activation else torch.ones_like(z)
        d_h = 1 - h * h if spec.output_activation else torch.ones_like(h)
        p = {}
        if peephole is not None:
            p = _by_gate(spec, peephole.view(K, 1, nb - 1, N))

        # dc(t) -> pre-activation gradients of z and of the early gates.
        from_c = acts.new_empty(T, K, B, nc, N)
        from_c[..., 0, :] = d_z * i if i is not None else d_z
        if i is not None:
            from_c[..., 1, :] = (z - c_prev if spec.coupled_input_forget else z) * d_gate["i"]
        if f is not None:
            from_c[..., ne, :] = c_prev * d_gate["f"]
        # dc(t) -> dc(t-1): through the forget gate and the early peepholes.
        if spec.coupled_input_forget:
            carry = 1 - i
        else:
            carry = f.clone() if f is not None else torch.ones_like(z)
        for k, g in enumerate(spec.gates[:ne]):
            if g in p:
                carry += p[g] * from_c[..., 1 + k, :]
        # dy(t) -> dc(t), and -> the output gate's pre-activation gradient.
        if o is not None:
            o_from_y = h * d_gate["o"]
            c_from_y = o * d_h + p["o"] * o_from_y if "o" in p else o * d_h
        else:
            o_from_y, c_from_y = None, d_h
        # Full gate recurrence: the gradient reaching the gate activations of step t from
        # step t+1 (`from_next`, one bmm per step) enters their pre-activations through
        # sigmoid', moves dc(t) through o's peephole and dc(t-1) through the early ones.
        fgr = w_gg is not None
        if fgr:
            from_next = acts.new_empty(K, B, nb - 1, N)
            from_next_flat = from_next.view(K, B, G - N)
            by_gate = _by_gate(spec, from_next)
            peep_terms = {g: (by_gate[g], (d_gate[g] * p[g]).unbind(0)) for g in p}
            o_term = peep_terms.pop("o", None)
            d_gates_steps = d_gates.unbind(0)

        d_pre = acts.new_empty(T, K, B, G)
        d_blocks = d_pre.view(T, K, B, nb, N)
        d_pre_gates = d_pre[..., N:].unbind(0)
        dc = grad_c.clone()
        dc_wide = dc.unsqueeze(2)
        dy_buffer = acts.new_empty(K, B, N)
        per_step = zip(
            range(T),
            grad_out.unbind(0),
            c_from_y.unbind(0),
            _steps(o_from_y, T),
            from_c.unbind(0),
            carry.unbind(0),
            d_blocks[:, :, :, :nc].unbind(0),
            d_blocks[:, :, :, -1].unbind(0),
            d_blocks[:, :, :, 1:].unbind(0),
        )
        for t, grad_y, c_from_y_t, o_from_y_t, from_c_t, carry_t, d_zif, d_o, d_g in reversed(
            list(per_step)
        ):
            last = t == T - 1
            if last:
                dy = grad_y
            else:
                dy = torch.baddbmm(grad_y, d_pre[t + 1], w_hh, out=dy_buffer)
                if fgr:
                    torch.bmm(d_pre_gates[t + 1], w_gg, out=from_next_flat)
            dc.addcmul_(dy, c_from_y_t)
            if fgr and not last and o_term is not None:
                dc.addcmul_(o_term[0], o_term[1][t])
            torch.mul(dc_wide, from_c_t, out=d_zif)
            if o_from_y_t is not None:
                torch.mul(dy, o_from_y_t, out=d_o)
            if fgr and not last:
                d_g.addcmul_(from_next, d_gates_steps[t])
            dc.mul_(carry_t)
            if fgr and not last:
                for from_gate, coef in peep_terms.values():
                    dc.addcmul_(from_gate, coef[t])

        need = ctx.needs_input_grad
        d_w_hh = d_peep = d_w_gg = d_y0 = None
        if need[2]:
            y_prev = torch.cat([y0[None], out[:-1]])
            d_w_hh = torch.einsum("tkbg,tkbn->kgn", d_pre, y_prev)
        if need[3]:
            parts = []
            if ne:
                early = d_blocks[:, :, :, 1 : 1 + ne] * c_prev[:, :, :, None]
                parts.append(early.sum((0, 2)).reshape(K, ne * N))
            if o is not None:
                parts.append((d_blocks[:, :, :, -1] * c_cur).sum((0, 2)))
            d_peep = torch.cat(parts, dim=-1)
        if need[4]:
            d_w_gg = torch.einsum("tkbg,tkbh->kgh", d_pre[1:, ..., N:], gates[:-1])
        if need[5]:
            d_y0 = torch.bmm(d_pre[0], w_hh)
        return None, d_pre, d_w_hh, d_peep, d_w_gg, d_y0, dc if need[6] else None
