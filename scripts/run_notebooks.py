"""Run every notebook of notebooks/ headless on one report folder and write the executed
copies into another folder (`make notebooks`). The tracked notebooks are only read: they stay
without outputs, and an --out inside notebooks/ is refused.

    python scripts/run_notebooks.py --results results/demo --out build/notebooks

The notebooks find their report folder in $ODYSSEY_RESULTS, which the kernels inherit. A
notebook that fails is written as far as it ran (its traceback in the failing cell), with one
line naming it; the ones before it are kept. Exit status: 0, 1 if a notebook failed, 2 for a
folder that is not a report.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--results", required=True, help="a folder `odyssey report` wrote (its --out)"
    )
    parser.add_argument("--out", required=True, help="where the executed notebooks go")
    args = parser.parse_args(argv)
    results, out = Path(args.results), Path(args.out).resolve()
    if not (results / "trials.csv").is_file():
        print(
            f"run_notebooks: {results} holds no trials.csv; expected a folder `odyssey report` "
            "wrote, e.g. RESULTS=results/demo after `make demo`",
            file=sys.stderr,
        )
        return 2
    if out.is_relative_to(NOTEBOOKS):
        print(
            f"run_notebooks: --out {out} is inside {NOTEBOOKS}, whose notebooks are tracked "
            "without outputs; give a folder outside it",
            file=sys.stderr,
        )
        return 2
    out.mkdir(parents=True, exist_ok=True)
    os.environ["ODYSSEY_RESULTS"] = str(results.resolve())  # the kernels inherit it
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        client = NotebookClient(
            notebook,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )
        try:
            # the kernel process's own log lines (its transport, not the cells) stay off screen
            client.execute(stderr=subprocess.DEVNULL)
        except CellExecutionError as err:
            nbformat.write(notebook, out / path.name)
            print(
                f"run_notebooks: {path.name} failed ({err.ename}: {err.evalue}); see "
                f"{out / path.name}",
                file=sys.stderr,
            )
            return 1
        nbformat.write(notebook, out / path.name)
        print(out / path.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
