"""The gated-RNN family's cells as data: one registry row each, with its plain step, below
the layers, the dispatcher and the backends (which all read it).

A cell is a few pre-activation blocks b computed from the input, W_b x + b_b (for all steps
at once), plus, for cells whose gates see the past, R_b h(t-1). Adding a cell: a row of
`CELLS` with its plain step here; for a cell with a time loop, its pointwise step in
csrc/family.cpp and triton_family.py under a new `loop` code; for a cell whose gates see
only the input, its `linear` form instead (no kernel). Equations: docs/family.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Cell:
    """Everything the layer, the dispatcher and the fast paths need to know of a cell."""

    variant: str  # the variant's name, as `--variants` takes it (a preset of variants/spec.py)
    blocks: tuple[str, ...]  # W_b [N, M] and b_b [N] for each, in this order
    recurrent: tuple[str, ...]  # R_b [N, N] for each, in this order
    recurrent_bias: bool  # c_b [N] beside each R_b (torch.nn.GRU's bias_hh)
    states: tuple[str, ...]  # h first: the output
    # --forget-bias f sets each named bias to coefficient * f: the gate that keeps the
    # state, signed so that f > 0 keeps more (docs/family.md).
    forget_bias: tuple[tuple[str, float], ...]
    title: str  # what the cell is, with its source, in a few words
    # The plain path's step: (W x + b [K, B, nb N], R^T or None, c or None, *states) -> states
    step: Callable[..., tuple[Tensor, ...]]
    # The fast paths: a cell with a time loop names its pointwise step in csrc/family.cpp and
    # triton_family.py (`loop`) and how many activations per unit and step it saves for the
    # backward (`saved`); a cell whose gates see only the input is instead its `linear` form
    # h(t) = a(t) h(t-1) + b(t), (a, b) from W x + b for all steps, run as a scan.
    loop: int | None = None
    saved: int = 0
    linear: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None
    # The step multiplies a block's R h' + c by a gate (GRU's r), so that the gradient of
    # R h' + c is not that of W x + b: the loops write it apart.
    gated_recurrent_sum: bool = False
    # What each R_b multiplies where not h(t-1) alone: (h(t-1), the loop's saved activations)
    # -> one tensor per recurrent block (MGU's R_h multiplies f h(t-1)).
    recurrent_inputs: Callable[[Tensor, Tensor], tuple[Tensor, ...]] | None = None

    @property
    def fast(self) -> bool:
        """Whether the compiled and Triton paths run it (else its plain step runs)."""
        return self.loop is not None or self.linear is not None


# --- the plain steps: one step at a time with autograd; every other path is tested against them


def _gru(px: Tensor, rt: Tensor, c: Tensor, h: Tensor) -> tuple[Tensor]:
    xr, xu, xn = px.chunk(3, -1)
    hr, hu, hn = torch.baddbmm(c[:, None], h, rt).chunk(3, -1)
    r, u = torch.sigmoid(xr + hr), torch.sigmoid(xu + hu)
    n = torch.tanh(xn + r * hn)
    return ((1 - u) * n + u * h,)


def _mgu(px: Tensor, rt: Tensor, c: None, h: Tensor) -> tuple[Tensor]:
    xf, xh = px.chunk(2, -1)
    rt_f, rt_h = rt.chunk(2, -1)
    f = torch.sigmoid(xf + torch.bmm(h, rt_f))
    candidate = torch.tanh(xh + torch.bmm(f * h, rt_h))
    return ((1 - f) * h + f * candidate,)


def _mingru(px: Tensor, rt: None, c: None, h: Tensor) -> tuple[Tensor]:
    xu, xh = px.chunk(2, -1)
    u = torch.sigmoid(xu)
    return ((1 - u) * h + u * xh,)


def _slstm(
    px: Tensor, rt: Tensor, b: None, h: Tensor, c: Tensor, n: Tensor, m: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    z, i, f, o = (px + torch.bmm(h, rt)).chunk(4, -1)
    log_f = F.logsigmoid(f)
    # A unit with no state yet (n = 0: the zero initial state) starts its stabiliser at i,
    # as the authors' code does at the first step, and keeps nothing (f = 0, where their
    # exp(log f + 0 - i) overflows to inf, and inf * 0 = NaN, for i below about -700).
    empty = n == 0
    m_new = torch.where(empty, i, torch.maximum(log_f + m, i))
    i_gate = torch.exp(i - m_new)
    f_gate = torch.exp(torch.where(empty, -torch.inf, log_f + m - m_new))
    c = f_gate * c + i_gate * torch.tanh(z)
    n = f_gate * n + i_gate
    return torch.sigmoid(o) * c / n, c, n, m_new


def minlstm_gates(xf: Tensor, xi: Tensor) -> tuple[Tensor, Tensor]:
    """minLSTM's normalised gates f / (f + i) and i / (f + i), f = σ(xf), i = σ(xi), in log
    space as its authors' parallel form: with d = log i - log f,

        f / (f + i) = 1 / (1 + e^d) = σ(-d),    i / (f + i) = σ(d),

    finite for any finite input, where f + i underflows to 0 (0 / 0) for xf, xi below about
    -100 in float32 (-745 in float64)."""
    d = F.logsigmoid(xi) - F.logsigmoid(xf)
    return torch.sigmoid(-d), torch.sigmoid(d)


def _minlstm(px: Tensor, rt: None, c: None, h: Tensor) -> tuple[Tensor]:
    xf, xi, xh = px.chunk(3, -1)
    f, i = minlstm_gates(xf, xi)
    return (f * h + i * xh,)


def _mingru_linear(pre_x: Tensor) -> tuple[Tensor, Tensor]:
    xu, candidate = pre_x.chunk(2, -1)
    u = torch.sigmoid(xu)
    return 1 - u, u * candidate


def _minlstm_linear(pre_x: Tensor) -> tuple[Tensor, Tensor]:
    xf, xi, candidate = pre_x.chunk(3, -1)
    f, i = minlstm_gates(xf, xi)
    return f, i * candidate


def _mgu_recurrent_inputs(h_prev: Tensor, acts: Tensor) -> tuple[Tensor, Tensor]:
    """R_f multiplies h(t-1), R_h f h(t-1); f is the first saved activation."""
    return h_prev, acts[..., : h_prev.shape[-1]] * h_prev


CELLS: dict[str, Cell] = {
    "gru": Cell(
        "GRU",
        ("r", "u", "n"),
        ("r", "u", "n"),
        True,
        ("h",),
        (("b_u", 1.0), ("c_u", 0.0)),
        "GRU as torch.nn.GRU (Cho et al. 2014)",
        _gru,
        loop=0,
        saved=4,
        gated_recurrent_sum=True,
    ),
    "mgu": Cell(
        "MGU",
        ("f", "h"),
        ("f", "h"),
        False,
        ("h",),
        (("b_f", -1.0),),
        "one gate (Zhou et al. 2016)",
        _mgu,
        loop=1,
        saved=2,
        recurrent_inputs=_mgu_recurrent_inputs,
    ),
    "mingru": Cell(
        "minGRU",
        ("u", "h"),
        (),
        False,
        ("h",),
        (("b_u", -1.0),),
        "GRU, gates from x only (Feng et al. 2024)",
        _mingru,
        linear=_mingru_linear,
    ),
    "minlstm": Cell(
        "minLSTM",
        ("f", "i", "h"),
        (),
        False,
        ("h",),
        (("b_f", 1.0),),
        "LSTM, gates from x only (Feng et al. 2024)",
        _minlstm,
        linear=_minlstm_linear,
    ),
    "slstm": Cell(
        "sLSTM",
        ("z", "i", "f", "o"),
        ("z", "i", "f", "o"),
        False,
        ("h", "c", "n", "m"),
        (("b_f", 1.0),),
        "exponential gating (Beck et al. 2024)",
        _slstm,
        loop=2,
        saved=6,
    ),
}


def plain_recurrence(
    name: str,
    pre_x: Tensor,  # [T, K, B, nb N]  W x + b for every step
    w_hh: Tensor | None,  # [K, nr N, N]  R, blocks stacked like pre_x
    b_hh: Tensor | None,  # [K, nr N]     c (GRU)
    states: tuple[Tensor, ...],  # each [K, B, N], h first
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Outputs h for every step [T, K, B, N] and the last states."""
    step = CELLS[name].step
    rt = w_hh.transpose(1, 2) if w_hh is not None else None
    outputs = []
    for px in pre_x:
        states = step(px, rt, b_hh, *states)
        outputs.append(states[0])
    return torch.stack(outputs), states


