"""Loaders for user-supplied data, on tiny files written here in each real format."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from study import benchmarks
from study.benchmarks import iam_ondb, timit
from study.errors import UserError

SHARED_JSB = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "jsb-original"
# The published file's, as its repository serves it (github.com/czhuang/JSB-Chorales-dataset)
SPLITS = ("train", "valid", "test")
PAPER_SHA256 = "be67b1e1d0ea22a0c64eb72db53a83dae65650a7b470ca09a34a1e43a3fb4405"


pytestmark = pytest.mark.usefixtures("fresh_data_home")


# --- jsb-original ----------------------------------------------------------------------------


def write_pickle(path: Path, data) -> Path:
    path.write_bytes(pickle.dumps(data, protocol=2))
    return path


def accept(monkeypatch, path: Path) -> str:
    """Accept `path`, which is not the paper's file, as a user would: by its checksum."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setenv("ODYSSEY_JSB_ORIGINAL_SHA256", digest)
    return digest


def test_jsb_original_tiny_pickle(tmp_path, monkeypatch):
    data = {
        "train": [[(60, 64, 67), (62,), ()], [(21,), (108,)]],
        "valid": [[(48.0, 55.0), (48.0,)]],  # the original pickle stores floats
        "test": [[(72,), (74,), (76,), (77,)]],
    }
    path = write_pickle(tmp_path / "JSB.pickle", data)
    accept(monkeypatch, path)
    bench = benchmarks.load("jsb-original", str(path))
    assert (bench.task, bench.input_size, bench.output_size) == ("next_step", 88, 88)
    assert [len(bench.train), len(bench.valid), len(bench.test)] == [2, 1, 1]
    first = torch.cat([bench.train.inputs[0], bench.train.targets[0][-1:]])
    assert [(np.flatnonzero(row) + 21).tolist() for row in first] == [[60, 64, 67], [62], []]
    assert torch.equal(bench.train.targets[0], first[1:])
    assert bench.train.inputs[1][0, 0] == 1 and bench.train.targets[1][0, 87] == 1
    assert bench.valid.ids == ["valid[0]"]


def test_jsb_original_folder_and_env(tmp_path, monkeypatch):
    data = {s: [[(60,), (61,)]] for s in ("train", "valid", "test")}
    accept(monkeypatch, write_pickle(tmp_path / "jsb.pkl", data))
    monkeypatch.setenv("ODYSSEY_JSB_ORIGINAL", str(tmp_path))
    assert len(benchmarks.load("jsb-original").test) == 1


def test_jsb_original_another_file_is_refused_until_its_checksum_is_given(tmp_path, monkeypatch):
    monkeypatch.delenv("ODYSSEY_JSB_ORIGINAL_SHA256", raising=False)
    ours = write_pickle(tmp_path / "ours.pkl", {s: [[(60,), (61,)]] for s in SPLITS})
    digest = hashlib.sha256(ours.read_bytes()).hexdigest()
    with pytest.raises(UserError) as refused:
        benchmarks.load("jsb-original", str(ours))
    line = str(refused.value)
    assert "\n" not in line
    assert f"has SHA-256 {digest} ({ours.stat().st_size:,} bytes)" in line
    assert "not the paper's file's " + PAPER_SHA256 in line
    assert "jsb-chorales-quarter.pkl from https://github.com/czhuang/JSB-Chorales-dataset" in line
    assert line.endswith(f"or set ODYSSEY_JSB_ORIGINAL_SHA256={digest} to train on this file")
    # accepted by name, this file loads and says which it is; a third file is refused again
    monkeypatch.setenv("ODYSSEY_JSB_ORIGINAL_SHA256", digest.upper())
    assert benchmarks.load("jsb-original", str(ours)).notes["sha256"] == digest
    assert benchmarks.data_sha256("jsb-original", str(ours)) == digest
    third = write_pickle(tmp_path / "third.pkl", {s: [[(62,), (61,)]] for s in SPLITS})
    with pytest.raises(UserError, match=f"not ODYSSEY_JSB_ORIGINAL_SHA256={digest};"):
        benchmarks.load("jsb-original", str(third))


