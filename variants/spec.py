"""The switches that define an LSTM variant, and the nine presets of Greff et al."""

from __future__ import annotations

from dataclasses import dataclass, fields

from . import cells

GATES = ("i", "f", "o")
# The LSTM, whose switches are below, and the gated-RNN family's registry (variants/cells.py).
CELLS = ("lstm", *cells.CELLS)


@dataclass(frozen=True)
class Spec:
    """Which parts of the peephole LSTM a variant keeps.

    Every switch defaults to the vanilla LSTM (V). A removed part has no parameters.
    `cell` other than "lstm" selects a cell of the gated-RNN family (docs/family.md), which
    takes no switches.
    """

    cell: str = "lstm"

    input_gate: bool = True
    forget_gate: bool = True
    output_gate: bool = True
    input_activation: bool = True  # g = tanh on the block input; False: g(x) = x
    output_activation: bool = True  # h = tanh on the cell state; False: h(x) = x
    peepholes: bool = True  # p_i, p_f see c(t-1); p_o sees c(t)
    coupled_input_forget: bool = False  # f = 1 - i; the forget gate has no weights of its own
    full_gate_recurrence: bool = False  # R_ab from every gate a at t-1 to every gate b at t

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        if self.cell != "lstm" and self.describe() != f"cell={self.cell}":
            raise ValueError(f"the LSTM switches do not apply to cell {self.cell!r}")
        if self.coupled_input_forget and not (self.input_gate and self.forget_gate):
            raise ValueError(
                "coupled_input_forget (f = 1 - i) needs both input_gate and forget_gate"
            )

    @property
    def gates(self) -> tuple[str, ...]:
        """Gates with weights of their own, in block order (a coupled forget gate has none)."""
        present = {
            "i": self.input_gate,
            "f": self.forget_gate and not self.coupled_input_forget,
            "o": self.output_gate,
        }
        return tuple(g for g in GATES if present[g])

    @property
    def blocks(self) -> tuple[str, ...]:
        """Pre-activation blocks of the fused weight matrices: block input z, then the gates."""
        return ("z", *self.gates)

    def describe(self) -> str:
        """The switches that differ from the vanilla LSTM, e.g. 'peepholes=False'."""
        changed = [
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if getattr(self, f.name) != f.default
        ]
        return ", ".join(changed) or "vanilla"


PRESETS: dict[str, Spec] = {
    "V": Spec(),
    "NIG": Spec(input_gate=False),
    "NFG": Spec(forget_gate=False),
    "NOG": Spec(output_gate=False),
    "NIAF": Spec(input_activation=False),
    "NOAF": Spec(output_activation=False),
    "NP": Spec(peepholes=False),
    "CIFG": Spec(coupled_input_forget=True),
    "FGR": Spec(full_gate_recurrence=True),
}
PAPER_VARIANTS = tuple(PRESETS)
PRESETS.update({cell.variant: Spec(cell=name) for name, cell in cells.CELLS.items()})
# `--variants family`: the gated-RNN family and V to compare them with.
FAMILY = ("V", *(cell.variant for cell in cells.CELLS.values()))


def register(name: str, spec: Spec) -> None:
    """Make `spec` buildable by name (e.g. register("CIFG+NP", Spec(...)))."""
    if name in PRESETS and PRESETS[name] != spec:
        raise ValueError(f"variant {name!r} is already registered with a different spec")
    PRESETS[name] = spec


def resolve(name_or_spec: str | Spec) -> Spec:
    """A Spec from a registered name (case-insensitive), a '+' combination of names such as
    'CIFG+NP' (the changes of each), or a Spec itself."""
    if isinstance(name_or_spec, Spec):
        return name_or_spec
    by_upper = {k.upper(): v for k, v in PRESETS.items()}
    specs = []
    for part in str(name_or_spec).split("+"):
        spec = by_upper.get(part.strip().upper())
        if spec is None:
            raise ValueError(f"unknown variant {part!r}; expected one of {', '.join(PRESETS)}")
        specs.append(spec)
    if len(specs) == 1:
        return specs[0]
    changes: dict[str, bool] = {}
    for spec in specs:
        for f in fields(spec):
            value = getattr(spec, f.name)
            if value != f.default and changes.setdefault(f.name, value) != value:
                raise ValueError(f"{name_or_spec!r} sets {f.name} both ways")
    return Spec(**changes)
