"""One LSTM layer for any Spec, holding a population of K independent trials."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from . import cell, compiled, family, fused
from .spec import Spec, resolve

# auto: the fastest path that runs (see resolve_backend); plain: for reference
BACKENDS = ("auto", "plain", "fused", "compiled", "triton")


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype) -> str:
    """The path `backend` runs for tensors of `dtype` on `device`: auto takes the triton
    kernels for float32 on CUDA (where triton is installed); auto and compiled take the
    compiled path where it runs (CPU, float32 or float64, a library that builds), else fused."""
    cuda = torch.device(device).type == "cuda"
    if backend == "auto" and cuda and dtype == torch.float32 and _has_triton():
        return "triton"
    if backend not in ("auto", "compiled"):
        return backend
    return "compiled" if compiled.runs(device, dtype) else "fused"


@functools.cache
def _has_triton() -> bool:
    return importlib.util.find_spec("triton") is not None


class VariantLSTM(nn.Module):
    """An LSTM variant with torch.nn.LSTM's call convention and a population axis.

    Input is [T, B, M] (or [B, T, M] with batch_first) for a single model and
    [T, K, B, M] (or [K, B, T, M]) for a population of K trials. Returns the output
    [T, (K,) B, D*N] and (y_T, c_T), each [D, (K,) B, N], D = 2 if bidirectional.

    Every parameter has a leading K. Trials may have different hidden sizes: they are
    padded to the largest, and the padded units are masked so that they are exactly
    zero in every output and get zero gradient, hence never change.
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
        if isinstance(hidden_size, int):
            hidden_sizes = [hidden_size] * population
        else:
            hidden_sizes = [int(h) for h in hidden_size]
            if population not in (1, len(hidden_sizes)):
                raise ValueError(
                    f"population={population} but {len(hidden_sizes)} hidden sizes were given"
                )
        if not hidden_sizes or min(hidden_sizes) < 1 or input_size < 1:
            raise ValueError(
                f"sizes must be positive: input_size={input_size}, hidden_size={hidden_size}"
            )
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.spec = spec
        self.input_size = input_size
        self.hidden_sizes = tuple(hidden_sizes)
        self.hidden_size = max(hidden_sizes)
        self.population = len(hidden_sizes)
        self.bidirectional = bidirectional
        self.batch_first = batch_first
        self.init_std = init_std
        self.backend = backend

        K, N, M = self.population, self.hidden_size, input_size
        G, NG = len(spec.blocks) * N, len(spec.gates) * N
        factory = {"device": device, "dtype": dtype}
        for sfx in self._suffixes:
            self.register_parameter(
                f"weight_ih{sfx}", nn.Parameter(torch.empty(K, G, M, **factory))
            )
            self.register_parameter(
                f"weight_hh{sfx}", nn.Parameter(torch.empty(K, G, N, **factory))
            )
            self.register_parameter(f"bias{sfx}", nn.Parameter(torch.empty(K, G, **factory)))
            if spec.peepholes and spec.gates:
                self.register_parameter(
                    f"peephole{sfx}", nn.Parameter(torch.empty(K, NG, **factory))
                )
            if spec.full_gate_recurrence and spec.gates:
                self.register_parameter(
                    f"weight_gg{sfx}", nn.Parameter(torch.empty(K, NG, NG, **factory))
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
        gate_rows = unit.repeat(1, len(self.spec.gates))
        rows = {"weight_ih": unit.repeat(1, len(self.spec.blocks)), "peephole": gate_rows}
        rows["bias"] = rows["weight_hh"] = rows["weight_ih"]
        rows["weight_gg"] = gate_rows
        base = name.removesuffix("_reverse")
        mask = rows[base]
        if base == "weight_ih":
            return mask[:, :, None]
        if base == "weight_hh":
            return mask[:, :, None] * unit[:, None, :]
        if base == "weight_gg":
            return mask[:, :, None] * gate_rows[:, None, :]
        return mask

    def reset_parameters(self) -> None:
        """N(0, init_std) for every weight, as in the paper; padded entries zero."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                p.normal_(0.0, self.init_std)
                if self.padded:
                    p.mul_(self._masks(name))

    def n_params(self) -> list[int]:
        """Trainable parameters of each trial at its own hidden size (padding not counted)."""
        counts = []
        for n in self.hidden_sizes:
            nb, ng = len(self.spec.blocks), len(self.spec.gates)
            per_dir = nb * n * (self.input_size + n + 1)
            if self.spec.peepholes:
                per_dir += ng * n
            if self.spec.full_gate_recurrence:
                per_dir += (ng * n) ** 2
            counts.append(per_dir * len(self._suffixes))
        return counts

    def paper_weights(self, grad: bool = False) -> dict[str, Tensor]:
        """Views of the parameters under the paper's names (or of their gradients).

        W_z..W_o [N, M], R_z..R_o [N, N], p_i/p_f/p_o [N], b_z..b_o [N], and for full gate
        recurrence R_ab [N, N] from gate a at t-1 to gate b at t; a leading K for
        populations; reverse direction suffixed '_reverse'. Writing into a view changes
        the model. Removed parts are absent.
        """
        if grad:
            tensors = {n: p.grad for n, p in self.named_parameters() if p.grad is not None}
        else:
            tensors = {n: p.detach() for n, p in self.named_parameters()}
        return self.paper_views(tensors)

    def paper_views(self, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        """paper_weights() for any tensors shaped like the parameters, keyed by parameter
        name (gradients, optimizer state)."""
        N, gates = self.hidden_size, self.spec.gates
        views: dict[str, Tensor] = {}
        for sfx in self._suffixes:
            params = {
                base: tensors[base + sfx]
                for base in ("weight_ih", "weight_hh", "bias", "peephole", "weight_gg")
                if base + sfx in tensors
            }
            for k, b in enumerate(self.spec.blocks):
                rows = slice(k * N, (k + 1) * N)
                if "weight_ih" in params:
                    views[f"W_{b}{sfx}"] = params["weight_ih"][:, rows]
                if "weight_hh" in params:
                    views[f"R_{b}{sfx}"] = params["weight_hh"][:, rows]
                if "bias" in params:
                    views[f"b_{b}{sfx}"] = params["bias"][:, rows]
            for k, g in enumerate(gates):
                rows = slice(k * N, (k + 1) * N)
                if "peephole" in params:
                    views[f"p_{g}{sfx}"] = params["peephole"][:, rows]
                if "weight_gg" in params:
                    for a_idx, a in enumerate(gates):
                        cols = slice(a_idx * N, (a_idx + 1) * N)
                        views[f"R_{a}{g}{sfx}"] = params["weight_gg"][:, rows, cols]
        if self.population == 1:
            views = {k: v[0] for k, v in views.items()}
        return views

    def forward(
        self,
        input: Tensor,
        hx: tuple[Tensor, Tensor] | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """`lengths` [B] marks sequences padded at the end: the reverse direction then starts
        at each sequence's own last frame. Outputs past a sequence's length are undefined,
        and so are the final states of sequences shorter than the input."""
        single = input.dim() == 3
        if single and self.population != 1:
            raise ValueError(
                f"a population of {self.population} expects a 4-d input, got {tuple(input.shape)}"
            )
        if input.dim() not in (3, 4) or input.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input [T, (K,) B, {self.input_size}] got {tuple(input.shape)}"
            )
        x = input.unsqueeze(1 if not self.batch_first else 0) if single else input
        if self.batch_first:  # [K, B, T, M] -> [T, K, B, M]
            x = x.permute(2, 0, 1, 3)
        T, K, B, _ = x.shape
        if K != self.population:
            raise ValueError(f"input has population {K}, the layer {self.population}")
        D, N = len(self._suffixes), self.hidden_size
        if hx is None:
            zeros = x.new_zeros(D, K, B, N)
            y0, c0 = zeros, zeros
        else:
            y0, c0 = (s.unsqueeze(1) if single else s for s in hx)

        outputs, last_y, last_c = [], [], []
        for d, sfx in enumerate(self._suffixes):
            xd = _reverse(x, lengths) if d == 1 else x
            out, c_T = self._direction(sfx, xd, y0[d], c0[d])
            outputs.append(_reverse(out, lengths) if d == 1 else out)
            last_y.append(out[-1])
            last_c.append(c_T)
        output = torch.cat(outputs, dim=-1) if D > 1 else outputs[0]
        y_n, c_n = torch.stack(last_y), torch.stack(last_c)
        if self.batch_first:
            output = output.permute(1, 2, 0, 3)
        if single:
            output = output.squeeze(1 if not self.batch_first else 0)
            y_n, c_n = y_n.squeeze(1), c_n.squeeze(1)
        return output, (y_n, c_n)

    def _direction(self, sfx: str, x: Tensor, y0: Tensor, c0: Tensor) -> tuple[Tensor, Tensor]:
        params = {
            base: getattr(self, base + sfx, None)
            for base in ("weight_ih", "weight_hh", "bias", "peephole", "weight_gg")
        }
        if self.padded:
            params = {k: p * self._masks(k) if p is not None else None for k, p in params.items()}
        T, K, B, M = x.shape
        # One batched matmul for the input projection of all steps: [K, T*B, M] @ [K, M, G].
        xk = x.permute(1, 0, 2, 3).reshape(K, T * B, M)
        pre_x = torch.baddbmm(params["bias"][:, None, :], xk, params["weight_ih"].transpose(1, 2))
        pre_x = pre_x.reshape(K, T, B, -1).permute(1, 0, 2, 3)
        path = resolve_backend(self.backend, x.device, x.dtype)
        if path == "triton":  # imported on first use: CPU users never need triton
            from . import triton_lstm as module
        else:
            module = {"plain": cell, "fused": fused, "compiled": compiled}[path]
        return module.recurrence(
            self.spec, pre_x, params["weight_hh"], params["peephole"], params["weight_gg"], y0, c0
        )

    def extra_repr(self) -> str:
        sizes = self.hidden_sizes[0] if len(set(self.hidden_sizes)) == 1 else self.hidden_sizes
        return (
            f"{self.spec.describe()}, input_size={self.input_size}, hidden_size={sizes}, "
            f"population={self.population}, bidirectional={self.bidirectional}"
        )


def _reverse(x: Tensor, lengths: Tensor | None) -> Tensor:
    """x [T, K, B, ...] reversed in time within each sequence's length (padding stays put)."""
    if lengths is None:
        return x.flip(0)
    t = torch.arange(x.shape[0], device=x.device)[:, None]
    lengths = lengths.to(x.device)[None, :]
    index = torch.where(t < lengths, lengths - 1 - t, t)  # [T, B]
    index = index[:, None, :, None].expand(x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    return x.gather(0, index)


def build(
    name_or_spec: str | Spec,
    input_size: int,
    hidden_size: int | Sequence[int],
    bidirectional: bool = False,
    population: int = 1,
    batch_first: bool = False,
    **kwargs,
) -> VariantLSTM | family.FamilyRNN:
    """Build the named variant (V, NIG, ..., FGR, a cell of the family such as GRU, or a
    registered name) or a Spec.

    `hidden_size` may be a list of per-trial sizes; then the population is its length.
    Other keyword arguments (init_std, backend, device, dtype) go to VariantLSTM (FamilyRNN
    for the family's cells).
    """
    spec = resolve(name_or_spec)
    return (VariantLSTM if spec.cell == "lstm" else family.FamilyRNN)(
        spec,
        input_size,
        hidden_size,
        bidirectional=bidirectional,
        population=population,
        batch_first=batch_first,
        **kwargs,
    )