def test_jsb_original_not_given_says_where_the_file_comes_from(monkeypatch):
    monkeypatch.delenv("ODYSSEY_JSB_ORIGINAL", raising=False)
    reason = benchmarks.describe("jsb-original")["reason"]
    assert reason.startswith("jsb-original: not given: set ODYSSEY_JSB_ORIGINAL or --path; ")
    assert "jsb-chorales-quarter.pkl from https://github.com/czhuang/JSB-Chorales-dataset" in (
        reason
    )
    assert f"(2,051,794 bytes, SHA-256 {PAPER_SHA256})" in reason
    # built from packaged data (digits: scikit-learn's; jsb's music21 build takes a minute)
    assert benchmarks.data_sha256("digits-framewise") is None


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a pickle at all", "cannot unpickle"),
        (pickle.dumps([1, 2, 3]), "is not a pickle of a dict"),
        (pickle.dumps({"train": [], "test": []}), "is not a pickle of a dict"),
        (pickle.dumps({s: [[(60,), (12,)]] for s in ("train", "valid", "test")}), "pitch 12"),
        (pickle.dumps({s: [[60, 62]] for s in ("train", "valid", "test")}), "not a list of"),
        (pickle.dumps({s: [[(60,)]] for s in ("train", "valid", "test")}), "at least 2"),
    ],
)
def test_jsb_original_malformed(tmp_path, content, message):
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        benchmarks.load("jsb-original", str(path))


