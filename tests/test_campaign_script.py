"""scripts/campaign.sh, the committed campaign's slice: the reproduction's command until its
1,800 trials are complete, then the family's, each logged to its next run-<n>.log; a bad
argument is one line and exit 2. scripts/gpu_family.sh, the family's slice on a GPU: its
arguments, and nothing trained without a CUDA device."""

import os
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "campaign.sh"
GPU_SLICE = SCRIPT.with_name("gpu_family.sh")


@pytest.fixture
def layout(tmp_path):
    """A results/ tree beside a data file, and a PYTHON that records `-m study.cli` calls
    (and runs `-c` snippets with this interpreter)."""
    for study in ("reproduction", "family"):
        (tmp_path / "results" / study).mkdir(parents=True)
    (tmp_path / "results" / "reproduction" / "run-1.log").write_text("slice 1\n")
    (tmp_path / "jsb.pkl").write_bytes(b"")
    fake = tmp_path / "python"
    fake.write_text(
        f'#!/bin/sh\nif [ "$1" = -m ]; then echo "$@" >> {tmp_path}/calls; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    return tmp_path


def run(layout, *args):
    env = os.environ | {"PYTHON": str(layout / "python")}
    return subprocess.run(
        ["sh", str(SCRIPT), *args], cwd=layout, env=env, capture_output=True, text=True
    )


def calls(layout) -> list[list[str]]:
    path = layout / "calls"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def test_a_slice_runs_the_reproduction_then_the_family(layout):
    done = run(layout, "7200", "jsb.pkl")
    assert done.returncode == 0, done.stderr
    reproduction, family = calls(layout)
    for call, variants, study in (
        (reproduction, "all", "reproduction"),
        (family, "GRU,MGU,minGRU,minLSTM,sLSTM,V-fb1", "family"),
    ):
        options = dict(zip(call[3::2], call[4::2]))
        assert call[:3] == ["-m", "study.cli", "run"]
        assert options == options | {
            "--benchmark": "jsb-original",
            "--data": "jsb.pkl",
            "--variants": variants,
            "--trials": "200",
            "--preset": "paper",
            "--seed": "0",
            "--workers": "2",
            "--storage": f"sqlite:///results/{study}/study.db",
        }
        assert 7000 < int(options["--time-limit"]) <= 7200
    assert (layout / "results/reproduction/run-2.log").exists()  # the next after run-1.log
    assert (layout / "results/family/run-1.log").exists()


def test_a_complete_reproduction_hands_the_slice_to_the_family(layout):
    db = sqlite3.connect(layout / "results/reproduction/study.db")
    db.execute("create table trials (trial_id integer primary key, state text)")
    db.executemany("insert into trials (state) values (?)", [("COMPLETE",)] * 1800)
    db.commit()
    assert run(layout, "7200", "jsb.pkl").returncode == 0
    (family,) = calls(layout)
    assert "sqlite:///results/family/study.db" in family
    assert not (layout / "results/reproduction/run-2.log").exists()


def run_options(text: str, start: str) -> dict[str, str]:
    """The options of the command that begins at `start` in `text`, continuation lines
    joined."""
    command = text[text.index(start) :].replace("\\\n", " ").splitlines()[0]
    words = shlex.split(command)[len(shlex.split(start)) :]
    return dict(zip(words[::2], words[1::2]))


def test_the_family_s_command_is_one_in_its_readme_and_both_slices(layout):
    """What makes the family's trials the same study wherever they run: its arms, the
    sample (benchmark, trials, seed) and the protocol, in results/family/README.md's command,
    scripts/campaign.sh's and scripts/gpu_family.sh's."""
    root = SCRIPT.parents[1]
    assert run(layout, "7200", "jsb.pkl").returncode == 0
    campaign = dict(zip(calls(layout)[-1][3::2], calls(layout)[-1][4::2]))
    readme = run_options((root / "results/family/README.md").read_text(), "odyssey run")
    gpu = run_options(GPU_SLICE.read_text(), '"$PYTHON" -m study.cli run')
    keys = ("--benchmark", "--variants", "--trials", "--preset", "--seed")
    study = {k: campaign[k] for k in keys}
    assert study["--variants"] == "GRU,MGU,minGRU,minLSTM,sLSTM,V-fb1"
    assert {k: readme[k] for k in keys} == study == {k: gpu[k] for k in keys}


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "usage: scripts/campaign.sh SECONDS DATA"),
        (("2h", "jsb.pkl"), "SECONDS must be a whole number of seconds, got '2h'"),
        (("7200", "missing.pkl"), "no data file at missing.pkl"),
    ],
)
def test_a_bad_argument_is_one_line(layout, args, message):
    done = run(layout, *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.splitlines()) == 1
    assert calls(layout) == []


def test_too_little_time_starts_nothing(layout):
    assert run(layout, "599", "jsb.pkl").returncode == 0
    assert calls(layout) == []


@pytest.mark.parametrize("args", [(), ("10m",), ("60", "extra")])
def test_the_gpu_slice_refuses_a_bad_argument(args):
    done = subprocess.run(["bash", str(GPU_SLICE), *args], capture_output=True, text=True)
    assert done.returncode == 2
    assert (
        done.stderr
        == "usage: scripts/gpu_family.sh SECONDS (the slice's training time, a whole number)\n"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_the_gpu_slice_trains_nothing_without_a_gpu(tmp_path):
    env = os.environ | {"PYTHON": sys.executable, "OUT": str(tmp_path)}
    done = subprocess.run(["bash", str(GPU_SLICE), "60"], env=env, capture_output=True, text=True)
    assert done.returncode == 3
    assert done.stderr.endswith("has no CUDA device (torch.cuda.is_available() is False)\n")
    assert list((tmp_path / "family-gpu").iterdir()) == []
