"""The layers' shared machinery: the one backend chooser (with its self-check), the
argument checks at the boundary, and the base every layer builds on; and the LSTM layer for
any Spec, holding a population of K independent trials."""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from . import cell, cells, compiled, family_compiled, fused
from .spec import Spec

# auto: the fastest path that runs (see resolve_backend); plain: for reference
BACKENDS = ("auto", "plain", "fused", "compiled", "triton")
# The family's cells have no fused path: their plain one takes its place.
FAMILY_BACKENDS = ("auto", "plain", "compiled", "triton")


def fallback(spec: Spec) -> str:
    """The path that runs where the kernels do not: fused for the LSTM, plain for the family."""
    return "fused" if spec.cell == "lstm" else "plain"


def resolve_backend(
    backend: str, device: torch.device, dtype: torch.dtype, slow: str = "fused"
) -> str:
    """The path `backend` runs for tensors of `dtype` on `device`: auto takes the triton
    kernels for float32 on CUDA (where triton is installed); auto and compiled take the
    compiled path where it runs (CPU, float32 or float64, a library that builds), else
    `slow` (the cell's `fallback`). $ODYSSEY_BACKEND, when set, is what auto means: a whole
    program or test suite then runs as if every layer had been built with that backend
    (fused meaning plain for the family, which has no fused path)."""
    if backend == "auto":
        backend = _auto_override() or backend
        if backend == "fused":
            backend = slow
    cuda = torch.device(device).type == "cuda"
    if backend == "auto" and cuda and dtype == torch.float32 and _has_triton():
        return "triton"
    if backend not in ("auto", "compiled"):
        return backend
    return "compiled" if compiled.runs(device, dtype) else slow


def _auto_override() -> str | None:
    chosen = os.environ.get("ODYSSEY_BACKEND")
    if chosen and chosen not in BACKENDS:
        raise ValueError(f"ODYSSEY_BACKEND must be one of {BACKENDS}, got {chosen!r}")
    return chosen or None


@functools.cache
def _has_triton() -> bool:
    return importlib.util.find_spec("triton") is not None


def _module(path: str):
    """The module whose `recurrence` is the LSTM's on path."""
    if path == "triton":  # imported on first use: CPU users never need triton
        from . import triton_lstm

        return triton_lstm
    return {"plain": cell, "fused": fused, "compiled": compiled}[path]


def family_recurrence(path: str) -> Callable:
    """The family's recurrence on path (cells.plain_recurrence's signature)."""
    if path == "triton":  # imported on first use: CPU users never need triton
        from . import triton_family

        return triton_family.recurrence
    return {"plain": cells.plain_recurrence, "compiled": family_compiled.recurrence}[path]


# (path, device, spec, dtype) -> None where the kernels passed their check, else why not
_checks: dict[tuple, str | None] = {}


def checked_backend(
    backend: str, spec: Spec, device: torch.device | str, dtype: torch.dtype
) -> tuple[str, str]:
    """The path that runs for `backend` (resolve_backend's, checked) and, when that is not
    the path resolved, why.

    The compiled and triton kernels check themselves on the first use of a (device, spec,
    dtype) in a process: a tiny input through them and through the plain path, outputs and
    gradients compared. Kernels that fail to compile or run, or that disagree, print one line
    on stderr, and the process runs the cell's fallback path (fused for the LSTM, plain for
    the family) for that (device, spec, dtype) instead: the triton kernels have run in
    Triton's interpreter, not on every GPU, and a cached compiled library may meet a compiler
    or CPU it was not tested with."""
    path = resolve_backend(backend, device, dtype, fallback(spec))
    if spec.cell != "lstm" and not cells.CELLS[spec.cell].fast:
        return "plain", ""  # a cell with neither a loop of the kernels nor a linear form
    if path not in ("compiled", "triton"):
        return path, ""
    key = (path, str(torch.device(device)), spec, dtype)
    if key not in _checks:
        _checks[key] = _self_check(path, spec, torch.device(device), dtype)
        if _checks[key] is not None:
            print(f"variants: {_checks[key]}; using the {fallback(spec)} path", file=sys.stderr)
    return (fallback(spec), _checks[key]) if _checks[key] is not None else (path, "")