def test_jsb_original_missing(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        benchmarks.load("jsb-original", str(tmp_path / "missing.pkl"))
    with pytest.raises(UserError, match="expected one .pkl"):
        benchmarks.load("jsb-original", str(tmp_path))


@pytest.mark.skipif(not SHARED_JSB.is_dir(), reason="the original JSB pickle is not present")
def test_jsb_original_real_file(monkeypatch):
    monkeypatch.delenv("ODYSSEY_JSB_ORIGINAL_SHA256", raising=False)  # the paper's file's
    bench = benchmarks.load("jsb-original", str(SHARED_JSB))
    assert bench.notes["sha256"] == PAPER_SHA256
    assert (SHARED_JSB / "jsb-chorales-quarter.pkl").stat().st_size == 2_051_794
    # Sizes from the file's README: 229 / 76 / 77 sequences, 13,807 / 4,602 / 4,725 frames.
    for split, count, frames in (("train", 229, 13807), ("valid", 76, 4602), ("test", 77, 4725)):
        s = getattr(bench, split)
        assert len(s) == count
        assert s.frames == frames - count  # next-step inputs drop each sequence's last frame
    keys = torch.cat(bench.train.inputs + bench.train.targets).sum(0).nonzero().flatten() + 21
    assert 43 <= int(keys.min()) and int(keys.max()) <= 96


# --- TIMIT -----------------------------------------------------------------------------------


def sphere(samples: np.ndarray, byte_format: str = "01", coding: str = "pcm") -> bytes:
    lines = [
        "NIST_1A",
        "   1024",
        "database_id -s5 TIMIT",
        f"sample_count -i {len(samples)}",
        "sample_rate -i 16000",
        "channel_count -i 1",
        f"sample_byte_format -s2 {byte_format}",
        "sample_n_bytes -i 2",
        f"sample_coding -s{len(coding)} {coding}",
        "sample_min -i -2000",
        "end_head",
    ]
    header = ("\n".join(lines) + "\n").encode().ljust(1024, b" ")
    dtype = "<i2" if byte_format == "01" else ">i2"
    return header + samples.astype(dtype).tobytes()


def write_utterance(root: Path, part: str, speaker: str, utt: str, seed: int) -> np.ndarray:
    folder = root / part / "DR1" / speaker
    folder.mkdir(parents=True, exist_ok=True)
    samples = (np.random.default_rng(seed).normal(size=4000) * 1000).astype(np.int16)
    (folder / f"{utt}.WAV").write_bytes(sphere(samples))
    (folder / f"{utt}.PHN").write_text("0 1000 h#\n1000 2500 sh\n2500 4000 iy\n")
    return samples


@pytest.fixture
def timit_root(tmp_path):
    root = tmp_path / "TIMIT"
    write_utterance(root, "TRAIN", "FCJF0", "SI1027", 1)
    write_utterance(root, "TRAIN", "FCJF0", "SX127", 2)
    write_utterance(root, "TRAIN", "FCJF0", "SA1", 3)  # SA sentences are left out
    write_utterance(root, "TEST", "FAKS0", "SI943", 4)  # development set speaker
    write_utterance(root, "TEST", "MDAB0", "SI1039", 5)  # core test speaker
    write_utterance(root, "TEST", "MJSW0", "SX20", 6)  # dev speaker
    write_utterance(root, "TEST", "FCMR0", "SI1105", 7)  # neither: unused
    return root


def test_read_sphere_both_byte_orders_and_riff(tmp_path):
    samples = np.array([0, 1, -1, 32767, -32768, 1234], dtype=np.int16)
    for order in ("01", "10"):
        path = tmp_path / f"{order}.WAV"
        path.write_bytes(sphere(samples, order))
        assert np.array_equal(timit.read_sphere(path), samples)
    from scipy.io import wavfile

    wavfile.write(tmp_path / "riff.WAV", 16000, samples)
    assert np.array_equal(timit.read_sphere(tmp_path / "riff.WAV"), samples)


def test_read_sphere_rejects_compressed_and_foreign(tmp_path):
    shortened = tmp_path / "a.WAV"
    shortened.write_bytes(sphere(np.zeros(10), coding="pcm,embedded-shorten-v2.00"))
    with pytest.raises(UserError, match="sph2pipe"):
        timit.read_sphere(shortened)
    garbage = tmp_path / "b.WAV"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(UserError, match="neither NIST SPHERE"):
        timit.read_sphere(garbage)
    bad_header = tmp_path / "c.WAV"
    bad_header.write_bytes(b"NIST_1A\n   1024\nsample_count -i 3\nend_head\n".ljust(1030, b" "))
    with pytest.raises(UserError, match="malformed NIST SPHERE header"):
        timit.read_sphere(bad_header)


def test_timit_loader(timit_root):
    bench = benchmarks.load("timit", str(timit_root))
    assert (bench.task, bench.input_size, bench.output_size) == ("framewise", 39, 61)
    assert bench.bidirectional
    assert bench.train.ids == ["TRAIN/DR1/FCJF0/SI1027", "TRAIN/DR1/FCJF0/SX127"]
    assert bench.valid.ids == ["TEST/DR1/FAKS0/SI943", "TEST/DR1/MJSW0/SX20"]
    assert bench.test.ids == ["TEST/DR1/MDAB0/SI1039"]
    frames = 1 + (4000 - 400) // 160
    for split in (bench.train, bench.valid, bench.test):
        for x, y in zip(split.inputs, split.targets):
            assert x.shape == (frames, 39) and y.shape == (frames,)
            # Frame centres at 200 + 160 t: h# up to 1000, sh up to 2500, iy after.
            centres = 200 + 160 * np.arange(frames)
            names = np.where(centres < 1000, "h#", np.where(centres < 2500, "sh", "iy"))
            assert [timit.PHONES[i] for i in y.tolist()] == names.tolist()
    train = torch.cat(bench.train.inputs)
    assert torch.allclose(train.mean(0), torch.zeros(39), atol=1e-4)


def test_timit_energy_and_mel_peak():
    rng = np.random.default_rng(0)
    samples = rng.normal(size=1600) * 100
    feats = timit.features(samples)
    emphasised = np.append(samples[:1], samples[1:] - 0.97 * samples[:-1])
    assert feats[0, 12] == pytest.approx(np.log((emphasised[:400] ** 2).sum()))
    # A 1 kHz tone puts its energy in the mel band whose centre is nearest to 1 kHz.
    bank = timit.mel_filterbank()
    tone_bin = round(1000 * 512 / 16000)
    centres = bank.argmax(1)
    assert bank[:, tone_bin].argmax() == np.abs(centres - tone_bin).argmin()


def test_timit_errors(tmp_path, timit_root):
    with pytest.raises(UserError, match="no utterances for train"):
        benchmarks.load("timit", str(timit_root / "TEST"))
    phn = timit_root / "TRAIN" / "DR1" / "FCJF0" / "SI1027.PHN"
    phn.write_text("0 1000 h#\n1000 2500 xyz\n")
    with pytest.raises(UserError, match="SI1027.PHN line 2"):
        benchmarks.load("timit", str(timit_root))


# --- IAM-OnDB --------------------------------------------------------------------------------


STROKES = """<?xml version="1.0" encoding="ISO-8859-1"?>
<WhiteboardCaptureSession>
  <WhiteboardDescription><SensorLocation corner="top_left"/></WhiteboardDescription>
  <StrokeSet>
    <Stroke colour="black" start_time="1.00" end_time="1.20">
      <Point x="100" y="200" time="1.00"/><Point x="103" y="198" time="1.01"/>
      <Point x="107" y="199" time="1.03"/>
    </Stroke>
    <Stroke colour="black" start_time="1.50" end_time="1.60">
      <Point x="120" y="210" time="1.50"/><Point x="121" y="215" time="1.52"/>
    </Stroke>
  </StrokeSet>
</WhiteboardCaptureSession>
"""


def write_form(root: Path, form: str, lines: list[str]) -> None:
    folder = Path(form[:3]) / form[:7]
    (root / "ascii" / folder).mkdir(parents=True, exist_ok=True)
    text = "OCR:\n\n" + "\n".join(lines) + "\n\nCSR:\n\n" + "\n".join(lines) + "\n"
    (root / "ascii" / folder / f"{form}.txt").write_text(text)
    (root / "lineStrokes" / folder).mkdir(parents=True, exist_ok=True)
    for n in range(1, len(lines) + 1):
        (root / "lineStrokes" / folder / f"{form}-{n:02d}.xml").write_text(STROKES)


@pytest.fixture
def iam_root(tmp_path):
    root = tmp_path / "iam"
    write_form(root, "a01-000u", ["A MOVE to", "stop Mr."])
    write_form(root, "a01-001w", ["tops"])
    write_form(root, "b02-010z", ["Stop!"])  # neither S nor ! occurs in training
    (root / "trainset.txt").write_text("a01-000u\n")
    (root / "testset_v.txt").write_text("a01-001w\n")
    (root / "testset_t.txt").write_text("")
    (root / "testset_f.txt").write_text("b02-010z\n")
    return root


def test_read_strokes_features(iam_root):
    feats = iam_ondb.read_strokes(iam_root / "lineStrokes/a01/a01-000/a01-000u-01.xml")
    expected = [
        [0, 0, 0.00, 0],
        [3, -2, 0.01, 0],
        [4, 1, 0.03, 1],  # last point of the first stroke: pen goes up
        [13, 11, 0.00, 0],  # jump to the next stroke; its clock restarts
        [1, 5, 0.02, 1],
    ]
    assert np.allclose(feats, expected)


def test_iam_ondb_loader(iam_root):
    bench = benchmarks.load("iam-ondb", str(iam_root))
    assert (bench.task, bench.input_size, bench.bidirectional) == ("ctc", 4, True)
    alphabet = sorted(set("A MOVE to" + "stop Mr."))
    assert bench.notes["alphabet"] == "".join(alphabet)
    assert bench.output_size == len(alphabet) + 1
    assert bench.train.ids == ["a01-000u-01", "a01-000u-02"]
    decode = {i + 1: c for i, c in enumerate(alphabet)}
    assert "".join(decode[int(i)] for i in bench.train.targets[1]) == "stop Mr."
    assert "".join(decode[int(i)] for i in bench.valid.targets[0]) == "tops"
    assert "".join(decode[int(i)] for i in bench.test.targets[0]) == "top"  # S and ! unseen
    assert bench.notes["dropped_unknown_characters"] == 2
    assert all(x.shape == (5, 4) for x in bench.train.inputs)


def test_iam_ondb_errors(iam_root):
    (iam_root / "testset_f.txt").unlink()
    with pytest.raises(UserError, match="testset_f.txt not found"):
        benchmarks.load("iam-ondb", str(iam_root))
    (iam_root / "testset_f.txt").write_text("b02-010z\n")
    (iam_root / "lineStrokes/a01/a01-000/a01-000u-02.xml").write_text("<Stroke><Point x=")
    with pytest.raises(UserError, match="a01-000u-02.xml is not a strokes XML"):
        benchmarks.load("iam-ondb", str(iam_root))
    with pytest.raises(UserError, match="lineStrokes is missing"):
        benchmarks.load("iam-ondb", str(iam_root / "ascii"))
