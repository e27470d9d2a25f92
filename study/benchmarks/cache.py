"""Built benchmarks on disk: one uncompressed .npz per (benchmark, recipe), no pickle.

Each trial worker loads its benchmark, so a cached load must be fast: every split is stored
as one concatenated array plus lengths, and split back into per-sequence tensor views.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from .core import Benchmark, Split

SPLITS = ("train", "valid", "test")
_SCALARS = ("name", "task", "input_size", "output_size", "bidirectional", "metric", "chance")


def data_home() -> Path:
    """Where built caches live: $ODYSSEY_DATA_HOME; else, in a source checkout, its
    datasets/ folder (beside the cards); else, installed, the user's cache directory
    ($XDG_CACHE_HOME/lstm-odyssey, by default ~/.cache/lstm-odyssey)."""
    env = os.environ.get("ODYSSEY_DATA_HOME")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "datasets").is_dir():
        return checkout / "datasets"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "lstm-odyssey"


def cache_path(name: str, recipe: dict) -> Path:
    """The file a recipe builds into: any change of recipe or package version is a new file."""
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    return data_home() / ".cache" / f"{name}-{key}.npz"


def folder_recipe(name: str, root: Path, lines: Iterable[str]) -> dict:
    """The recipe of a benchmark read from a user's folder: one line per file it uses."""
    listing = hashlib.sha256()
    for line in lines:
        listing.update(f"{line}\n".encode())
    return {
        "benchmark": name,
        "version": 1,
        "root": str(Path(root).resolve()),
        "files": listing.hexdigest(),
    }


def cached(name: str, recipe: dict, build: Callable[[], Benchmark]) -> Benchmark:
    """Load the benchmark built from `recipe`, building and saving it on first use."""
    path = cache_path(name, recipe)
    if path.exists():
        return load_npz(path)
    bench = build()
    bench.notes = {**bench.notes, "recipe": recipe}
    save_npz(bench, path)
    return bench


def summary(bench: Benchmark) -> dict:
    """What `odyssey datasets` shows: sizes per split and how the task is scored."""
    out = {k: getattr(bench, k) for k in _SCALARS}
    for s in SPLITS:
        split: Split = getattr(bench, s)
        out[s] = {"sequences": len(split), "frames": split.frames}
    return out


def save_npz(bench: Benchmark, path: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    for s in SPLITS:
        split: Split = getattr(bench, s)
        arrays[f"{s}.inputs"] = _concat(split.inputs, bench.input_size, np.float32)
        arrays[f"{s}.input_lengths"] = np.array([len(x) for x in split.inputs], dtype=np.int64)
        width = bench.output_size if bench.task == "next_step" else None
        dtype = np.float32 if bench.task == "next_step" else np.int64
        arrays[f"{s}.targets"] = _concat(split.targets, width, dtype)
        arrays[f"{s}.target_lengths"] = np.array([len(y) for y in split.targets], dtype=np.int64)
        arrays[f"{s}.ids"] = np.array(split.ids, dtype=np.str_)
    meta = {"scalars": {k: getattr(bench, k) for k in _SCALARS}, "notes": bench.notes}
    arrays["meta"] = np.array(json.dumps(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    # Several workers may build at once: write aside, then rename atomically.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is shared like any build
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_npz(path: Path) -> Benchmark:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        splits = {}
        for s in SPLITS:
            inputs = torch.from_numpy(z[f"{s}.inputs"])
            targets = torch.from_numpy(z[f"{s}.targets"])
            splits[s] = Split(
                inputs=list(inputs.split(z[f"{s}.input_lengths"].tolist())),
                targets=list(targets.split(z[f"{s}.target_lengths"].tolist())),
                ids=z[f"{s}.ids"].tolist(),
            )
    return Benchmark(**meta["scalars"], **splits, notes=meta["notes"])


def _concat(seqs: list[torch.Tensor], width: int | None, dtype) -> np.ndarray:
    shape = (0, width) if width else (0,)
    if not seqs:
        return np.zeros(shape, dtype=dtype)
    return torch.cat(list(seqs)).numpy().astype(dtype, copy=False)
