"""`timit`: framewise phone classification on the user's copy of TIMIT (LDC93S1).

Expected layout (either case): <root>/TRAIN|TEST/<dialect>/<speaker>/<utt>.WAV + .PHN, audio in
NIST SPHERE (16-bit PCM) or RIFF WAV. Features as in the paper: 12 MFCC + log energy from 25 ms
Hamming windows every 10 ms after pre-emphasis 0.97, with delta and delta-delta (39 dims),
z-normalised with training statistics; every frame is labelled with the phone (61 classes)
at its centre. SA sentences are left out, as is usual. Splits: train = TRAIN (3696),
valid = the 50-speaker development set of TEST (400), test = the 24-speaker core test (192).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.fft import dct, rfft
from scipy.io import wavfile
from scipy.signal import savgol_filter

from ..errors import UserError
from .cache import cached, folder_recipe
from .core import Benchmark, Split

ENV = "ODYSSEY_TIMIT"
SOURCE = "TIMIT (LDC93S1) is licensed by the Linguistic Data Consortium; bring your own copy"
EXPECTED = "TIMIT in the LDC layout: TRAIN/ and TEST/ with <dialect>/<speaker>/<utt>.WAV + .PHN"

_PHONES = (
    "aa ae ah ao aw ax ax-h axr ay b bcl ch d dcl dh dx eh el em en eng epi er ey f g gcl h# "
    "hh hv ih ix iy jh k kcl l m n ng nx ow oy p pau pcl q r s sh t tcl th uh uw ux v w y z "
    "zh"
)
PHONES = tuple(_PHONES.split())
_CORE_TEST = (
    "MDAB0 MWBT0 FELC0 MTAS1 MWEW0 FPAS0 MJMP0 MLNT0 FPKT0 MLLL0 MTLS0 FJLM0 MBPM0 MKLT0 "
    "FNLP0 MCMJ0 MJDH0 FMGD0 MGRT0 MNJM0 FDHC0 MJLN0 MPAM0 FMLD0"
)
CORE_TEST = frozenset(_CORE_TEST.split())
_DEV = (
    "FAKS0 FDAC1 FJEM0 MGWT0 MJAR0 MMDB1 MMDM2 MPDF0 FCMH0 FKMS0 MBDG0 MBWM0 MCSH0 FADG0 "
    "FDMS0 FEDW0 MGJF0 MGLB0 MRTK0 MTAA0 MTDT0 MTHC0 MWJG0 FNMR0 FREW0 FSEM0 MBNS0 MMJR0 "
    "MDLS0 MDLF0 MDVC0 MERS0 FMAH0 FDRW0 MRCS0 MRJM4 FCAL1 MMWH0 FJSJ0 MAJC0 MJSW0 MREB0 "
    "FGJD0 FJMG0 MROA0 MTEB0 MJFC0 MRJR0 FMML0 MRWS1"
)
DEV = frozenset(_DEV.split())
RATE = 16000
WINDOW, HOP, FFT_SIZE, MEL_BANDS, PRE_EMPHASIS = 400, 160, 512, 26, 0.97


def read_sphere(path: Path) -> np.ndarray:
    """Samples of a NIST SPHERE file (uncompressed 16-bit PCM) or a RIFF WAV, as float64."""
    raw = path.read_bytes()
    if raw[:4] == b"RIFF":
        rate, samples = wavfile.read(path)
        _check_rate(path, rate)
        return samples.astype(np.float64)
    if not raw.startswith(b"NIST_1A"):
        raise UserError(f"timit: {path} is neither NIST SPHERE (NIST_1A header) nor RIFF WAV")
    try:
        header_size = int(raw[8:16])
        fields = {}
        for line in raw[16:header_size].decode("ascii").splitlines():
            words = line.split(None, 2)
            if words == ["end_head"]:
                break
            if len(words) == 3:
                fields[words[0]] = words[2].strip()
        rate, width = int(fields["sample_rate"]), int(fields.get("sample_n_bytes", "2"))
        order = fields.get("sample_byte_format", "01")
        coding = fields.get("sample_coding", "pcm")
    except (ValueError, KeyError, UnicodeDecodeError) as err:
        raise UserError(f"timit: {path} has a malformed NIST SPHERE header ({err})") from err
    _check_rate(path, rate)
    if width != 2 or coding != "pcm" or order not in ("01", "10"):
        raise UserError(
            f"timit: {path} is {coding} with {width}-byte samples ({order}); expected "
            "uncompressed 16-bit PCM (decompress with sph2pipe)"
        )
    dtype = "<i2" if order == "01" else ">i2"
    body = raw[header_size:]
    return np.frombuffer(body[: len(body) // 2 * 2], dtype=dtype).astype(np.float64)


def read_phn(path: Path) -> list[tuple[int, int, int]]:
    """(start sample, end sample, phone index) per line of a .PHN file."""
    segments = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        words = line.split()
        if len(words) != 3 or words[2] not in PHONES or not words[0].isdigit():
            raise UserError(
                f"timit: {path} line {n}: expected '<start> <end> <phone>', got {line!r}"
            )
        segments.append((int(words[0]), int(words[1]), PHONES.index(words[2])))
    if not segments:
        raise UserError(f"timit: {path} holds no phone segments")
    return segments


def mel_filterbank() -> np.ndarray:
    """[MEL_BANDS, FFT_SIZE // 2 + 1] triangular filters equally spaced on the mel scale."""
    mel = np.linspace(0, 2595 * np.log10(1 + (RATE / 2) / 700), MEL_BANDS + 2)
    hz = 700 * (10 ** (mel / 2595) - 1)
    bins = np.fft.rfftfreq(FFT_SIZE, 1 / RATE)
    lower, centre, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return np.clip(np.minimum(rising, falling), 0, None)


def features(samples: np.ndarray) -> np.ndarray:
    """[T, 39]: 12 MFCC + log energy, delta, delta-delta; T = 1 + (N - 400) // 160."""
    emphasised = np.append(samples[:1], samples[1:] - PRE_EMPHASIS * samples[:-1])
    if len(emphasised) < WINDOW:
        emphasised = np.pad(emphasised, (0, WINDOW - len(emphasised)))
    count = 1 + (len(emphasised) - WINDOW) // HOP
    index = np.arange(WINDOW)[None, :] + HOP * np.arange(count)[:, None]
    frames = emphasised[index]
    energy = np.log(np.maximum((frames**2).sum(1), 1e-10))
    power = np.abs(rfft(frames * np.hamming(WINDOW), FFT_SIZE)) ** 2
    log_mel = np.log(np.maximum(power @ mel_filterbank().T, 1e-10))
    static = np.column_stack([dct(log_mel, type=2, norm="ortho")[:, 1:13], energy])
    delta = savgol_filter(static, 5, 1, deriv=1, axis=0, mode="nearest")
    delta2 = savgol_filter(delta, 5, 1, deriv=1, axis=0, mode="nearest")
    return np.concatenate([static, delta, delta2], axis=1)


def frame_labels(segments: list[tuple[int, int, int]], count: int) -> np.ndarray:
    """The phone at each frame's centre (the last phone for centres past the transcription)."""
    centres = HOP * np.arange(count) + WINDOW // 2
    ends = np.array([end for _, end, _ in segments])
    which = np.minimum(np.searchsorted(ends, centres, side="right"), len(segments) - 1)
    return np.array([segments[i][2] for i in which], dtype=np.int64)


def utterance_files(root: str | Path) -> dict[str, list[tuple[str, Path, Path]]]:
    """(id, audio, phones) per split, SA sentences left out; raises if the layout is wrong."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"timit: {root} is not a folder; expected {EXPECTED}")
    by_split: dict[str, list[tuple[str, Path, Path]]] = {"train": [], "valid": [], "test": []}
    seen = set()
    for phn in sorted(root.rglob("*")):
        if phn.suffix.upper() != ".PHN" or len(phn.parts) < 4:
            continue
        part, speaker, utt = phn.parts[-4].upper(), phn.parent.name.upper(), phn.stem.upper()
        audio = next(
            (phn.with_suffix(s) for s in (".WAV", ".wav") if phn.with_suffix(s).is_file()), None
        )
        if part not in ("TRAIN", "TEST") or audio is None or utt.startswith("SA"):
            continue
        if part == "TRAIN":
            split = "train"
        elif speaker in CORE_TEST:
            split = "test"
        elif speaker in DEV:
            split = "valid"
        else:
            continue
        uid = f"{part}/{phn.parts[-3].upper()}/{speaker}/{utt}"
        if uid not in seen:
            seen.add(uid)
            by_split[split].append((uid, audio, phn))
    missing = [s for s, files in by_split.items() if not files]
    if missing:
        raise UserError(
            f"timit: no utterances for {', '.join(missing)} under {root}; expected {EXPECTED}"
        )
    return by_split


def recipe(root: Path, files: dict) -> dict:
    return folder_recipe(
        "timit",
        root,
        (
            f"{uid} {audio.stat().st_size} {phn.stat().st_size}"
            for entries in files.values()
            for uid, audio, phn in entries
        ),
    )


def load(root: str | Path) -> Benchmark:
    files = utterance_files(root)
    return cached("timit", recipe(Path(root), files), lambda: build(files))


def build(files: dict[str, list[tuple[str, Path, Path]]]) -> Benchmark:
    raw = {}
    for split, entries in files.items():
        feats, labels = [], []
        for _, audio, phn in entries:
            x = features(read_sphere(audio))
            feats.append(x)
            labels.append(frame_labels(read_phn(phn), len(x)))
        raw[split] = (feats, labels, [uid for uid, _, _ in entries])
    train = np.concatenate(raw["train"][0])
    mean, std = train.mean(0), train.std(0) + 1e-8
    splits = {
        s: Split(
            [torch.from_numpy(((x - mean) / std).astype(np.float32)) for x in feats],
            [torch.from_numpy(y) for y in labels],
            ids,
        )
        for s, (feats, labels, ids) in raw.items()
    }
    majority = torch.cat(splits["train"].targets).bincount().argmax()
    chance = float((torch.cat(splits["test"].targets) != majority).double().mean())
    return Benchmark(
        name="timit",
        task="framewise",
        input_size=39,
        output_size=len(PHONES),
        bidirectional=True,
        **splits,
        metric="frame error",
        chance=chance,
        notes={"phones": list(PHONES), "splits": "TRAIN w/o SA; dev 50 speakers; core test 24"},
    )


def _check_rate(path: Path, rate: int) -> None:
    if rate != RATE:
        raise UserError(f"timit: {path} is sampled at {rate} Hz; expected {RATE}")
