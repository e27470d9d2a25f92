"""Every notebook runs headless on the report of a synthetic study (conftest.py's
synthetic_report) and draws figures, reading the report's tables with one call
(`read_results`) and refitting nothing; `make notebooks` runs them all into a folder of
their own."""

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from study.analysis import analyse, load_storage, write
from synthetic_study import fill_shared

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def execute(path: Path, results: Path, monkeypatch) -> nbformat.NotebookNode:
    """The notebook at `path`, run headless on the report folder `results`."""
    notebook = nbformat.read(path, as_version=4)
    monkeypatch.setenv("ODYSSEY_RESULTS", str(results))
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": path.parent}}
    ).execute()
    return notebook


def images(cells: list) -> list[dict]:
    return [
        output
        for cell in cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]


@pytest.fixture(scope="module")
def shared_results(tmp_path_factory) -> Path:
    """The report of one shared sample of 8 configurations, all below chance; NFG is V + 0.5
    on each."""
    folder = tmp_path_factory.mktemp("shared")
    url = f"sqlite:///{folder / 'study.db'}"
    v = {i: 9 + 0.1 * i for i in range(8)}
    nfg = {i: value + 0.5 for i, value in v.items()}
    fill_shared(url, "jsb", {"V": v, "NFG": nfg}, n_configs=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write(analyse(*load_storage(url), n_trees=16), folder, url)
    return folder


def test_there_is_a_notebook_per_figure_family():
    assert [p.name for p in NOTEBOOKS] == [
        "01_variants.ipynb",
        "02_importance.ipynb",
        "03_marginals.ipynb",
        "04_training_time.ipynb",
        "05_curves_and_checks.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_starts_by_reading_the_tables(path):
    notebook = nbformat.read(path, as_version=4)
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    assert "results = read_results(" in code[0]
    assert not any("fit_trials" in c or "Fanova" in c for c in code)  # no forest refitted


def make_notebooks(*options: str) -> subprocess.CompletedProcess:
    """`make notebooks` with these options, with this interpreter instead of .venv's."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    command = ["make", "-s", "-C", str(ROOT), "-o", ".venv/.installed", "notebooks"]
    command.append(f"BIN={Path(sys.executable).parent}")
    return subprocess.run([*command, *options], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def made_notebooks(synthetic_report, tmp_path_factory) -> Path:
    """The folder `make notebooks` wrote, run on the synthetic report; the tracked notebooks
    are the same bytes after it."""
    out = tmp_path_factory.mktemp("notebooks")
    before = {path: path.read_bytes() for path in NOTEBOOKS}
    done = make_notebooks(f"RESULTS={synthetic_report}", f"NOTEBOOKS_OUT={out}")
    assert done.returncode == 0, done.stderr
    assert {path: path.read_bytes() for path in NOTEBOOKS} == before
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean_and_runs(path, made_notebooks):
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "clear the outputs"
    executed = nbformat.read(made_notebooks / path.name, as_version=4)
    run = [c for c in executed.cells if c.cell_type == "code"]
    assert [c.execution_count for c in run] == list(range(1, len(run) + 1))
    assert images(executed.cells), f"{path.name} drew no figure"


def test_make_notebooks_refuses_a_folder_that_is_not_a_report(tmp_path):
    done = make_notebooks(f"RESULTS={tmp_path}", f"NOTEBOOKS_OUT={tmp_path / 'out'}")
    assert done.returncode != 0 and not (tmp_path / "out").exists()
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("run_notebooks")]
    assert line == (
        f"run_notebooks: {tmp_path} holds no trials.csv; expected a folder `odyssey report` "
        "wrote, e.g. RESULTS=results/demo after `make demo`"
    )
    done = make_notebooks("RESULTS=results/reproduction", "NOTEBOOKS_OUT=notebooks/out")
    assert "inside" in done.stderr and not (ROOT / "notebooks" / "out").exists()


@pytest.mark.slow  # a kernel of its own
def test_make_notebooks_names_a_notebook_that_fails_and_keeps_it(tmp_path):
    (tmp_path / "trials.csv").write_bytes(b"\xff\xfe not text")
    done = make_notebooks(f"RESULTS={tmp_path}", f"NOTEBOOKS_OUT={tmp_path / 'out'}")
    assert done.returncode != 0
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("run_notebooks")]
    first = NOTEBOOKS[0].name
    assert line.startswith(f"run_notebooks: {first} failed (UnicodeDecodeError: ")
    assert line.endswith(f"; see {tmp_path / 'out' / first}")
    (kept,) = (tmp_path / "out").iterdir()  # as far as it ran, with the error in its cell
    errors = [o for c in nbformat.read(kept, as_version=4).cells for o in c.get("outputs", [])]
    assert [o.ename for o in errors if o.output_type == "error"] == ["UnicodeDecodeError"]


def test_variants_notebook_draws_the_paired_comparison_of_a_shared_sample(
    synthetic_report, shared_results, monkeypatch
):
    """The paired figure, one per benchmark, where the studies share their sample; a line
    saying why there is none where they do not."""
    path = NOTEBOOKS[0]
    for folder, drawn in ((shared_results, 1), (synthetic_report, 0)):
        cells = execute(path, folder, monkeypatch).cells
        (paired,) = [c for c in cells if "paired_differences" in c.source]
        assert len(images([paired])) == drawn
        said = "".join(o.get("text", "") for o in paired.outputs)
        assert ("do not share a sample" in said) == (not drawn)
