"""The Python API runs a study as the command line does, in three calls (docs/cli.md)."""

import hashlib
from pathlib import Path

import optuna
import pytest

import study
from study.analysis import read_results
from study.cli import main
from study.errors import OptionError
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
