"""The gated-RNN family beside the LSTM: GRU, MGU, minGRU, minLSTM and xLSTM's sLSTM.

One layer for every cell, with VariantLSTM's call convention (torch.nn.GRU's for cells whose
state is h alone), its population axis, padding and masking, and weight views by name.
Each cell is a few pre-activation blocks b computed from the input, W_b x + b_b (for all
steps at once), plus, for cells whose gates see the past, R_b h(t-1). Equations, sources
and parameter counts: docs/family.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import compiled, layer
from .spec import Spec


@dataclass(frozen=True)
class Cell:
    """What the layer needs to know of a cell; its arithmetic is in `STEPS` (and the fast
    paths)."""

    blocks: tuple[str, ...]  # W_b [N, M] and b_b [N] for each, in this order
    recurrent: tuple[str, ...]  # R_b [N, N] for each, in this order
    recurrent_bias: bool  # c_b [N] beside each R_b (torch.nn.GRU's bias_hh)
    states: tuple[str, ...]  # h first: the output
    # --forget-bias f sets each named bias to coefficient * f: the gate that keeps the
    # state, signed so that f > 0 keeps more (docs/family.md).
    forget_bias: tuple[tuple[str, float], ...]
    title: str  # what the cell is, with its source, in a few words


CELLS: dict[str, Cell] = {
    "gru": Cell(
        ("r", "u", "n"),
        ("r", "u", "n"),
        True,
        ("h",),
        (("b_u", 1.0), ("c_u", 0.0)),
        "GRU as torch.nn.GRU (Cho et al. 2014)",
    ),
    "mgu": Cell(
        ("f", "h"),
        ("f", "h"),
        False,
        ("h",),
        (("b_f", -1.0),),
        "one gate (Zhou et al. 2016)",
    ),
    "mingru": Cell(
        ("u", "h"),
        (),
        False,
        ("h",),
        (("b_u", -1.0),),
        "GRU, gates from x only (Feng et al. 2024)",
    ),
    "minlstm": Cell(
        ("f", "i", "h"),
        (),
        False,
        ("h",),
        (("b_f", 1.0),),
        "LSTM, gates from x only (Feng et al. 2024)",
    ),
    "slstm": Cell(
        ("z", "i", "f", "o"),
        ("z", "i", "f", "o"),
        False,
        ("h", "c", "n", "m"),
        (("b_f", 1.0),),
        "exponential gating (Beck et al. 2024)",
    ),
}

PATHS = ("auto", "plain", "compiled", "triton")


def resolve_path(backend: str, device: torch.device, dtype: torch.dtype) -> str:
    """The path `backend` runs for tensors of `dtype` on `device`: auto takes the Triton
    kernels (triton_family.py) for float32 on CUDA where triton is installed; auto and
    compiled take the compiled CPU path (family_compiled.py) where it runs, else plain."""
    cuda = torch.device(device).type == "cuda"
    if backend == "auto" and cuda and dtype == torch.float32 and layer._has_triton():
        return "triton"
    if backend in ("plain", "triton"):
        return backend
    return "compiled" if compiled.runs(device, dtype) else "plain"


def forget_biases(spec: Spec) -> dict[str, float]:
    """Which biases (names of the weight views, one direction) --forget-bias sets, each with
    its coefficient: the LSTM's b_f where it has a forget gate of its own, else the cell's."""
    if spec.cell == "lstm":
        return {"b_f": 1.0} if "f" in spec.gates else {}
    return dict(CELLS[spec.cell].forget_bias)


def n_params(spec: Spec, input_size: int, hidden_size: int) -> int:
    """Trainable parameters of one direction of a family cell."""
    cell, n = CELLS[spec.cell], hidden_size
    count = len(cell.blocks) * (n * input_size + n) + len(cell.recurrent) * n * n
    return count + (len(cell.recurrent) * n if cell.recurrent_bias else 0)


# --- the plain path: one step at a time with autograd; every other path is tested against it


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


STEPS = {"gru": _gru, "mgu": _mgu, "mingru": _mingru, "minlstm": _minlstm, "slstm": _slstm}


def plain_recurrence(
    name: str,
    pre_x: Tensor,  # [T, K, B, nb N]  W x + b for every step
    w_hh: Tensor | None,  # [K, nr N, N]  R, blocks stacked like pre_x
    b_hh: Tensor | None,  # [K, nr N]     c (GRU)
    states: tuple[Tensor, ...],  # each [K, B, N], h first
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Outputs h for every step [T, K, B, N] and the last states."""
    step = STEPS[name]
    rt = w_hh.transpose(1, 2) if w_hh is not None else None
    outputs = []
    for px in pre_x:
        states = step(px, rt, b_hh, *states)
        outputs.append(states[0])
    return torch.stack(outputs), states


