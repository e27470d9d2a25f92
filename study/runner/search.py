"""The search: the paper's hyperparameter space, the N configurations of a study drawn from
it, and the studies that hold them, one per (benchmark, variant), named
`<benchmark>/<variant>`.

By default every variant of a benchmark trains the same N configurations (hidden size,
learning rate, momentum, input noise and the trial's seed), drawn once from (benchmark,
seed): common random numbers. Each variant still sees an i.i.d. sample of the paper's
distributions, and V and a variant can be compared configuration by configuration. The
`independent` sample draws each variant's own from (study name, seed), as the paper did and
as storages made before shared samples were.

A study remembers how its configurations were sampled (scheme, sampler, seed, N, band size)
and the protocol its trials are trained with, and refuses a run that would mix in trials
sampled or trained another way. A study with other parameters or objectives is another
application's: it is refused, never adopted.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ..benchmarks.metrics import metric_of
from ..errors import UserError
from ..training.protocol import check_record, stored_record
from ..training.trainer import TrialConfig
from .locks import study_lock
from .options import SAMPLERS

SEARCH_SPACE = {
    "hidden_size": IntDistribution(20, 200, log=True),
    "learning_rate": FloatDistribution(1e-6, 1e-2, log=True),
    "one_minus_momentum": FloatDistribution(0.01, 1.0, log=True),
    "input_noise": FloatDistribution(0.0, 1.0),
}


def momentum_of(one_minus_momentum: float) -> float:
    """The momentum of a sampled configuration: the space samples 1 - momentum, log-uniform,
    so that momenta near 1 are as likely as near 0 (docs/paper.md)."""
    return 1.0 - one_minus_momentum


def study_name(benchmark: str, variant: str) -> str:
    return f"{benchmark}/{variant}"


def stable_seed(*parts: object) -> int:
    """A seed from names and numbers that is the same in every process and on every machine."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def sample_source(name: str, attrs: dict) -> str:
    """What a study's seeds are drawn from besides --seed: its benchmark for the shared sample,
    its own name for an independent one (studies that record no scheme predate the shared
    sample and are independent)."""
    if attrs.get("sample", "independent") == "shared":
        return name.rpartition("/")[0]
    return name


def sample_configs(n: int, sampler: str, seed: int) -> list[dict]:
    """N parameter sets drawn by an Optuna sampler over the paper's distributions."""
    if sampler == "random":
        source = optuna.samplers.RandomSampler(seed=seed)
    elif sampler == "qmc":
        source = optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed)
    else:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    draft = optuna.create_study(sampler=source)
    configs = []
    for _ in range(n):
        trial = draft.ask(SEARCH_SPACE)
        configs.append(trial.params)
        draft.tell(trial, 0.0)
    return configs


def trial_config(trial: FrozenTrial) -> TrialConfig:
    """What training needs of a trial: its parameters (momentum from the sampled
    1 - momentum) and its own seed."""
    p = trial.params
    return TrialConfig(
        hidden_size=int(p["hidden_size"]),
        learning_rate=float(p["learning_rate"]),
        momentum=momentum_of(float(p["one_minus_momentum"])),
        input_noise=float(p["input_noise"]),
        seed=int(trial.user_attrs["seed"]),
    )


@dataclass(frozen=True)
class TrialRecord:
    """What a COMPLETE trial stores as user attributes, beside its value (the best validation
    metric) and its validation curve (intermediate values at epochs 1, 2, ...). Its one-value
    fields are columns of the trials table; docs/cli.md lists them all."""

    test_metric: float  # of the best validation epoch's weights
    best_epoch: int
    epochs: int  # trained
    diverged: bool
    n_params: int
    seconds: float  # its share: per epoch, the population's time / the trials trained in it
    population: float  # trials trained together with it (itself included), mean over epochs
    test_curve: list[float]  # per epoch
    train_curve: list[float]  # mean training loss per update, per epoch
    device: str
    preset: str
    protocol: dict
    versions: dict  # of torch, optuna and this package


def own_seconds(attrs: dict) -> float | None:
    """A trial's own share of training time from its user attributes. Version 0.1 stored its
    population's time (`seconds`) and size (`population`) instead."""
    seconds, population = attrs.get("seconds"), attrs.get("population")
    versions = attrs.get("versions")
    old = isinstance(versions, dict) and str(versions.get("lstm-odyssey", "")).startswith("0.1")
    if old and isinstance(seconds, (int, float)) and isinstance(population, (int, float)):
        return seconds / max(population, 1)
    return seconds


