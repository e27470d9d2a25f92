"""The fixtures several test modules share."""

import hashlib
from pathlib import Path

import optuna
import pytest
import torch
from runs import write_tiny_jsb

from study.benchmarks.jsb_original import CHECKSUM_ENV
from study.cli import main
from synthetic_study import SHIFTS, fill, quiet
from variants.layer import BACKENDS

# Every concrete compute path of the variants package; each is checked against the reference.
# triton has its own tests (tests/test_triton.py: CUDA, or Triton's interpreter on CPU).
PATHS = [b for b in BACKENDS if b not in ("auto", "triton")]

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
        ],
    ),
]


@pytest.fixture(scope="session", autouse=True)
def data_home(tmp_path_factory):
    """Built benchmarks go into a temporary data home, never into the checkout: one for the
    session, so that each is built once (the full JSB from music21 takes about a minute).
    Subprocesses (`odyssey run`, its workers) inherit it."""
    home = tmp_path_factory.mktemp("data-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ODYSSEY_DATA_HOME", str(home))
        yield home


@pytest.fixture
def fresh_data_home(tmp_path, monkeypatch):
    """A data home of the test's own, not yet made: nothing built before is found there."""
    home = tmp_path / "home"
    monkeypatch.setenv("ODYSSEY_DATA_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_jsb(tmp_path_factory):
    """A tiny benchmark file in the original JSB format (runs.write_tiny_jsb); only read. It
    is not the paper's file, so its checksum is accepted for the session, as a user accepts
    another file; subprocesses inherit that."""
    path = write_tiny_jsb(tmp_path_factory.mktemp("jsb") / "jsb.pkl")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CHECKSUM_ENV, hashlib.sha256(Path(path).read_bytes()).hexdigest())
        yield path


@pytest.fixture(scope="session")
def synthetic_storage(tmp_path_factory) -> str:
    """4 variants × 40 trials of `jsb` (SHIFTS: NFG worse, NP better, CIFG identical to V),
    each with 2 diverged and 3 failed trials, plus a study whose name breaks the convention.
    Only read."""
    url = f"sqlite:///{tmp_path_factory.mktemp('storage') / 'study.db'}"
    fill(url, "jsb", SHIFTS, n_trials=40, seed=0, n_failed=3, n_diverged=2)
    optuna.create_study(storage=url, study_name="not-a-variant-study")
    return url


@pytest.fixture(scope="session")
def synthetic_report(synthetic_storage, tmp_path_factory):
    """The folder `odyssey report` writes for synthetic_storage: its forests are fitted once
    for the session. Only read."""
    out = tmp_path_factory.mktemp("report")
    assert quiet(main, ["report", "--storage", synthetic_storage, "--out", str(out)]) == 0
    return out


@pytest.fixture
def one_program():
    """Under Triton's interpreter, all rows of a launch in one program; on a GPU the default
    layout. Imported here on use: only tests/triton_device.py may import triton first."""
    from variants import triton_lstm

    if triton_lstm.interpreted():
        triton_lstm.use_layout(triton_lstm.Layout(chunk=64, rows=64, num_warps=4, r_cache=".ca"))
    yield
    triton_lstm.use_layout(None)


@pytest.fixture(params=PATHS)
def backend(request):
    return request.param


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


# Tiny tensors: one thread avoids OpenMP spin-waits when other processes share the cores
# (`make test` runs two test processes, pytest-xdist's -n 2).
torch.set_num_threads(1)


# Fixtures that are costly to build (forests fitted, studies run) and only read by their tests.
SHARED = ("synthetic_storage", "tops_storage", "noise", "blown", "shared_results")


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under -n (xdist's --dist loadgroup), the tests that share state run in one test
    process: the PostgreSQL tests share one database and empty its schema, and the readers of
    a costly fixture then build it once, not once per process."""
    for item in items:
        if item.get_closest_marker("postgres"):
            group = "postgres"
        else:
            group = next((name for name in SHARED if name in item.fixturenames), None)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
