"""The paper's training protocol (`protocol.Protocol`), for a population of trials trained
at once.

Each trial has its own hidden size, learning rate, momentum, input noise and seed; all
trials of a population see the same sequence order. A trial's whole state (weights,
optimizer velocity, noise generator, epoch, best so far) is kept at its own size between
epochs, and the active trials are packed into one population model for each epoch. So
stopped trials cost nothing, trials can join at any epoch boundary, and a trial trained in
a population equals the same trial trained alone.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

import variants

from ..benchmarks.core import Benchmark, Split
from ..errors import UserError
from . import tasks
from .arms import arm
from .devices import check_device
from .optim import PopulationNesterov
from .protocol import PROTOCOLS, Protocol


@dataclass(frozen=True)
class TrialConfig:
    hidden_size: int
    learning_rate: float
    momentum: float
    input_noise: float
    seed: int


@dataclass
class TrialResult:
    value: float  # validation metric at the best epoch (inf: no epoch had a finite one)
    test_metric: float  # test metric of the same epoch's weights (inf with value inf)
    best_epoch: int  # 1-based; 0 only when no epoch had a finite validation metric
    epochs: int  # epochs trained
    diverged: bool
    seconds: float  # its share: per epoch, the population's time / the trials trained in it
    population: float  # trials trained together with it (itself included), mean over epochs
    n_params: int
    valid_curve: list[float]  # per epoch 1..epochs
    test_curve: list[float]
    train_curve: list[float]  # mean training loss per update


@dataclass
class TrialState:
    """Everything needed to continue a trial from an epoch boundary."""

    config: TrialConfig
    params: dict[str, Tensor]  # the paper's names + head.weight/head.bias, at the trial's size
    velocity: dict[str, Tensor]
    noise_state: Tensor  # state of the trial's input-noise generator
    epoch: int = 0
    # Until a trained epoch has a finite validation metric, the trial has learned nothing:
    # both metrics are +inf, worse than any result, and it ranks last (not left out).
    best_value: float = math.inf
    test_at_best: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[tuple[float, float]] = field(default_factory=list)  # (valid, test) per epoch
    train_losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    diverged: bool = False
    done: bool = False
    seconds: float = 0.0  # its share of its populations' time
    population_sum: int = 0  # over its epochs, the trials trained in its population
    n_params: int = 0

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: a crash while saving leaves the previous checkpoint intact.
        Through a Python file, so that a full disk or a read-only folder raises OSError,
        saying so (torch.save given a path raises a RuntimeError that does not)."""
        tmp = f"{path}.tmp"
        try:
            with open(tmp, "wb") as file:
                torch.save({**asdict(self), "config": asdict(self.config)}, file)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)  # a part written to a full disk holds its space
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrialState:
        state = torch.load(path, weights_only=True)
        return cls(**{**state, "config": TrialConfig(**state["config"])})

    def result(self) -> TrialResult:
        return TrialResult(
            value=self.best_value,
            test_metric=self.test_at_best,
            best_epoch=self.best_epoch,
            epochs=self.epoch,
            diverged=self.diverged,
            seconds=self.seconds,
            population=self.population_sum / self.epoch if self.epoch else 0.0,
            n_params=self.n_params,
            valid_curve=[v for v, _ in self.history],
            test_curve=[t for _, t in self.history],
            train_curve=list(self.train_losses),
        )


class PopulationModel(nn.Module):
    """A variant layer of K trials and a per-trial linear read-out."""

    def __init__(self, lstm: variants.VariantLSTM | variants.FamilyRNN, output_size: int) -> None:
        super().__init__()
        self.lstm = lstm
        D = 2 if lstm.bidirectional else 1
        K, N = lstm.population, lstm.hidden_size
        self.head_weight = nn.Parameter(lstm.weight_ih.new_zeros(K, D, N, output_size))
        self.head_bias = nn.Parameter(lstm.weight_ih.new_zeros(K, output_size))

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x [T, K, B, M] -> logits [T, K, B, O]."""
        out, _ = self.lstm(x, lengths=lengths)
        T, K, B, DN = out.shape
        flat = out.permute(1, 0, 2, 3).reshape(K, T * B, DN)
        logits = torch.baddbmm(self.head_bias[:, None], flat, self.head_weight.flatten(1, 2))
        return logits.view(K, T, B, -1).permute(1, 0, 2, 3)

    def slots(self, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        """Views [K, ...] by the paper's names into tensors shaped like the parameters."""
        lstm = {n.removeprefix("lstm."): t for n, t in tensors.items() if n.startswith("lstm.")}
        views = self.lstm.paper_views(lstm)
        if self.lstm.population == 1:
            views = {k: v.unsqueeze(0) for k, v in views.items()}
        return {**views, "head.weight": tensors["head_weight"], "head.bias": tensors["head_bias"]}