def _lstm_problem(spec: Spec, path: str, gen: torch.Generator, T: int, K: int, B: int, N: int):
    """The LSTM's self-check: its inputs by name, the recurrence on a path (a function of
    the inputs in that order, returning its outputs) and the outputs' shapes and names."""
    G, NG = len(spec.blocks) * N, len(spec.gates) * N
    shapes = {
        "pre_x": (T, K, B, G),
        "w_hh": (K, G, N),
        "peephole": (K, NG) if spec.peepholes and spec.gates else None,
        "w_gg": (K, NG, NG) if spec.full_gate_recurrence and spec.gates else None,
        "y0": (K, B, N),
        "c0": (K, B, N),
    }
    inputs = {
        k: torch.randn(s, generator=gen, dtype=torch.float64) if s else None
        for k, s in shapes.items()
    }

    def run(on: str, *tensors):
        return _module(on).recurrence(spec, *tensors)

    return inputs, run, {"output": (T, K, B, N), "c_T": (K, B, N)}


def _family_problem(spec: Spec, path: str, gen: torch.Generator, T: int, K: int, B: int, N: int):
    """The family's self-check, as _lstm_problem; its states positive (a reachable sLSTM
    normaliser)."""
    cell = cells.CELLS[spec.cell]
    nr = len(cell.recurrent)
    inputs = {
        "pre_x": torch.randn(T, K, B, len(cell.blocks) * N, generator=gen, dtype=torch.float64),
        "w_hh": torch.randn(K, nr * N, N, generator=gen, dtype=torch.float64) if nr else None,
        "b_hh": torch.randn(K, nr * N, generator=gen, dtype=torch.float64)
        if cell.recurrent_bias
        else None,
    }
    for s in cell.states:
        inputs[f"{s}0"] = torch.rand(K, B, N, generator=gen, dtype=torch.float64) + 0.5

    def run(on: str, pre_x, w_hh, b_hh, *states):
        out, finals = family_recurrence(on)(spec.cell, pre_x, w_hh, b_hh, states)
        return out, *finals

    outputs = {"output": (T, K, B, N), **{f"{s}_T": (K, B, N) for s in cell.states}}
    return inputs, run, outputs


def _self_check(path: str, spec: Spec, device: torch.device, dtype: torch.dtype) -> str | None:
    """None if `path` gives the plain path's outputs and gradients (float64) on a tiny
    input, to a thousand roundings of `dtype`; else one line saying what went wrong."""
    T, K, B, N = 3, 2, 2, 5  # N = 5: rows that are not a whole number of vectors
    gen = torch.Generator().manual_seed(0)
    problem = _lstm_problem if spec.cell == "lstm" else _family_problem
    exact, recurrence, outputs = problem(spec, path, gen, T, K, B, N)
    probes = [torch.randn(s, generator=gen, dtype=torch.float64) for s in outputs.values()]
    what = f"the {path} kernels on {device} ({spec.describe()}, {dtype})"

    def run(on, tensors):
        inputs = {k: t.requires_grad_() if t is not None else None for k, t in tensors.items()}
        outs = recurrence(on, *inputs.values())
        leaves = [t for t in inputs.values() if t is not None]
        loss = sum((o * p.to(o)).sum() for o, p in zip(outs, probes))
        return [*outs, *torch.autograd.grad(loss, leaves)]

    with torch.inference_mode(False), torch.enable_grad():
        plain = run("plain", {k: t.clone() if t is not None else None for k, t in exact.items()})
        reference = [t.detach() for t in plain]
        try:
            moved = {k: t.to(device, dtype) if t is not None else None for k, t in exact.items()}
            got = [t.detach().double().cpu() for t in run(path, moved)]  # waits for it
        except Exception as err:  # noqa: BLE001 - any failure means: do not use these kernels
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            return f"{what} failed: {type(err).__name__}: {first}"
    tolerance = min(1e-2, 1e3 * torch.finfo(dtype).eps)
    names = [*outputs, *(k for k, t in exact.items() if t is not None)]
    for name, g, r in zip(names, got, reference):
        error = (g - r).norm() / r.norm().clamp_min(1e-30)
        if not error <= tolerance:  # NaN fails too
            return f"{what} disagree with the plain path ({name}: relative error {error:.2g})"
    return None


