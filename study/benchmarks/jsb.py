"""`jsb`: JSB Chorales rebuilt from the Bach chorales in music21's corpus (no download).

One frame per quarter note holding the pitches sounding on that beat, soprano/alto/tenor/bass
chosen by part name, each chorale transposed so its tonic is C by the nearest shift,
88-key binary roll. Files that are not four-voice chorales are skipped and listed in the notes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import math
from pathlib import Path

import numpy as np

from ..errors import UserError
from .cache import cached
from .core import Benchmark
from .music import next_step_benchmark, next_step_split, piano_roll

VOICES = ("Soprano", "Alto", "Tenor", "Bass")
SCORE_SUFFIXES = (".mxl", ".xml", ".krn")  # the .rntxt files beside them are analyses
FRACTIONS = (0.6, 0.2, 0.2)


def recipe() -> dict:
    return {
        "benchmark": "jsb",
        "version": 1,
        "music21": _music21_version(),
        "voices": VOICES,
        "frame": "quarter note",
        "tonic": "declared key, else Krumhansl-Schmuckler; nearest shift to C",
        "split": FRACTIONS,
        "dedupe": "identical transposed rolls",
    }


def load() -> Benchmark:
    return cached("jsb", recipe(), build)


def corpus_files() -> list[Path]:
    """The Bach scores shipped in music21's corpus, found without importing music21."""
    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("jsb needs music21's corpus: pip install music21")
    folder = Path(spec.submodule_search_locations[0]) / "corpus" / "bach"
    return sorted(p for p in folder.iterdir() if p.suffix in SCORE_SUFFIXES)


def parse(path: Path):
    """Parse a score without music21's pickle cache (it would land in the system temp dir)."""
    from music21 import converter

    conv = converter.Converter()
    conv.parseFileNoPickle(path)
    return conv.stream


def voice_parts(score) -> list | str:
    """The four voice parts in SATB order, or why this score is not a four-voice chorale."""
    found: dict[str, list] = {v: [] for v in VOICES}
    for part in score.parts:
        words = (part.partName or "").split()
        if words and words[0] in found:
            found[words[0]].append(part)
    counts = {v: len(p) for v, p in found.items()}
    if any(n != 1 for n in counts.values()):
        names = [part.partName or "?" for part in score.parts]
        return f"parts {names}: need one each of {', '.join(VOICES)}"
    return [found[v][0] for v in VOICES]


def tonic_pitch_class(score, parts: list) -> tuple[int, str]:
    """Pitch class of the tonic: the key the score declares, else an estimate from its notes."""
    from music21 import key, stream

    for part in parts:
        for sig in part.flatten().getElementsByClass(key.Key):
            return sig.tonic.pitchClass, "declared"
    return stream.Score(parts).analyze("key").tonic.pitchClass, "estimated"


def nearest_shift(tonic: int) -> int:
    """Semitones that move the tonic to C, in [-6, 5] (the smaller move)."""
    return (-tonic + 6) % 12 - 6


def chorale_frames(parts: list, shift: int) -> list[set[int]]:
    """MIDI pitches sounding at each quarter-note beat (a note covers beats in [onset, end))."""
    notes = [n for part in parts for n in part.flatten().notes]
    length = math.ceil(max(float(n.offset + n.quarterLength) for n in notes))
    frames: list[set[int]] = [set() for _ in range(length)]
    for n in notes:
        start, end = float(n.offset), float(n.offset + n.quarterLength)
        for beat in range(math.ceil(start), math.ceil(end)):
            frames[beat].update(p.midi + shift for p in n.pitches)
    return frames


def chorale_rolls(paths: list[Path]) -> tuple[dict[str, np.ndarray], dict[str, str], dict]:
    """Rolls of the chorales in `paths` by id, the skipped ids with reasons, and statistics."""
    rolls: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    seen: dict[bytes, str] = {}
    tonic_sources = {"declared": 0, "estimated": 0}
    for path in sorted(paths):  # of two identical chorales the first by name is kept
        cid = path.stem
        score = parse(path)
        parts = voice_parts(score)
        if isinstance(parts, str):
            skipped[cid] = parts
            continue
        tonic, source = tonic_pitch_class(score, parts)
        tonic_sources[source] += 1
        roll = piano_roll(chorale_frames(parts, nearest_shift(tonic)), where=str(path))
        digest = hashlib.sha256(roll.tobytes()).digest()
        if digest in seen:
            skipped[cid] = f"same music as {seen[digest]}"
            continue
        seen[digest] = cid
        rolls[cid] = roll
    return rolls, skipped, {"tonic": tonic_sources}


def split_ids(ids: list[str], fractions=FRACTIONS) -> dict[str, list[str]]:
    """Deterministic split that does not depend on file order: sort by a hash, then cut."""
    ranked = sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())
    n_train = round(fractions[0] * len(ranked))
    n_valid = round(fractions[1] * len(ranked))
    return {
        "train": sorted(ranked[:n_train]),
        "valid": sorted(ranked[n_train : n_train + n_valid]),
        "test": sorted(ranked[n_train + n_valid :]),
    }


def build(paths: list[Path] | None = None) -> Benchmark:
    rolls, skipped, stats = chorale_rolls(corpus_files() if paths is None else paths)
    if not rolls:
        raise UserError("jsb: no four-voice chorale found in music21's corpus")
    by_split = split_ids(list(rolls))
    splits = {s: next_step_split([rolls[i] for i in ids], ids) for s, ids in by_split.items()}
    notes = {"source": "music21 corpus/bach", "skipped": skipped, **stats}
    return next_step_benchmark("jsb", splits, notes)


def _music21_version() -> str:
    try:
        return importlib.metadata.version("music21")
    except importlib.metadata.PackageNotFoundError as err:
        raise UserError("jsb needs music21's corpus: pip install music21") from err
