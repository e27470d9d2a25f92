"""`jsb-original`: Boulanger-Lewandowski's JSB Chorales pickle with its own 229/76/77 split.

Expected file: a pickle of a dict with keys 'train', 'valid', 'test'; each a list of
sequences; each sequence a list of time steps; each time step the MIDI pitches sounding.
Read into the same 88-key roll as `jsb` so models are comparable.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from ..errors import UserError
from .cache import cached
from .core import Benchmark
from .music import next_step_benchmark, next_step_split, piano_roll

ENV = "ODYSSEY_JSB_ORIGINAL"
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
    path = resolve(path)
    return cached("jsb-original", recipe(path), lambda: build(path))


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
