"""`build`: a layer of any variant or cell by name, above both layers."""

from __future__ import annotations

from collections.abc import Sequence

from .family import FamilyRNN
from .layer import VariantLSTM
from .spec import Spec, resolve


def build(
    name_or_spec: str | Spec,
    input_size: int,
    hidden_size: int | Sequence[int],
    bidirectional: bool = False,
    population: int = 1,
    batch_first: bool = False,
    **kwargs,
) -> VariantLSTM | FamilyRNN:
    """Build the named variant (V, NIG, ..., FGR, a cell of the family such as GRU, or a
    registered name) or a Spec.

    `hidden_size` may be a list of per-trial sizes; then the population is its length.
    Other keyword arguments (init_std, backend, device, dtype) go to VariantLSTM (FamilyRNN
    for the family's cells).
    """
    spec = resolve(name_or_spec)
    return (VariantLSTM if spec.cell == "lstm" else FamilyRNN)(
        spec,
        input_size,
        hidden_size,
        bidirectional=bidirectional,
        population=population,
        batch_first=batch_first,
        **kwargs,
    )
