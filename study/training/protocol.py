"""How a trial is trained: the `Protocol`, its named presets, and the record a study keeps of
it, checked when a study is run again."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace

from ..errors import OptionError, UserError
from . import tasks


@dataclass(frozen=True)
class Protocol:
    """How a trial is trained. The defaults are the paper's (docs/paper.md §4); `preset` names
    the entry of PROTOCOLS it was made from (None: built by hand)."""

    preset: str | None = None
    max_epochs: int = 150
    patience: int = 15  # stop after this many epochs without a better validation metric
    batch_size: int = 1  # > 1 groups sequences of similar length (a deviation from the paper)
    max_sequences: int | None = None  # use only the first n sequences of each split
    init_std: float = 0.1
    forget_bias: float | None = None  # initial b_f; None: drawn like every other weight
    clip_norm: float | None = None  # per-trial gradient norm clipping; None: none (paper)
    loss_reduction: str = "sum"  # over a sequence's frames: "sum" (paper) or "mean"
    eval_batch_size: int = 32  # sequences per evaluation batch (no effect on results)

    def __post_init__(self) -> None:
        for name in ("max_epochs", "patience", "batch_size", "eval_batch_size", "max_sequences"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise OptionError(name, f"must be at least 1, got {value}")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise OptionError("clip_norm", f"must be positive, got {self.clip_norm}")
        if self.forget_bias is not None and not math.isfinite(self.forget_bias):
            raise OptionError("forget_bias", f"must be finite, got {self.forget_bias}")
        if self.loss_reduction not in tasks.LOSS_REDUCTIONS:
            raise OptionError(
                "loss_reduction",
                f"must be one of {', '.join(tasks.LOSS_REDUCTIONS)}, got {self.loss_reduction!r}",
            )

    def results_fields(self) -> dict:
        """The fields that change what a trial computes (evaluation batching does not)."""
        return {k: v for k, v in asdict(self).items() if k not in ("preset", "eval_batch_size")}

    def record(self) -> dict:
        """What a study and each of its trials store of how trials are trained (their user
        attribute `protocol`): the record's shape (`RECORD_VERSION`), the preset and every
        field that changes a trial's result."""
        return {"version": RECORD_VERSION, "preset": self.preset, **self.results_fields()}


# The shape of `Protocol.record`, stored in it as `version`. Version 1 (trials written before
# studies kept their protocol, unversioned): every field but the preset, `eval_batch_size`
# included, the preset in the trial's own `preset` attribute, and no `loss_reduction` before
# frames were summed (they were averaged). Version 2: the preset and the fields that change
# results (unversioned until the version was recorded). `read_record` reads every shape as
# the current one.
RECORD_VERSION = 2


PROTOCOLS = {
    "paper": Protocol("paper"),
    "quick": Protocol("quick", max_epochs=20, patience=5),
    "smoke": Protocol("smoke", max_epochs=3, patience=2, max_sequences=24),
    # `make demo`: enough updates for trials with a learning rate of 1e-3 or more to learn. The
    # paper has no clipping; this bound is above every update of V and holds back NOAF's
    # exploding ones (unbounded cell state), so that NOAF learns in the demo too.
    "demo": Protocol("demo", max_epochs=16, patience=4, max_sequences=40, clip_norm=1000.0),
}


def protocol(name: str, **overrides) -> Protocol:
    """The preset `name` with the fields in `overrides` that are not None changed."""
    if name not in PROTOCOLS:
        raise UserError(f"unknown preset {name!r}; expected one of {', '.join(PROTOCOLS)}")
    return replace(PROTOCOLS[name], **{k: v for k, v in overrides.items() if v is not None})


def read_record(stored: dict, preset: str | None = None) -> dict:
    """A stored protocol record in the current shape, `version` saying which shape it was
    stored in: a version 1 record (no `preset` key) gets the `preset` given (the trial's own
    attribute) and loses `eval_batch_size`; one without `loss_reduction` averaged frames."""
    if "preset" in stored:
        return {"version": RECORD_VERSION, **stored}
    fields = {k: v for k, v in stored.items() if k != "eval_batch_size"}
    return {"version": 1, "preset": preset, "loss_reduction": "mean", **fields}


def stored_record(study_attrs: dict, complete_trials_attrs: Iterable[dict]) -> dict | None:
    """The record (`Protocol.record`) a study was run with, from its user attributes, in the
    current shape (`read_record`). A study made before studies kept it is read from its first
    complete trial."""
    if "protocol" in study_attrs:
        return read_record(study_attrs["protocol"])
    for attrs in complete_trials_attrs:
        if "protocol" in attrs:
            return read_record(attrs["protocol"], attrs.get("preset"))
    return None


def check_record(name: str, stored: dict, wanted: dict) -> None:
    """One line naming every difference between a study's protocol and this run's (records
    in the current shape; the shape's version is no difference)."""
    keys = [k for k in {**stored, **wanted} if k != "version" and stored.get(k) != wanted.get(k)]
    if keys:
        was = ", ".join(f"{k} {stored.get(k)}" for k in keys)
        now = ", ".join(f"{k} {wanted.get(k)}" for k in keys)
        raise UserError(
            f"study {name} was run with {was}, not {now}: rerun it with the same options, "
            "or give another --storage for the new protocol"
        )
