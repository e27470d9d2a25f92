"""The Python API runs a study as the command line does, in three calls (docs/cli.md)."""

import hashlib
from pathlib import Path

import optuna
import pytest

import study
from study.analysis import read_results
from study.cli import main
from study.errors import OptionError, UserError
from study.training.protocol import PROTOCOLS, protocol


def test_run_status_report_as_the_command_line(tmp_path, tiny_jsb):
    ours, theirs = f"sqlite:///{tmp_path}/api.db", f"sqlite:///{tmp_path}/cli.db"
    given = dict(trials=2, population=2, data=tiny_jsb, checkpoints=str(tmp_path / "ckpt"))
    counts = study.run("jsb-original", ["V", "cifg"], protocol="smoke", storage=ours, **given)
    assert {name: c["complete"] for name, c in counts.items()} == {
        "jsb-original/V": 2,
        "jsb-original/CIFG": 2,
    }
    args = ["run", "--benchmark", "jsb-original", "--variants", "V,CIFG", "--preset", "smoke"]
    args += ["--trials", "2", "--population", "2", "--data", tiny_jsb, "--storage", theirs]
    assert main(args + ["--checkpoints", str(tmp_path / "ckpt2")]) == 0

    def stored(url):
        studies = optuna.get_all_study_summaries(url)
        return {
            s.study_name: sorted(
                (t.params["hidden_size"], t.value, t.user_attrs["protocol"]["preset"])
                for t in optuna.load_study(study_name=s.study_name, storage=url).trials
            )
            for s in studies
        }

    assert stored(ours) == stored(theirs)  # the same sample, protocol and results

    table = study.status(ours)["studies"]
    assert list(table.study) == ["jsb-original/V", "jsb-original/CIFG"]
    assert list(table.complete) == [2, 2]
    path = study.report(ours, tmp_path / "report")
    assert path == tmp_path / "report" / "REPORT.md" and path.read_text().startswith("# LSTM")
    # every study records the data it trained on, and the report's studies.csv says it
    digest = hashlib.sha256(Path(tiny_jsb).read_bytes()).hexdigest()
    for name in ("jsb-original/V", "jsb-original/CIFG"):
        assert optuna.load_study(study_name=name, storage=ours).user_attrs["data_sha256"] == digest
    assert list(read_results(tmp_path / "report").studies.data_sha256) == [digest, digest]


def test_run_takes_a_protocol_and_names_a_bad_option(tmp_path):
    custom = protocol("smoke", max_epochs=1)
    assert custom.preset == "smoke" and custom.max_epochs == 1
    assert PROTOCOLS["smoke"].max_epochs != 1
    with pytest.raises(OptionError, match="at least 1") as err:
        study.run(
            "jsb-original", "V", protocol=custom, trials=0, storage=f"sqlite:///{tmp_path}/x.db"
        )
    assert err.value.field == "trials"
    assert not (tmp_path / "x.db").exists()  # nothing written before the options are checked


@pytest.mark.parametrize(
    "benchmark, variants, given, message",
    [
        ("jsb-original", "V", {"trials": 2.5}, "trials: must be a whole number, got 2.5"),
        ("jsb-original", "V", {"trials": "3"}, "trials: must be a whole number, got '3'"),
        ("jsb-original", "V", {"trials": True}, "trials: must be a whole number, got True"),
        ("jsb-original", "V", {"workers": "2"}, "workers: must be a whole number, got '2'"),
        ("jsb-original", "V", {"population": "4"}, "population: must be a whole number"),
        ("jsb-original", "V", {"seed": "a"}, "seed: must be a whole number, got 'a'"),
        ("jsb-original", "V", {"heartbeat": 0}, "heartbeat: must be at least 1, got 0"),
        ("jsb-original", "V", {"time_limit": "9"}, "time_limit: must be a number of seconds"),
        ("jsb-original", "V", {"storage": None}, "storage: must be a text, got None"),
        ("jsb-original", "V", {"protocol": None}, "protocol: must be a preset name or a Protocol"),
        ("jsb-original", 3, {}, "variants: must be names or a comma-separated text, got 3"),
        ("jsb-original", ["V", 3], {}, "variants: must be names or a comma-separated text"),
        ("jsb-original", "V,XYZ", {}, "unknown variant 'XYZ'"),
        ("jsb-original", "V", {"nope": 1}, "nope: is no option of run; expected one of trials"),
        ("nope", "V", {}, "benchmark: unknown benchmark 'nope'; expected one of jsb"),
        (None, "V", {"data": None}, "benchmark: must be a text, got None"),
        ("timit", "V", {"data": None}, "timit: no data given; set ODYSSEY_TIMIT"),
        ("jsb-original", "V", {"data": "missing.pkl"}, "missing.pkl"),
        ("jsb", "V", {"data": "jsb.pkl"}, "jsb is built from packaged data and takes no path"),
        ("jsb-original", "V", {"device": 0}, "device: must be a text, got 0"),
        ("jsb-original", "V", {"sampler": "grid"}, "sampler: must be one of random, qmc"),
    ],
)
def test_a_refused_run_stores_nothing(
    benchmark, variants, given, message, tmp_path, tiny_jsb, monkeypatch
):
    """Each bad argument of `study.run` is one line (an OptionError names its field, as the
    command line names the option) before anything is written: no storage, lock or
    checkpoint folder is made."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ODYSSEY_TIMIT", raising=False)
    options = dict(storage=f"sqlite:///{tmp_path}/x.db", checkpoints=str(tmp_path / "ckpt"))
    options.update(trials=2, population=2, data=tiny_jsb, protocol="smoke")
    options.update(given)
    with pytest.raises(UserError) as err:
        study.run(benchmark, variants, **options)
    assert message in str(err.value) and len(str(err.value).splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_a_refused_call_leaves_an_existing_study_as_it_was(tmp_path, tiny_jsb):
    url = f"sqlite:///{tmp_path}/x.db"
    options = dict(storage=url, trials=1, population=2, data=tiny_jsb, protocol="smoke")
    study.run("jsb-original", "V", checkpoints=str(tmp_path / "ckpt"), **options)
    before = optuna.load_study(study_name="jsb-original/V", storage=url)
    with pytest.raises(OptionError, match="trials: must be a whole number"):
        study.run("jsb-original", "V", **{**options, "trials": 2.5})
    after = optuna.load_study(study_name="jsb-original/V", storage=url)
    assert after.user_attrs == before.user_attrs and len(after.trials) == len(before.trials) == 1
    assert study.run("jsb-original", "V", checkpoints=str(tmp_path / "ckpt"), **options)