def _own(view: Tensor, like: Tensor) -> Tensor:
    """The corner of a padded per-trial view that holds a trial of `like`'s shape."""
    return view[tuple(slice(0, s) for s in like.shape)]


class PopulationTrainer:
    """Trains trials of one variant on one benchmark together, epoch by epoch. A variant
    given by name is an arm (`arms.arm`): 'V-fb1' trains V under `protocol` with b_f = 1."""

    def __init__(
        self,
        benchmark: Benchmark,
        variant: str | variants.Spec,
        protocol: Protocol = PROTOCOLS["paper"],
        *,
        device: str = "auto",
        dtype: torch.dtype = torch.float32,
        order_seed: int = 0,
    ) -> None:
        if isinstance(variant, str):
            named = arm(variant)
            variant, protocol = named.spec, named.protocol(protocol)
        self.benchmark = benchmark
        self.spec = variant
        self.protocol = protocol
        self.device = resolve_device(device)
        self.dtype = dtype
        self.order_seed = order_seed
        self.epoch = 0  # epochs this population has run; seeds the sequence order
        self.trials: list[TrialState] = []
        cap = protocol.max_sequences
        self.train_batches = self._batches(benchmark.train, protocol.batch_size, cap)
        self.valid_batches = self._batches(benchmark.valid, protocol.eval_batch_size, cap)
        self.test_batches = self._batches(benchmark.test, protocol.eval_batch_size, cap)

    # --- trials -----------------------------------------------------------------------

    def add(self, config: TrialConfig) -> TrialState:
        """A new trial, initialised from its own seed (so independent of the population)."""
        if not 1 <= config.hidden_size:
            raise UserError(f"hidden_size must be positive, got {config.hidden_size}")
        model = self._model([config.hidden_size], device="cpu")
        gen = torch.Generator().manual_seed(config.seed)
        params = {}
        for name, view in sorted(model.slots(dict(model.named_parameters())).items()):
            value = torch.randn(view.shape[1:], generator=gen, dtype=self.dtype)
            params[name] = value * self.protocol.init_std
        forget_bias = self.protocol.forget_bias
        if forget_bias is not None:
            coefficients = variants.forget_biases(self.spec)
            for name in params:
                coefficient = coefficients.get(name.removesuffix("_reverse"))
                if coefficient is not None:
                    params[name].fill_(coefficient * forget_bias)
        noise = torch.Generator(device=self.device).manual_seed(config.seed)
        D = 2 if self.benchmark.bidirectional else 1
        n_head = D * config.hidden_size * self.benchmark.output_size + self.benchmark.output_size
        state = TrialState(
            config=config,
            params=params,
            velocity={k: torch.zeros_like(v) for k, v in params.items()},
            noise_state=noise.get_state(),
            n_params=model.lstm.n_params()[0] + n_head,
        )
        self.trials.append(state)
        return state

    def add_state(self, state: TrialState) -> TrialState:
        """Continue a trial from a saved state. The population takes the epoch of its first
        trial, so that the sequence order goes on as if training had not stopped."""
        if not self.trials:
            self.epoch = state.epoch
        elif state.epoch != self.epoch:
            raise ValueError(
                f"a trial at epoch {state.epoch} cannot join a population at epoch {self.epoch}"
            )
        self.trials.append(state)
        return state

    @property
    def active(self) -> list[TrialState]:
        return [t for t in self.trials if not t.done]

    # --- training ---------------------------------------------------------------------

    def run(self, on_epoch: Callable[[PopulationTrainer], None] | None = None) -> list[TrialResult]:
        """Train until every trial has stopped; `on_epoch` runs after each epoch."""
        while self.active:
            self.train_epoch()
            if on_epoch is not None:
                on_epoch(self)
        return [t.result() for t in self.trials]

    def train_epoch(self) -> None:
        """One epoch for every active trial: pack, train, evaluate, update, unpack."""
        states = self.active
        if not states:
            return
        start = time.perf_counter()
        population = self.pack(states)
        diverged = torch.zeros(len(states), dtype=torch.bool, device=self.device)
        total = torch.zeros(len(states), dtype=torch.float64, device=self.device)
        n = len(self.train_batches)
        for i in np.random.default_rng([self.order_seed, self.epoch]).permutation(n):
            bad, loss = population.step(self.train_batches[i])
            diverged |= bad
            total += loss
        diverged = (diverged | ~_finite_per_trial(population.optimizer.params)).cpu()
        # A diverged trial's weights are those of its last finite update (the optimizer
        # freezes it), so its last epoch is evaluated like any other.
        valid = population.evaluate(self.valid_batches)
        test = population.evaluate(self.test_batches)
        seconds = time.perf_counter() - start
        population.unpack()
        self.epoch += 1
        for k, (state, train_loss) in enumerate(zip(states, (total / n).tolist())):
            state.epoch += 1
            state.seconds += seconds / len(states)
            state.population_sum += len(states)
            state.train_losses.append(train_loss)
            self._record(state, valid[k], test[k])
            if diverged[k] or not math.isfinite(valid[k]):
                state.diverged = state.done = True

    def _record(self, state: TrialState, valid: float, test: float) -> None:
        """The epoch just trained. Only trained epochs are candidates for the best one (the
        paper picks the best validation epoch of training), so best_epoch >= 1."""
        state.history.append((valid, test))
        if valid < state.best_value:
            state.best_value, state.test_at_best = valid, test
            state.best_epoch, state.bad_epochs = state.epoch, 0
        else:
            state.bad_epochs += 1
        if state.bad_epochs >= self.protocol.patience or state.epoch >= self.protocol.max_epochs:
            state.done = True

    # --- packing trials into a population -----------------------------------------------

    def _model(self, hidden_sizes: list[int], device) -> PopulationModel:
        lstm = variants.build(
            self.spec,
            self.benchmark.input_size,
            hidden_sizes,
            bidirectional=self.benchmark.bidirectional,
            device=device,
            dtype=self.dtype,
        )
        return PopulationModel(lstm, self.benchmark.output_size).to(device)

    def pack(self, states: list[TrialState]) -> Population:
        """The trials' own states packed into one population model for an epoch."""
        return Population(self, states)

    # --- batches ---------------------------------------------------------------------------

    def _batches(self, split: Split, size: int, cap: int | None) -> list[tasks.Batch]:
        """Batches of sequences of similar length, on the device."""
        n = len(split) if cap is None else min(cap, len(split))
        by_length = sorted(range(n), key=lambda i: len(split.inputs[i]))
        chunks = (
            [by_length[i : i + size] for i in range(0, n, size)]
            if size > 1
            else [[i] for i in range(n)]
        )
        return [
            tasks.collate(
                self.benchmark.task,
                [split.inputs[i].to(self.dtype) for i in chunk],
                [
                    split.targets[i].to(self.dtype)
                    if self.benchmark.task == "next_step"
                    else split.targets[i]
                    for i in chunk
                ],
            ).to(self.device)
            for chunk in chunks
        ]


