"""What one `odyssey run` is asked to do, checked in one place.

The command line takes its defaults from `RunOptions`, so this module imports nothing heavy:
`odyssey --help` stays fast.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..errors import OptionError
from ..training.devices import check_device

if TYPE_CHECKING:
    from ..training.protocol import Protocol

DEFAULT_STORAGE = "sqlite:///results/odyssey.db"
DEFAULT_PRESET = "paper"  # a name in study.training.protocol.PROTOCOLS
SAMPLERS = ("random", "qmc")
SAMPLE_SCHEMES = ("shared", "independent")  # see study.runner.search


@dataclass(frozen=True)
class RunOptions:
    """One run of the random search. Each field is named as its option (`trials` is
    `--trials`), so that the OptionError a bad value raises names the option the user gave."""

    benchmark: str
    variants: tuple[str, ...]
    protocol: Protocol  # its preset is the run's (`preset`)
    trials: int = 200  # per variant, the paper's number
    storage: str = DEFAULT_STORAGE
    workers: int = 1  # 1: train in the coordinator's own process
    population: int | None = None  # trials trained together (K); None: see `resolved`
    device: str = "auto"  # see study.training.devices
    seed: int = 0
    sampler: str = "random"
    sample: str | None = None  # shared or independent; None: the storage's, shared if new
    data: str | None = None  # user data of the benchmark
    checkpoints: str | None = None  # None: beside a SQLite file (study.runner.queue)
    heartbeat: int = 30  # seconds; a trial silent for 2 x + 1 s is another's to retry
    time_limit: float | None = None  # seconds; then stop as on Ctrl-C

    def __post_init__(self) -> None:
        """Every field checked, types first, before anything reads or writes: the Python
        API passes values as given, and a value stored by a run binds every later one."""
        for name in ("benchmark", "storage", "device", "sampler"):
            _check_type(name, getattr(self, name), str, "a text")
        for name in ("sample", "data", "checkpoints"):
            value = getattr(self, name)
            if isinstance(value, os.PathLike):  # a path given as a Path: kept as its text
                object.__setattr__(self, name, value := os.fspath(value))
            if value is not None:
                _check_type(name, value, str, "a text")
        for name in ("trials", "workers", "heartbeat", "population", "seed"):
            value = getattr(self, name)
            if value is None and name == "population":
                continue
            _check_type(name, value, int, "a whole number")
            if name != "seed" and value < 1:
                raise OptionError(name, f"must be at least 1, got {value}")
        if self.time_limit is not None:
            _check_type("time_limit", self.time_limit, (int, float), "a number of seconds")
            if not 0 < self.time_limit < math.inf:
                raise OptionError(
                    "time_limit", f"must be a positive number of seconds, got {self.time_limit}"
                )
        from .. import benchmarks  # imports torch: only once the plain values are checked

        if self.benchmark not in benchmarks.names():
            raise OptionError(
                "benchmark",
                f"unknown benchmark {self.benchmark!r}; expected one of "
                f"{', '.join(benchmarks.names())}",
            )
        if self.sampler not in SAMPLERS:
            raise OptionError(
                "sampler", f"must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}"
            )
        if self.sample is not None and self.sample not in SAMPLE_SCHEMES:
            raise OptionError(
                "sample", f"must be one of {', '.join(SAMPLE_SCHEMES)}, got {self.sample!r}"
            )
        check_device(self.device)
        if not isinstance(self.variants, tuple) or not all(
            isinstance(v, str) for v in self.variants
        ):
            raise OptionError("variants", f"must be a tuple of names, got {self.variants!r}")
        if not self.variants:
            raise OptionError("variants", "must name at least one variant")
        from ..training.arms import arm  # imports torch, as the benchmarks did

        for name in self.variants:
            try:
                arm(name)
            except ValueError as err:
                raise OptionError("variants", str(err)) from None
        from ..training.protocol import Protocol

        _check_type("protocol", self.protocol, Protocol, "a Protocol")
        from .storage import parse_url  # imports optuna: only once options are checked

        parse_url(self.storage)

    def resolved(self) -> RunOptions:
        """These options as the run trains with them: the device resolved (auto: a GPU if
        torch sees one; one torch lacks is refused) and the population size K given (16 on
        CPU, 64 on a GPU). Resolving resolved options changes nothing: `run` resolves what it
        is given, and the command line resolves first, to say the device and K at once."""
        from ..training.trainer import resolve_device  # imports torch

        device = resolve_device(self.device)
        population = self.population or (64 if device.type == "cuda" else 16)
        return replace(self, device=str(device), population=population)

    @property
    def preset(self) -> str | None:
        """The preset the protocol was made from (`--preset`)."""
        return self.protocol.preset

    @property
    def grace(self) -> int:
        """Seconds after its last heartbeat that a running trial counts as abandoned."""
        return 2 * self.heartbeat + 1


def resolve_variants(text: str) -> tuple[str, ...]:
    """Study arms from `--variants`: a comma-separated list of variant names, '+'
    combinations, cells with a forget-gate bias ('V-fb1', see `study.training.arms`), 'all'
    (the paper's nine) and 'family' (V and the gated-RNN family), spelt as registered
    ('cifg+np' -> 'CIFG+NP'), each once."""
    import variants  # imports torch: only once a list is parsed

    from ..training.arms import arm

    groups = {"ALL": variants.PAPER_VARIANTS, "FAMILY": variants.FAMILY}
    names = []
    for item in text.split(","):
        if not item.strip():
            continue
        if item.strip().upper() in groups:
            names += [n for n in groups[item.strip().upper()] if n not in names]
            continue
        try:
            name = arm(item).name
        except ValueError as err:
            raise OptionError("variants", str(err)) from None
        if name not in names:
            names.append(name)
    if not names:
        raise OptionError("variants", "needs a comma-separated list of variants, 'all' or 'family'")
    return tuple(names)


def _check_type(field: str, value: object, kind: type | tuple[type, ...], said: str) -> None:
    """One line unless `value` is of `kind` (a bool is no number, though Python's int)."""
    if not isinstance(value, kind) or isinstance(value, bool):
        raise OptionError(field, f"must be {said}, got {value!r}")
