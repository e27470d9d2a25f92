"""Every notebook runs headless on the report of a small synthetic study and draws figures,
reading the report's tables with one call (`read_results`) and refitting nothing."""

import warnings
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from study.analysis import analyse, load_storage, write
from synthetic_study import fill

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("results")
    url = f"sqlite:///{folder / 'study.db'}"
    fill(url, "jsb", {"V": 0.0, "NFG": 0.3, "CIFG": 0.0}, n_trials=20, n_failed=1, n_diverged=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trials, epochs, studies = load_storage(url)
        write(analyse(trials, epochs, studies, n_trees=16), folder, url)
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
def test_notebook_is_committed_clean_and_runs(path, results, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "clear the outputs"

    monkeypatch.setenv("ODYSSEY_RESULTS", str(results))
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": path.parent}}
    ).execute()
    images = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert images, f"{path.name} drew no figure"
