"""`jsb-original`: Boulanger-Lewandowski's JSB Chorales pickle with its own 229/76/77 split.

Expected file: a pickle of a dict with keys 'train', 'valid', 'test'; each a list of
sequences; each sequence a list of time steps; each time step the MIDI pitches sounding.
Read into the same 88-key roll as `jsb` so models are comparable.

The paper's file is public and fixed, so the loader checks its SHA-256: a study trained on
another file (a re-export, another edition) would quietly measure something else. A user who
means to train on another file says so by naming its checksum in $ODYSSEY_JSB_ORIGINAL_SHA256,
which the refusal prints; a third file is refused again.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

from ..errors import UserError
from .cache import cached
from .core import Benchmark
from .music import next_step_benchmark, next_step_split, piano_roll

ENV = "ODYSSEY_JSB_ORIGINAL"
CHECKSUM_ENV = "ODYSSEY_JSB_ORIGINAL_SHA256"  # the SHA-256 accepted instead of the paper's file's
FILE = "jsb-chorales-quarter.pkl"
REPOSITORY = "https://github.com/czhuang/JSB-Chorales-dataset"
SIZE = 2_051_794
SHA256 = "be67b1e1d0ea22a0c64eb72db53a83dae65650a7b470ca09a34a1e43a3fb4405"
SOURCE = f"the paper's file is {FILE} from {REPOSITORY} ({SIZE:,} bytes, SHA-256 {SHA256})"
EXPECTED = (
    "a pickle of a dict with keys 'train', 'valid', 'test' holding lists of sequences of "
    "time steps of MIDI pitches (e.g. jsb-chorales-quarter.pkl or JSB_Chorales.pickle)"
)


def resolve(path: str | Path) -> Path:
    """The pickle file: `path` itself, or the one .pkl/.pickle file in a folder."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in (".pkl", ".pickle"))
        if len(found) != 1:
            raise UserError(
                f"jsb-original: expected one .pkl or .pickle file in {path}, found {len(found)}"
            )
        path = found[0]
    if not path.is_file():
        raise UserError(f"jsb-original: {path} does not exist; expected {EXPECTED}")
    return path


def recipe(path: Path) -> dict:
    stat = path.stat()
    return {
        "benchmark": "jsb-original",
        "version": 1,
        "file": str(path.resolve()),
        "size": stat.st_size,
        "mtime": stat.st_mtime_ns,
    }


def load(path: str | Path) -> Benchmark:
    """The benchmark of the file at `path`, built (and cached) first, so that a malformed
    file is named as such; then refused unless its checksum is the one expected, which its
    notes hold (`sha256`)."""
    path = resolve(path)
    bench = cached("jsb-original", recipe(path), lambda: build(path))
    bench.notes = {**bench.notes, "sha256": check_checksum(path)}
    return bench


def check_checksum(path: Path) -> str:
    """The file's SHA-256, if it is the paper's file's or the one $ODYSSEY_JSB_ORIGINAL_SHA256
    accepts instead; else a UserError saying what was found and what to do."""
    found = hashlib.sha256(path.read_bytes()).hexdigest()
    accepted = os.environ.get(CHECKSUM_ENV, "").strip().lower() or SHA256
    if found == accepted:
        return found
    expected = (
        f"{CHECKSUM_ENV}={accepted}" if accepted != SHA256 else f"the paper's file's {SHA256}"
    )
    raise UserError(
        f"jsb-original: {path} has SHA-256 {found} ({path.stat().st_size:,} bytes), not "
        f"{expected}; download {FILE} from {REPOSITORY}, or set {CHECKSUM_ENV}={found} to "
        "train on this file"
    )


def read(path: Path) -> dict[str, list]:
    try:
        with open(path, "rb") as f:
            data = pickle.load(f, encoding="latin1")
    except Exception as err:  # any unpickling failure means the file is not what we expect
        raise UserError(
            f"jsb-original: cannot unpickle {path} ({err}); expected {EXPECTED}"
        ) from err
    if not isinstance(data, dict) or not {"train", "valid", "test"} <= set(data):
        raise UserError(f"jsb-original: {path} is not {EXPECTED}")
    return data


def build(path: Path) -> Benchmark:
    data = read(path)
    splits = {}
    for s in ("train", "valid", "test"):
        if not isinstance(data[s], list):
            raise UserError(f"jsb-original: {path} {s} is not a list of sequences")
        rolls, ids = [], []
        for i, seq in enumerate(data[s]):
            where = f"{path} {s}[{i}]"
            try:
                roll = piano_roll(seq, where=where)
            except (TypeError, ValueError) as err:
                raise UserError(
                    f"jsb-original: {where} is not a list of time steps of MIDI pitches"
                ) from err
            if len(roll) < 2:
                raise UserError(
                    f"jsb-original: {where} has {len(roll)} time steps, need at least 2"
                )
            rolls.append(roll)
            ids.append(f"{s}[{i}]")
        splits[s] = next_step_split(rolls, ids)
    return next_step_benchmark("jsb-original", splits, {"source": str(path)})
