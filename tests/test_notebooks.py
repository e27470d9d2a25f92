"""Every notebook runs headless on the report of a synthetic study (conftest.py's
synthetic_report) and draws figures, reading the report's tables with one call
(`read_results`) and refitting nothing."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


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

    monkeypatch.setenv("ODYSSEY_RESULTS", str(synthetic_report))
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
