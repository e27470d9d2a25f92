"""The gated-RNN family beside the LSTM: GRU, MGU, minGRU, minLSTM and xLSTM's sLSTM.

One layer for every cell, with VariantLSTM's call convention (torch.nn.GRU's for cells whose
state is h alone), its population axis, padding and masking, and weight views by name.
Each cell is a few pre-activation blocks b computed from the input, W_b x + b_b (for all
steps at once), plus, for cells whose gates see the past, R_b h(t-1). Equations, sources
and parameter counts: docs/family.md.
"""

from __future__ import annotations

from torch import Tensor

from . import layer
from .cells import CELLS, Cell, plain_recurrence
from .spec import Spec

__all__ = ["CELLS", "Cell", "FamilyRNN", "forget_biases", "n_params", "plain_recurrence"]

PATHS = layer.FAMILY_BACKENDS
# Cells with a time loop, numbered as csrc/family.cpp and triton_family's kernels number
# them, and the activations each loop saves per unit and step for its backward: the registry's.
LOOP_CODE = {name: cell.loop for name, cell in CELLS.items() if cell.loop is not None}
SAVED = {name: cell.saved for name, cell in CELLS.items() if cell.loop is not None}


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


class FamilyRNN(layer.RecurrentLayer):
    """A family cell with torch.nn.GRU's call convention (sLSTM: torch.nn.LSTM's, with four
    states) and VariantLSTM's population axis.

    Input [T, B, M] (or [B, T, M] with batch_first), or [T, K, B, M] (or [K, B, T, M]) for a
    population of K trials. Returns the output [T, (K,) B, D*N] and the last state h_T
    [D, (K,) B, N]; sLSTM returns (h_T, c_T, n_T, m_T) and takes such a tuple as hx. Trials
    may have different hidden sizes: padded units are exactly zero in every output and
    state, and get zero gradient.
    """

    backends = layer.FAMILY_BACKENDS
    parameter_names = ("weight_ih", "bias", "weight_hh", "bias_hh")

    @property
    def cell(self) -> Cell:
        return CELLS[self.spec.cell]

    @property
    def states(self) -> int:
        return len(self.cell.states)

    def _layout(self) -> dict[str, tuple[int, int | str | None]]:
        nb, nr = len(self.cell.blocks), len(self.cell.recurrent)
        layout = {"weight_ih": (nb, "input"), "bias": (nb, None)}
        if nr:
            layout["weight_hh"] = (nr, 1)
        if self.cell.recurrent_bias:
            layout["bias_hh"] = (nr, None)
        return layout

    def n_params(self) -> list[int]:
        """Trainable parameters of each trial at its own hidden size (padding not counted)."""
        D = len(self._suffixes)
        return [D * n_params(self.spec, self.input_size, n) for n in self.hidden_sizes]

    def paper_weights(self, grad: bool = False) -> dict[str, Tensor]:
        """Views of the parameters by the names of docs/family.md (or of their gradients):
        W_b [N, M] and b_b [N] for each block b, R_b [N, N] for each recurrent one and
        GRU's c_b [N]; a leading K for populations; reverse direction suffixed '_reverse'.
        Writing into a view changes the model."""
        return super().paper_weights(grad)

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
        S = self.states
        if S > 1 and isinstance(hx, (tuple, list)) and len(hx) != S:
            raise ValueError(f"hx of {self.spec.cell} holds {S} states, got {len(hx)}")
        return super().forward(input, hx, lengths)

    def _recurrence(
        self, path: str, pre_x: Tensor, params: dict[str, Tensor | None], states: tuple[Tensor, ...]
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        run = layer.family_recurrence(path)
        return run(self.spec.cell, pre_x, params["weight_hh"], params["bias_hh"], states)

    def _describe(self) -> str:
        return self.spec.cell