# --- what the two fast paths (family_compiled.py, triton_family.py) share


def fast_recurrence(
    name: str,
    pre_x: Tensor,
    w_hh: Tensor | None,
    b_hh: Tensor | None,
    states: tuple[Tensor, ...],
    loop: type[torch.autograd.Function],
    scan: type[torch.autograd.Function],
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """`plain_recurrence` on a fast path: `loop` runs a cell's whole time loop (returning
    the outputs, then the last of every state after h); a cell in its linear form is its
    (a, b) for all steps (torch ops), then the scan h(t) = a(t) h(t-1) + b(t)."""
    cell = CELLS[name]
    if cell.linear is not None:
        out = scan.apply(*cell.linear(pre_x), states[0])
        return out, (out[-1],)
    out, *rest = loop.apply(name, pre_x, w_hh, b_hh, *states)
    return out, (out[-1], *rest)


def recurrent_grads(
    name: str, d_rec: Tensor, acts: Tensor, hs: Tensor, needs: tuple[bool, bool]
) -> tuple[Tensor | None, Tensor | None]:
    """The gradients of R and c (GRU's) that `needs` asks for, from d_rec [K, T, B, G], the
    gradient of every step's R h(t-1) + c, as batched GEMMs over all steps at once: the
    loops leave them out. hs [K, T + 1, B, N] holds h(0) to h(T); acts the loop's own."""
    cell = CELLS[name]
    K, T, B, G = d_rec.shape
    d_w_hh = d_b_hh = None
    if needs[0]:
        h_prev = hs[:, :T].reshape(K, T * B, -1)
        flat = d_rec.reshape(K, T * B, G).transpose(1, 2)
        if cell.recurrent_inputs is None:
            d_w_hh = torch.bmm(flat, h_prev)
        else:
            inputs = cell.recurrent_inputs(h_prev, acts.reshape(K, T * B, -1))
            blocks = flat.chunk(len(inputs), 1)
            d_w_hh = torch.cat([torch.bmm(d, v) for d, v in zip(blocks, inputs)], 1)
    if cell.recurrent_bias and needs[1]:
        d_b_hh = d_rec.sum((1, 2))
    return d_w_hh, d_b_hh
