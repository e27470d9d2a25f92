"""Every notebook runs headless on the report of a synthetic study (conftest.py's
synthetic_report) and draws figures, reading the report's tables with one call
(`read_results`) and refitting nothing."""

import warnings
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from study.analysis import analyse, load_storage, write
from synthetic_study import fill_shared

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean_and_runs(path, synthetic_report, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "clear the outputs"
    assert images(execute(path, synthetic_report, monkeypatch).cells), f"{path.name} drew no figure"


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