class Population:
    """Trials packed into one model for an epoch: the model, the optimizer with each
    trial's learning rate, momentum and velocity, and each trial's input-noise generator.
    `unpack` writes everything back into the trials' own states at their own sizes."""

    def __init__(self, trainer: PopulationTrainer, states: list[TrialState]) -> None:
        self.trainer, self.states = trainer, states
        device = trainer.device
        self.model = trainer._model([s.config.hidden_size for s in states], device)
        params = dict(self.model.named_parameters())
        velocity = {n: torch.zeros_like(p) for n, p in params.items()}
        with torch.no_grad():
            for tensors, attr in ((params, "params"), (velocity, "velocity")):
                views = self.model.slots({n: t.detach() for n, t in tensors.items()})
                for name, view in views.items():
                    for k, state in enumerate(states):
                        own = getattr(state, attr)[name]
                        _own(view[k], own).copy_(own)
        self.optimizer = PopulationNesterov(
            list(params.values()),
            lr=torch.tensor([s.config.learning_rate for s in states]),
            momentum=torch.tensor([s.config.momentum for s in states]),
            velocity=list(velocity.values()),
        )
        self.noise = []
        for state in states:
            gen = torch.Generator(device=device)
            gen.set_state(state.noise_state)
            self.noise.append(gen)

    def step(self, batch: tasks.Batch) -> tuple[Tensor, Tensor]:
        """One update of every trial on one batch; returns which trials' loss was not finite
        and every trial's loss (both on the device)."""
        trainer, opt = self.trainer, self.optimizer
        T, B, M = batch.inputs.shape
        x = batch.inputs[:, None].expand(T, len(self.states), B, M)
        stds = [s.config.input_noise for s in self.states]
        if any(stds):
            # Each trial's noise from its own generator (the numbers it would draw alone) into
            # one buffer, then one scale and one add: about K + 3 launches, not 3 K (on a GPU
            # the step is launch-bound).
            noise = x.new_zeros(len(self.states), T, B, M)
            for k, (std, g) in enumerate(zip(stds, self.noise)):
                if std > 0:
                    torch.randn((T, B, M), generator=g, out=noise[k])
            x = x + noise.permute(1, 0, 2, 3) * x.new_tensor(stds)[:, None, None]
        opt.lookahead()
        logits = self.model(x, batch.lengths)
        loss = tasks.loss(trainer.benchmark.task, logits, batch, trainer.protocol.loss_reduction)
        bad = ~torch.isfinite(loss.detach()) & opt.active  # on the device: no sync per step
        opt.active &= ~bad
        loss.sum().backward()
        if trainer.protocol.clip_norm is not None:
            _clip_per_trial(opt.params, trainer.protocol.clip_norm)
        opt.step()
        opt.zero_grad()
        return bad, loss.detach()

    @torch.no_grad()
    def evaluate(self, batches: list[tasks.Batch]) -> list[float]:
        """Each trial's metric over the batches, without input noise."""
        model = self.model
        model.eval()
        K = model.lstm.population
        num = torch.zeros(K, dtype=torch.float64)
        den = torch.zeros(K, dtype=torch.float64)
        for batch in batches:
            T, B, M = batch.inputs.shape
            logits = model(batch.inputs[:, None].expand(T, K, B, M), batch.lengths)
            n, d = tasks.metric(self.trainer.benchmark.task, logits, batch)
            num += n
            den += d
        model.train()
        return (num / den).tolist()

    def unpack(self) -> None:
        names = [n for n, _ in self.model.named_parameters()]
        params = self.model.slots({n: p.detach() for n, p in self.model.named_parameters()})
        velocity = self.model.slots(dict(zip(names, self.optimizer.velocity)))
        for k, state in enumerate(self.states):
            for name, own in state.params.items():
                own.copy_(_own(params[name][k], own))
                state.velocity[name].copy_(_own(velocity[name][k], own))
            state.noise_state = self.noise[k].get_state()


def resolve_device(device: str) -> torch.device:
    if check_device(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("device 'cuda' was asked for but torch sees no CUDA device")
    return torch.device(device)


@torch.no_grad()
def _clip_per_trial(params: list[Tensor], max_norm: float) -> None:
    norms = torch.stack([p.grad.flatten(1).square().sum(1) for p in params]).sum(0).sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(scale.view(-1, *([1] * (p.dim() - 1))))


@torch.no_grad()
def _finite_per_trial(params: list[Tensor]) -> Tensor:
    return torch.stack([torch.isfinite(p).flatten(1).all(1) for p in params]).all(0)