# The dtypes a layer computes in (float16 and bfloat16 on the plain and fused paths).
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_dtype(dtype: torch.dtype | None) -> None:
    """Refuse, in one line, a layer dtype other than DTYPES (None: torch's default)."""
    dtype = dtype if dtype is not None else torch.get_default_dtype()
    if dtype not in DTYPES:
        names = ", ".join(str(d).removeprefix("torch.") for d in DTYPES)
        raise ValueError(f"dtype: expected one of {names}, got {dtype}")


def population_sizes(
    input_size: int, hidden_size: int | Sequence[int], population: int
) -> list[int]:
    """Each trial's hidden size: one size for all K trials, or one per trial."""
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
    return hidden_sizes


class RecurrentLayer(nn.Module):
    """What every layer shares: the population of K trials padded to the largest hidden
    size (padded units masked: exactly zero in every output and state, zero gradient), its
    parameters from a layout, their initialisation, the argument checks, the directions and
    the backend chooser. A layer says which parameters it has (`_layout`), how many states
    hx holds (`states`), how its paper names map to them (`paper_views`) and runs its
    recurrence on a path (`_recurrence`)."""

    backends: tuple[str, ...]
    parameter_names: tuple[str, ...]  # every parameter a layer of its kind may have, in order

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
        hidden_sizes = population_sizes(input_size, hidden_size, population)
        check_dtype(dtype)
        if backend not in self.backends:
            raise ValueError(
                f"cell {spec.cell} runs on backend {', '.join(self.backends)}, not {backend!r}"
            )
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
        factory = {"device": device, "dtype": dtype}
        for sfx in self._suffixes:
            for name, (rows, cols) in self._layout().items():
                width = () if cols is None else (M,) if cols == "input" else (cols * N,)
                self.register_parameter(
                    name + sfx, nn.Parameter(torch.empty(K, rows * N, *width, **factory))
                )
        unit = torch.zeros(K, N, dtype=torch.bool, device=device)
        for k, n in enumerate(hidden_sizes):
            unit[k, :n] = True
        self.register_buffer("unit_mask", unit, persistent=False)
        self.padded = min(hidden_sizes) < N
        self.reset_parameters()

    states: int  # how many initial states hx holds

    def _layout(self) -> dict[str, tuple[int, int | str | None]]:
        """Each parameter's rows and columns in blocks of N units, in registration order:
        (rows, None) for a vector, (rows, "input") for a matrix over the input."""
        raise NotImplementedError

    @property
    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def _masks(self, name: str) -> Tensor:
        """1 where parameter `name` connects real units, 0 where it touches padding."""
        unit = self.unit_mask.to(self.weight_ih.dtype)
        rows, cols = self._layout()[name.removesuffix("_reverse")]
        mask = unit.repeat(1, rows)
        if cols is None:
            return mask
        if cols == "input":
            return mask[:, :, None]
        return mask[:, :, None] * unit.repeat(1, cols)[:, None, :]

    def reset_parameters(self) -> None:
        """N(0, init_std) for every weight, as in the paper; padded entries zero."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                p.normal_(0.0, self.init_std)
                if self.padded:
                    p.mul_(self._masks(name))

    def paper_weights(self, grad: bool = False) -> dict[str, Tensor]:
        """Views of the parameters by their names in the papers (`paper_views`), or of their
        gradients; a leading K for populations; reverse direction suffixed '_reverse'.
        Writing into a view changes the model. Removed parts are absent."""
        if grad:
            tensors = {n: p.grad for n, p in self.named_parameters() if p.grad is not None}
        else:
            tensors = {n: p.detach() for n, p in self.named_parameters()}
        return self.paper_views(tensors)

    def paper_views(self, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        """paper_weights() for any tensors shaped like the parameters, keyed by parameter
        name (gradients, optimizer state)."""
        raise NotImplementedError

    def forward(
        self,
        input: Tensor,
        hx: Tensor | tuple[Tensor, ...] | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | tuple[Tensor, ...]]:
        """`lengths` [B] marks sequences padded at the end: the reverse direction then starts
        at each sequence's own last frame. Outputs past a sequence's length are undefined,
        and so are the final states of sequences shorter than the input."""
        S = self.states
        check_arguments(
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
        if self.padded:  # a state need not be zero at padded units (sLSTM's normaliser)
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
        params = {base: getattr(self, base + sfx, None) for base in self.parameter_names}
        if self.padded:
            params = {k: p * self._masks(k) if p is not None else None for k, p in params.items()}
        T, K, B, M = x.shape
        # One batched matmul for the input projection of all steps: [K, T*B, M] @ [K, M, G].
        xk = x.permute(1, 0, 2, 3).reshape(K, T * B, M)
        pre_x = torch.baddbmm(params["bias"][:, None, :], xk, params["weight_ih"].transpose(1, 2))
        pre_x = pre_x.reshape(K, T, B, -1).permute(1, 0, 2, 3)
        path, _ = checked_backend(self.backend, self.spec, x.device, x.dtype)
        return self._recurrence(path, pre_x, params, states)

    def _recurrence(
        self, path: str, pre_x: Tensor, params: dict[str, Tensor | None], states: tuple[Tensor, ...]
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Outputs [T, K, B, N] and the last states of one direction on `path`."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        sizes = self.hidden_sizes[0] if len(set(self.hidden_sizes)) == 1 else self.hidden_sizes
        return (
            f"{self._describe()}, input_size={self.input_size}, hidden_size={sizes}, "
            f"population={self.population}, bidirectional={self.bidirectional}"
        )

    def _describe(self) -> str:
        """The cell in a few words, for repr."""
        raise NotImplementedError


class VariantLSTM(RecurrentLayer):
    """An LSTM variant with torch.nn.LSTM's call convention and a population axis.

    Input is [T, B, M] (or [B, T, M] with batch_first) for a single model and
    [T, K, B, M] (or [K, B, T, M]) for a population of K trials. Returns the output
    [T, (K,) B, D*N] and (y_T, c_T), each [D, (K,) B, N], D = 2 if bidirectional.

    Every parameter has a leading K. Trials may have different hidden sizes: they are
    padded to the largest, and the padded units are masked so that they are exactly
    zero in every output and get zero gradient, hence never change.
    """

    backends = BACKENDS
    parameter_names = ("weight_ih", "weight_hh", "bias", "peephole", "weight_gg")
    states = 2

    def _layout(self) -> dict[str, tuple[int, int | str | None]]:
        nb, ng = len(self.spec.blocks), len(self.spec.gates)
        layout = {"weight_ih": (nb, "input"), "weight_hh": (nb, 1), "bias": (nb, None)}
        if self.spec.peepholes and ng:
            layout["peephole"] = (ng, None)
        if self.spec.full_gate_recurrence and ng:
            layout["weight_gg"] = (ng, ng)
        return layout

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
        return super().paper_weights(grad)

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

    def _recurrence(
        self, path: str, pre_x: Tensor, params: dict[str, Tensor | None], states: tuple[Tensor, ...]
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        out, c_T = _module(path).recurrence(
            self.spec, pre_x, params["weight_hh"], params["peephole"], params["weight_gg"], *states
        )
        return out, (out[-1], c_T)

    def _describe(self) -> str:
        return self.spec.describe()


def check_arguments(
    input: Tensor,
    hx: Tensor | Sequence[Tensor] | None,
    lengths: Tensor | None,
    *,
    input_size: int,
    hidden_size: int,
    population: int,
    directions: int,
    batch_first: bool,
    states: int,
    like: Tensor,
) -> None:
    """Raise a one-line ValueError (TypeError for what is not a tensor) for any argument
    that a recurrent layer of these sizes cannot take, before any backend sees it, as
    torch.nn.LSTM does: then every backend gives the same error, and none reads memory a
    wrong size would put out of bounds.

    input: [T, (K,) B, M], or [(K,) B, T, M] with batch_first; K may be left out only for a
    population of one. hx: `states` initial states, one tensor if `states` is 1, else a
    tuple of them (an LSTM's (h_0, c_0)), each [directions, (K,) B, hidden_size] as the input
    leaves K out or not, whatever batch_first. lengths: [B] integers in 1..T. Every tensor on
    the device of `like` (a parameter of the layer); input and hx also in its dtype.
    """
    layout = "[(K,) B, T, M]" if batch_first else "[T, (K,) B, M]"
    if not isinstance(input, Tensor):
        raise TypeError(f"input: expected a tensor {layout}, got {type(input).__name__}")
    shape = tuple(input.shape)
    if input.dim() == 3 and population != 1:
        raise ValueError(f"a population of {population} expects a 4-d input, got {shape}")
    if input.dim() not in (3, 4) or shape[-1] != input_size:
        raise ValueError(f"expected input {layout.replace('M', str(input_size))} got {shape}")
    _same_place("input", input, like, dtype=True)
    single = input.dim() == 3
    full = shape if not single else (shape[0], 1, *shape[1:]) if not batch_first else (1, *shape)
    T, K, B = full[:3] if not batch_first else (full[2], full[0], full[1])
    if not single and K != population:
        raise ValueError(f"input has population {K}, the layer {population}")
    if T == 0 or B == 0:
        raise ValueError(f"input: expected at least one step and one sequence, got {shape}")

    if hx is not None:
        if states == 1:
            if not isinstance(hx, Tensor):
                raise TypeError(f"hx: expected a tensor, got {type(hx).__name__}")
            named = [("hx", hx)]
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != states:
                got = f"{len(hx)} items" if isinstance(hx, (tuple, list)) else type(hx).__name__
                raise TypeError(f"hx: expected a tuple of {states} tensors, got {got}")
            named = [(f"hx[{i}]", h) for i, h in enumerate(hx)]
        size = (directions, B, hidden_size) if single else (directions, population, B, hidden_size)
        axes = "(directions, batch, hidden)" if single else "(directions, K, batch, hidden)"
        for name, h in named:
            if not isinstance(h, Tensor):
                raise TypeError(f"{name}: expected a tensor, got {type(h).__name__}")
            if tuple(h.shape) != size:
                raise ValueError(f"{name}: expected size {size} {axes}, got {tuple(h.shape)}")
            _same_place(name, h, like, dtype=True)

    if lengths is not None:
        if (
            not isinstance(lengths, Tensor)
            or lengths.dim() != 1
            or len(lengths) != B
            or lengths.dtype.is_floating_point
            or lengths.dtype.is_complex
            or lengths.dtype == torch.bool
        ):
            got = (
                f"{lengths.dtype} of size {tuple(lengths.shape)}"
                if isinstance(lengths, Tensor)
                else type(lengths).__name__
            )
            raise ValueError(f"lengths: expected {B} integers (one per sequence), got {got}")
        _same_place("lengths", lengths, like, dtype=False, cpu_too=True)
        low, high = int(lengths.min()), int(lengths.max())
        if low < 1 or high > T:
            raise ValueError(f"lengths: expected values in 1..{T} (the steps), got {low}..{high}")


def _same_place(name: str, t: Tensor, like: Tensor, dtype: bool, cpu_too: bool = False) -> None:
    """t on like's device (or the CPU, where `cpu_too`) and, where `dtype`, of its dtype."""
    if t.device != like.device and not (cpu_too and t.device.type == "cpu"):
        raise ValueError(f"{name}: expected a tensor on the layer's {like.device}, got {t.device}")
    if dtype and t.dtype != like.dtype:
        raise ValueError(f"{name}: expected {like.dtype} (the layer's dtype), got {t.dtype}")


def _reverse(x: Tensor, lengths: Tensor | None) -> Tensor:
    """x [T, K, B, ...] reversed in time within each sequence's length (padding stays put)."""
    if lengths is None:
        return x.flip(0)
    t = torch.arange(x.shape[0], device=x.device)[:, None]
    lengths = lengths.to(x.device)[None, :]
    index = torch.where(t < lengths, lengths - 1 - t, t)  # [T, B]
    index = index[:, None, :, None].expand(x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    return x.gather(0, index)
