"""The recurrence of one direction, step by step with autograd: the plain path.

Every faster path computes exactly this and is tested against it.
Shapes: K trials, B sequences per trial, N hidden units (padded), G = len(spec.blocks) * N.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .spec import Spec


def recurrence(
    spec: Spec,
    pre_x: Tensor,  # [T, K, B, G]  W x + b for every step
    w_hh: Tensor,  # [K, G, N]     R, blocks stacked like pre_x
    peephole: Tensor | None,  # [K, len(gates) * N]
    w_gg: Tensor
    | None,  # [K, len(gates) * N, len(gates) * N]  rows: gate b at t, cols: gate a at t-1
    y0: Tensor,  # [K, B, N]
    c0: Tensor,  # [K, B, N]
) -> tuple[Tensor, Tensor]:
    """Block outputs y for every step [T, K, B, N] and the last cell state c_T [K, B, N]."""
    N = y0.shape[-1]
    gates = spec.gates
    peep = (
        {g: peephole[:, None, k * N : (k + 1) * N] for k, g in enumerate(gates)}
        if (peephole is not None)
        else {}
    )
    w_hh_t = w_hh.transpose(1, 2)
    w_gg_t = w_gg.transpose(1, 2) if w_gg is not None else None
    y, c = y0, c0
    prev_gates = y0.new_zeros(y0.shape[:-1] + (len(gates) * N,)) if w_gg is not None else None
    outputs = []
    for t in range(pre_x.shape[0]):
        pre = pre_x[t] + torch.bmm(y, w_hh_t)
        if w_gg_t is not None:
            gate_pre = pre[..., N:] + torch.bmm(prev_gates, w_gg_t)
            pre = torch.cat([pre[..., :N], gate_pre], dim=-1)
        block = dict(zip(spec.blocks, pre.split(N, dim=-1)))

        z = torch.tanh(block["z"]) if spec.input_activation else block["z"]
        act = {}
        if "i" in block:
            act["i"] = torch.sigmoid(block["i"] + peep["i"] * c if "i" in peep else block["i"])
        if "f" in block:
            act["f"] = torch.sigmoid(block["f"] + peep["f"] * c if "f" in peep else block["f"])
        i = act.get("i", 1.0)
        f = 1.0 - act["i"] if spec.coupled_input_forget else act.get("f", 1.0)
        c = z * i + c * f
        if "o" in block:
            act["o"] = torch.sigmoid(block["o"] + peep["o"] * c if "o" in peep else block["o"])
        h = torch.tanh(c) if spec.output_activation else c
        y = h * act["o"] if "o" in act else h
        if prev_gates is not None:
            prev_gates = torch.cat([act[g] for g in gates], dim=-1)
        outputs.append(y)
    return torch.stack(outputs), c