def foreign_reason(study: optuna.Study, trials: Sequence[FrozenTrial] | None = None) -> str | None:
    """Why a study is not this tool's, or None: one objective to minimise, and every trial
    over the paper's parameters. `trials`: the study's, where the caller has read them."""
    directions = study.directions
    if directions != [StudyDirection.MINIMIZE]:
        shown = ", ".join(d.name.lower() for d in directions)
        return f"its objectives are {shown}, not one value to minimize"
    for trial in study.get_trials(deepcopy=False) if trials is None else trials:
        if set(trial.distributions) != set(SEARCH_SPACE):
            shown = ", ".join(sorted(trial.distributions)) or "none"
            return f"its parameters are {shown}, not {', '.join(SEARCH_SPACE)}"
    return None


def objective_name(benchmark: str) -> str:
    """What a study's value is, as optuna-dashboard and `optuna.visualization` label it."""
    return f"best {metric_of(benchmark).label('validation')}"


def sampled_like(storage: optuna.storages.BaseStorage, benchmark: str) -> tuple[str, int] | None:
    """The sample scheme and band size of the studies of `benchmark` already in the storage
    (None if it has none): every study of a benchmark shares them."""
    found = None
    for frozen in storage.get_all_studies():
        attrs = frozen.user_attrs
        if frozen.study_name.rpartition("/")[0] != benchmark or "n_trials" not in attrs:
            continue
        found = (attrs.get("sample", "independent"), attrs.get("band_size"))
        if found[1] is not None:
            break
    return found


def prepare_study(
    storage: optuna.storages.RDBStorage,
    benchmark: str,
    variant: str,
    *,
    n_trials: int,
    sampler: str,
    seed: int,
    sample: str | None,
    band_size: int,
    protocol: dict | None = None,
    data_sha256: str | None = None,
) -> optuna.Study:
    """Create the study, or load it and check it is this tool's and sampled and trained as
    asked; then record N (which may grow, never shrink), the sampler, the seed, the sample
    scheme and band size of the benchmark's studies in this storage (`sample` None: theirs,
    shared if there are none; `band_size` where they have none), `protocol` (see
    `Protocol.record`) and the checksum of the benchmark's data file (`data_sha256`, which a
    study keeps). Its trials are queued by `retries.reconcile`."""
    name = study_name(benchmark, variant)
    with study_lock(storage, name):
        stored_scheme, stored_band = sampled_like(storage, benchmark) or (None, None)
        if sample is not None and stored_scheme not in (None, sample):
            raise UserError(
                f"the {benchmark} studies in this storage have the {stored_scheme} sample, not "
                f"--sample {sample}: give another --storage for a {sample} sample"
            )
        try:
            study = optuna.create_study(study_name=name, storage=storage, direction="minimize")
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=storage)
        reason = foreign_reason(study)
        if reason is not None:
            raise UserError(
                f"study {name} in this storage is not one of this tool's ({reason}); "
                "give another --storage"
            )
        attrs = study.user_attrs
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        stored = stored_record(study.user_attrs, (t.user_attrs for t in complete))
        if protocol is not None and stored is not None:
            check_record(name, stored, protocol)
        if attrs.get("n_trials", 0) > n_trials:
            raise UserError(
                f"study {name} already holds {attrs['n_trials']} trials; --trials {n_trials} "
                "cannot shrink it"
            )
        if attrs.get("seed", seed) != seed:
            raise UserError(f"study {name} was sampled with --seed {attrs['seed']}, not {seed}")
        if attrs.get("sampler", sampler) != sampler:
            raise UserError(
                f"study {name} was sampled with --sampler {attrs['sampler']}, not {sampler}"
            )
        if attrs.get("data_sha256", data_sha256) != data_sha256:
            raise UserError(
                f"study {name} was trained on data with SHA-256 {attrs['data_sha256']}, not "
                f"{data_sha256}: give the same file, or another --storage"
            )
        if study.metric_names is None:  # outside clients show the name, not "Objective 0"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([objective_name(benchmark)])
        wanted = {
            "n_trials": n_trials,
            "sampler": sampler,
            "seed": seed,
            "sample": stored_scheme or sample or "shared",
            "band_size": attrs.get("band_size", stored_band or band_size),
        }
        if protocol is not None and "protocol" not in attrs:
            wanted["protocol"] = protocol
        if data_sha256 is not None:
            wanted["data_sha256"] = data_sha256
        for key, value in wanted.items():
            if attrs.get(key) != value:
                study.set_user_attr(key, value)
    return study
