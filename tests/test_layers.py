"""The layers of the package import downwards only: a lower layer never imports a higher one,
so each can be read, tested and reused without the ones above it (docs/architecture.md)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Bottom to top. `study/__init__.py` is the public API over all of them and is not a layer.
LAYERS = [
    "variants",
    "study.errors",
    "study.benchmarks",
    "study.training",
    "study.runner",
    "study.analysis",
    "study.cli",
]


def layer_of(module: str) -> int | None:
    for rank, layer in enumerate(LAYERS):
        if module == layer or module.startswith(layer + "."):
            return rank
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, module: str, package: bool = False) -> set[str]:
    """Every module `source` (the text of `module`) imports, at the top or inside a function,
    with relative imports resolved ('from ..errors import X' in study.runner.x is
    study.errors)."""
    parent = module.split(".") if package else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = parent[: len(parent) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
            # `from study import runner` imports the subpackage `study.runner`
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def library_modules() -> list[Path]:
    paths = sorted((ROOT / "variants").rglob("*.py")) + sorted((ROOT / "study").rglob("*.py"))
    return [p for p in paths if p != ROOT / "study" / "__init__.py"]


@pytest.mark.parametrize("path", library_modules(), ids=module_name)
def test_a_module_imports_no_higher_layer(path):
    module = module_name(path)
    own = layer_of(module)
    assert own is not None, f"{module} belongs to no layer; add it to LAYERS"
    found = imported(path.read_text(), module, path.name == "__init__.py")
    higher = sorted(m for m in found if m != "study" and (layer_of(m) or 0) > own)
    assert not higher, f"{module} ({LAYERS[own]}) imports higher layers: {higher}"


def test_the_check_ranks_relative_and_absolute_imports():
    source = (
        "from ..errors import UserError\n"
        "def f():\n    from ..runner.options import RunOptions\n"
        "from study import analysis\nimport variants\n"
    )
    found = imported(source, "study.training.trainer")
    assert {"study.errors", "study.runner.options", "study.analysis", "variants"} <= found
    own = layer_of("study.training.trainer")
    higher = {m for m in found if m != "study" and (layer_of(m) or 0) > own}
    assert {LAYERS[layer_of(m)] for m in higher} == {"study.runner", "study.analysis"}