# --- what the two fast paths (family_compiled.py, triton_family.py) share

# Cells with a time loop, numbered as csrc/family.cpp and triton_family's kernels number them,
# and the activations each loop saves per unit and step for its backward.
LOOP_CODE = {"gru": 0, "mgu": 1, "slstm": 2}
SAVED = {"gru": 4, "mgu": 2, "slstm": 6}


def fast_recurrence(
    name: str,
    pre_x: Tensor,
    w_hh: Tensor | None,
    b_hh: Tensor | None,
    states: tuple[Tensor, ...],
    loop: type[torch.autograd.Function],
    scan: type[torch.autograd.Function],
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """`plain_recurrence` on a fast path: `loop` runs a cell's whole time loop; minGRU and
    minLSTM, whose gates see only the input, are their gates for all steps (torch ops) and
    then the linear recurrence h(t) = a(t) h(t-1) + b(t), which `scan` runs."""
    if name == "mingru":
        xu, candidate = pre_x.chunk(2, -1)
        u = torch.sigmoid(xu)
        out = scan.apply(1 - u, u * candidate, states[0])
        return out, (out[-1],)
    if name == "minlstm":
        xf, xi, candidate = pre_x.chunk(3, -1)
        f, i = minlstm_gates(xf, xi)
        out = scan.apply(f, i * candidate, states[0])
        return out, (out[-1],)
    if name == "slstm":
        out, c, n, m = loop.apply(name, pre_x, w_hh, b_hh, *states)
        return out, (out[-1], c, n, m)
    (out,) = loop.apply(name, pre_x, w_hh, b_hh, states[0])
    return out, (out[-1],)


def recurrent_grads(
    name: str, d_rec: Tensor, acts: Tensor, hs: Tensor, needs: tuple[bool, bool]
) -> tuple[Tensor | None, Tensor | None]:
    """The gradients of R and c (GRU's) that `needs` asks for, from d_rec [K, T, B, G], the
    gradient of every step's R h(t-1) + c, as batched GEMMs over all steps at once: the
    loops leave them out. hs [K, T + 1, B, N] holds h(0) to h(T); acts the loop's own."""
    K, T, B, G = d_rec.shape
    d_w_hh = d_b_hh = None
    if needs[0]:
        h_prev = hs[:, :T].reshape(K, T * B, -1)
        flat = d_rec.reshape(K, T * B, G).transpose(1, 2)
        if name == "mgu":  # R_h multiplies f h(t-1)
            n = h_prev.shape[-1]
            f = acts.reshape(K, T * B, SAVED[name] * n)[..., :n]
            d_w_hh = torch.cat(
                [torch.bmm(flat[:, :n], h_prev), torch.bmm(flat[:, n:], f * h_prev)], 1
            )
        else:
            d_w_hh = torch.bmm(flat, h_prev)
    if name == "gru" and needs[1]:
        d_b_hh = d_rec.sum((1, 2))
    return d_w_hh, d_b_hh


# --- the layer


class FamilyRNN(nn.Module):
    """A family cell with torch.nn.GRU's call convention (sLSTM: torch.nn.LSTM's, with four
    states) and VariantLSTM's population axis.

    Input [T, B, M] (or [B, T, M] with batch_first), or [T, K, B, M] (or [K, B, T, M]) for a
    population of K trials. Returns the output [T, (K,) B, D*N] and the last state h_T
    [D, (K,) B, N]; sLSTM returns (h_T, c_T, n_T, m_T) and takes such a tuple as hx. Trials
    may have different hidden sizes: padded units are exactly zero in every output and
    state, and get zero gradient.
    """

    def __init__(
        self,
        spec: Spec,
        input_size: int,
        hidden_size: int | Sequence[int],
        *,
        bidirectional: bool = False,
        population: int = 1,
        batch_first: bool = False,
        init_std: float = 0.1,
        backend: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        hidden_sizes = layer.population_sizes(input_size, hidden_size, population)
        layer.check_dtype(dtype)
        if backend not in PATHS:
            raise ValueError(
                f"cell {spec.cell} runs on backend {', '.join(PATHS)}, not {backend!r}"
            )
        self.spec = spec
        self.cell = CELLS[spec.cell]
        self.input_size = input_size
        self.hidden_sizes = tuple(hidden_sizes)
        self.hidden_size = max(hidden_sizes)
        self.population = len(hidden_sizes)
        self.bidirectional = bidirectional
        self.batch_first = batch_first
        self.init_std = init_std
        self.backend = backend

        K, N, M = self.population, self.hidden_size, input_size
        nb, nr = len(self.cell.blocks), len(self.cell.recurrent)
        factory = {"device": device, "dtype": dtype}
        for sfx in self._suffixes:
            self.register_parameter(
                f"weight_ih{sfx}", nn.Parameter(torch.empty(K, nb * N, M, **factory))
            )
            self.register_parameter(f"bias{sfx}", nn.Parameter(torch.empty(K, nb * N, **factory)))
            if nr:
                self.register_parameter(
                    f"weight_hh{sfx}", nn.Parameter(torch.empty(K, nr * N, N, **factory))
                )
            if self.cell.recurrent_bias:
                self.register_parameter(
                    f"bias_hh{sfx}", nn.Parameter(torch.empty(K, nr * N, **factory))
                )
        unit = torch.zeros(K, N, dtype=torch.bool, device=device)
        for k, n in enumerate(hidden_sizes):
            unit[k, :n] = True
        self.register_buffer("unit_mask", unit, persistent=False)
        self.padded = min(hidden_sizes) < N
        self.reset_parameters()

    @property
    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def _masks(self, name: str) -> Tensor:
        """1 where parameter `name` connects real units, 0 where it touches padding."""
        unit = self.unit_mask.to(self.weight_ih.dtype)
        base = name.removesuffix("_reverse")
        if base in ("weight_ih", "bias"):
            rows = unit.repeat(1, len(self.cell.blocks))
            return rows[:, :, None] if base == "weight_ih" else rows
        rows = unit.repeat(1, len(self.cell.recurrent))
        return rows[:, :, None] * unit[:, None, :] if base == "weight_hh" else rows

    def reset_parameters(self) -> None:
        """N(0, init_std) for every weight, as for the LSTM variants; padded entries zero."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                p.normal_(0.0, self.init_std)
                if self.padded:
                    p.mul_(self._masks(name))

    def n_params(self) -> list[int]:
        """Trainable parameters of each trial at its own hidden size (padding not counted)."""
        D = len(self._suffixes)
        return [D * n_params(self.spec, self.input_size, n) for n in self.hidden_sizes]

    def paper_weights(self, grad: bool = False) -> dict[str, Tensor]:
        """Views of the parameters by the names of docs/family.md (or of their gradients):
        W_b [N, M] and b_b [N] for each block b, R_b [N, N] for each recurrent one and
        GRU's c_b [N]; a leading K for populations; reverse direction suffixed '_reverse'.
        Writing into a view changes the model."""
        if grad:
            tensors = {n: p.grad for n, p in self.named_parameters() if p.grad is not None}
        else:
            tensors = {n: p.detach() for n, p in self.named_parameters()}
        return self.paper_views(tensors)

    def paper_views(self, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        """paper_weights() for any tensors shaped like the parameters, keyed by parameter
        name (gradients, optimizer state)."""
        N, cell = self.hidden_size, self.cell
        views: dict[str, Tensor] = {}
        for sfx in self._suffixes:
            for param, prefix, blocks in (
                ("weight_ih", "W", cell.blocks),
                ("bias", "b", cell.blocks),
                ("weight_hh", "R", cell.recurrent),
                ("bias_hh", "c", cell.recurrent),
            ):
                if param + sfx in tensors:
                    for k, b in enumerate(blocks):
                        views[f"{prefix}_{b}{sfx}"] = tensors[param + sfx][:, k * N : (k + 1) * N]
        if self.population == 1:
            views = {k: v[0] for k, v in views.items()}
        return views

    def forward(
        self,
        input: Tensor,
        hx: Tensor | tuple[Tensor, ...] | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | tuple[Tensor, ...]]:
        """`lengths` [B] marks sequences padded at the end, as for VariantLSTM."""
        _reverse = layer._reverse
        S = len(self.cell.states)
        if S > 1 and isinstance(hx, (tuple, list)) and len(hx) != S:
            raise ValueError(f"hx of {self.spec.cell} holds {S} states, got {len(hx)}")
        layer.check_arguments(
            input,
            hx,
            lengths,
            input_size=self.input_size,
            hidden_size=self.hidden_size,
            population=self.population,
            directions=len(self._suffixes),
            batch_first=self.batch_first,
            states=S,
            like=self.weight_ih,
        )
        single = input.dim() == 3
        x = input.unsqueeze(1 if not self.batch_first else 0) if single else input
        if self.batch_first:  # [K, B, T, M] -> [T, K, B, M]
            x = x.permute(2, 0, 1, 3)
        T, K, B, _ = x.shape
        D, N = len(self._suffixes), self.hidden_size
        if hx is None:
            start = (x.new_zeros(D, K, B, N),) * S
        else:
            start = (hx,) if isinstance(hx, Tensor) else tuple(hx)
            start = tuple(s.unsqueeze(1) if single else s for s in start)

        outputs, last = [], []
        for d, sfx in enumerate(self._suffixes):
            xd = _reverse(x, lengths) if d == 1 else x
            out, states = self._direction(sfx, xd, tuple(s[d] for s in start))
            outputs.append(_reverse(out, lengths) if d == 1 else out)
            last.append(states)
        output = torch.cat(outputs, dim=-1) if D > 1 else outputs[0]
        finals = [torch.stack(s) for s in zip(*last)]
        if self.padded:  # sLSTM's normaliser is not zero at padded units
            finals = [s.where(self.unit_mask[:, None, :], 0) for s in finals]
        if self.batch_first:
            output = output.permute(1, 2, 0, 3)
        if single:
            output = output.squeeze(1 if not self.batch_first else 0)
            finals = [s.squeeze(1) for s in finals]
        return output, finals[0] if S == 1 else tuple(finals)

    def _direction(
        self, sfx: str, x: Tensor, states: tuple[Tensor, ...]
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        params = {
            base: getattr(self, base + sfx, None)
            for base in ("weight_ih", "bias", "weight_hh", "bias_hh")
        }
        if self.padded:
            params = {k: p * self._masks(k) if p is not None else None for k, p in params.items()}
        T, K, B, M = x.shape
        xk = x.permute(1, 0, 2, 3).reshape(K, T * B, M)
        pre_x = torch.baddbmm(params["bias"][:, None, :], xk, params["weight_ih"].transpose(1, 2))
        pre_x = pre_x.reshape(K, T, B, -1).permute(1, 0, 2, 3)
        path = resolve_path(self.backend, x.device, x.dtype)
        if path == "triton":  # imported on first use: CPU users never need triton
            from .triton_family import recurrence as run
        elif path == "compiled":
            from .family_compiled import recurrence as run
        else:
            run = plain_recurrence
        return run(self.spec.cell, pre_x, params["weight_hh"], params["bias_hh"], states)

    def extra_repr(self) -> str:
        sizes = self.hidden_sizes[0] if len(set(self.hidden_sizes)) == 1 else self.hidden_sizes
        return (
            f"{self.spec.cell}, input_size={self.input_size}, hidden_size={sizes}, "
            f"population={self.population}, bidirectional={self.bidirectional}"
        )
