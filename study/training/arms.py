"""What a study trains: its arm, named by the part of the study name after the benchmark.

An arm is a registered cell ('V', 'CIFG+NP', 'GRU') or a cell with its forget-gate bias set
at initialisation, `<cell>-fb<x>` ('V-fb1': V with b_f = 1, Jozefowicz et al. 2015). Such an
arm trains under the run's protocol with `forget_bias` x, whatever the run's; the run's other
studies keep the run's. Every study name turns into a cell here, and nowhere else.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import variants

from .protocol import Protocol

_FORGET_BIAS = re.compile(r"(?P<cell>.+)-fb(?P<bias>.*)", re.IGNORECASE)


@dataclass(frozen=True)
class Arm:
    name: str  # as its study is named: the cell as registered, then '-fb<x>' if set
    cell: str  # the registered name of the cell, or a '+' combination of them
    forget_bias: float | None = None  # None: the run's protocol's

    @property
    def spec(self) -> variants.Spec:
        return variants.resolve(self.cell)

    def protocol(self, run: Protocol) -> Protocol:
        """The protocol this arm's trials train under: the run's, with its forget bias."""
        return run if self.forget_bias is None else replace(run, forget_bias=self.forget_bias)


def arm(name: str) -> Arm:
    """The arm a study name (after '<benchmark>/') or a `--variants` item names, spelt as
    registered ('v-FB1.0' -> 'V-fb1'). Raises ValueError saying what is wrong."""
    found = _FORGET_BIAS.fullmatch(name.strip())
    cell = _spelt(found["cell"] if found else name)
    if found is None:
        return Arm(cell, cell)
    try:
        bias = float(found["bias"])
    except ValueError:
        bias = math.nan
    if not math.isfinite(bias):
        raise ValueError(f"{name.strip()!r}: expected a number after '-fb', got {found['bias']!r}")
    if not variants.forget_biases(variants.resolve(cell)):
        raise ValueError(f"{name.strip()!r}: {cell} has no forget gate whose bias -fb could set")
    return Arm(f"{cell}-fb{repr(bias).removesuffix('.0')}", cell, bias)


def _spelt(cell: str) -> str:
    """A cell name (or '+' combination) as registered; ValueError if one is unknown."""
    variants.resolve(cell)
    spelling = {name.upper(): name for name in variants.PRESETS}
    return "+".join(spelling[part.strip().upper()] for part in cell.split("+"))
