"""`iam-ondb`: online handwritten line transcription on the user's copy of IAM-OnDB, with CTC.

Expected layout under the root: lineStrokes/<a01>/<a01-000>/<form>-<NN>.xml (the pen
trajectories), ascii/<a01>/<a01-000>/<form>.txt (transcriptions after 'CSR:', line NN is the
NN-th line), and the task split lists trainset.txt, testset_v.txt, testset_t.txt,
testset_f.txt (one form id per line). Splits: train = trainset, valid = testset_v + testset_t,
test = testset_f. Four features per pen point, as in docs/paper.md §3: dx, dy from the
previous point, time since the stroke began, pen-up flag (1 on a stroke's last point);
z-normalised with training statistics. Labels: the characters of the training
transcriptions, 1..C (0 = blank).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .cache import cached, folder_recipe
from .core import Benchmark, Split

ENV = "ODYSSEY_IAM_ONDB"
SOURCE = (
    "IAM-OnDB is free for non-commercial research after registration with the University of "
    "Bern; bring your own copy"
)
EXPECTED = (
    "IAM-OnDB: lineStrokes/ and ascii/ folders and the split lists trainset.txt, "
    "testset_v.txt, testset_t.txt, testset_f.txt"
)
SPLIT_LISTS = {"train": ("trainset",), "valid": ("testset_v", "testset_t"), "test": ("testset_f",)}


def read_strokes(path: Path) -> np.ndarray:
    """[points, 4] features of one line: dx, dy, seconds since stroke start, pen-up flag."""
    try:
        strokes = ET.parse(path).getroot().iter("Stroke")
        rows = []
        for stroke in strokes:
            points = [
                (float(p.get("x")), float(p.get("y")), float(p.get("time")))
                for p in stroke.iter("Point")
            ]
            for k, (x, y, t) in enumerate(points):
                rows.append((x, y, t - points[0][2], float(k == len(points) - 1)))
    except (ET.ParseError, TypeError, ValueError) as err:
        raise UserError(
            f"iam-ondb: {path} is not a strokes XML with <Stroke><Point x y time> ({err})"
        ) from err
    if not rows:
        raise UserError(f"iam-ondb: {path} holds no <Stroke> with <Point x= y= time=>")
    points = np.array(rows)
    deltas = np.diff(points[:, :2], axis=0, prepend=points[:1, :2])
    return np.column_stack([deltas, points[:, 2:]])


def read_transcription(path: Path) -> list[str]:
    """The lines after 'CSR:' in an ascii/ file."""
    lines = path.read_text(encoding="latin-1").splitlines()
    if "CSR:" not in [line.strip() for line in lines]:
        raise UserError(f"iam-ondb: {path} has no 'CSR:' section")
    start = [line.strip() for line in lines].index("CSR:") + 1
    body = [line.rstrip() for line in lines[start:]]
    while body and not body[0]:
        body.pop(0)
    return body


def line_files(root: str | Path) -> dict[str, list[tuple[str, Path, str]]]:
    """(line id, strokes file, transcription) per split; raises if the layout is wrong."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"iam-ondb: {root} is not a folder; expected {EXPECTED}")
    strokes_dir, ascii_dir = root / "lineStrokes", root / "ascii"
    for folder in (strokes_dir, ascii_dir):
        if not folder.is_dir():
            raise UserError(f"iam-ondb: {folder} is missing; expected {EXPECTED}")
    lists = {}
    for name in sum(SPLIT_LISTS.values(), ()):
        found = sorted(root.rglob(f"{name}.txt"))
        if not found:
            raise UserError(f"iam-ondb: {name}.txt not found under {root}; expected {EXPECTED}")
        try:
            lists[name] = found[0].read_text().split()
        except UnicodeDecodeError:
            raise UserError(
                f"iam-ondb: {found[0]} is not a text file of form ids; expected {EXPECTED}"
            ) from None
    by_split: dict[str, list[tuple[str, Path, str]]] = {}
    for split, names in SPLIT_LISTS.items():
        by_split[split] = [
            entry
            for name in names
            for form in lists[name]
            for entry in form_lines(strokes_dir, ascii_dir, form)
        ]
    return by_split


def form_lines(strokes_dir: Path, ascii_dir: Path, form: str) -> list[tuple[str, Path, str]]:
    """The lines of one form (e.g. a01-000u): their strokes files and transcriptions."""
    if not re.fullmatch(r"[a-z]\d\d-\d\d\d[a-z]?", form):
        raise UserError(f"iam-ondb: {form!r} in a split list is not a form id like a01-000u")
    folder = Path(form[:3]) / form[:7]
    transcript = ascii_dir / folder / f"{form}.txt"
    if not transcript.is_file():
        raise UserError(f"iam-ondb: {transcript} is missing (form {form} is in a split list)")
    lines = read_transcription(transcript)
    entries = []
    for stroke_file in sorted((strokes_dir / folder).glob(f"{form}-*.xml")):
        number = int(stroke_file.stem.rsplit("-", 1)[1])
        if not 1 <= number <= len(lines):
            raise UserError(
                f"iam-ondb: {stroke_file} is line {number} but {transcript} has {len(lines)}"
            )
        entries.append((stroke_file.stem, stroke_file, lines[number - 1]))
    return entries


def recipe(root: Path, files: dict) -> dict:
    return folder_recipe(
        "iam-ondb",
        root,
        (
            f"{line_id} {path.stat().st_size} {text}"
            for entries in files.values()
            for line_id, path, text in entries
        ),
    )


def load(root: str | Path) -> Benchmark:
    files = line_files(root)
    return cached("iam-ondb", recipe(Path(root), files), lambda: build(files))


def build(files: dict[str, list[tuple[str, Path, str]]]) -> Benchmark:
    if not files["train"]:
        raise UserError(f"iam-ondb: the training split lists no lines; expected {EXPECTED}")
    alphabet = sorted({c for _, _, text in files["train"] for c in text})
    label = {c: i + 1 for i, c in enumerate(alphabet)}
    raw = {s: [read_strokes(path) for _, path, _ in entries] for s, entries in files.items()}
    train = np.concatenate(raw["train"])
    mean, std = train.mean(0), train.std(0) + 1e-8
    splits, unknown = {}, 0
    for s, entries in files.items():
        targets = []
        for _, _, text in entries:
            unknown += sum(c not in label for c in text)
            targets.append(torch.tensor([label[c] for c in text if c in label], dtype=torch.int64))
        inputs = [torch.from_numpy(((x - mean) / std).astype(np.float32)) for x in raw[s]]
        splits[s] = Split(inputs, targets, [line_id for line_id, _, _ in entries])
    return Benchmark(
        name="iam-ondb",
        task="ctc",
        input_size=4,
        output_size=len(alphabet) + 1,
        bidirectional=True,
        **splits,
        metric="label error rate",
        chance=1.0,  # the empty output: every target label is a deletion
        notes={"alphabet": "".join(alphabet), "dropped_unknown_characters": unknown},
    )
