"""The family's cells are data (variants/cells.py) and share the LSTM variants' backend
chooser: a new cell is one registry row, the family's kernels check themselves and give way
to the plain path, $ODYSSEY_BACKEND reaches the family, and variants/ has no import circle."""

import graphlib
import re
from pathlib import Path

import pytest
import torch

import variants
from variants import cells, compiled, layer, spec
from variants.layer import checked_backend


@pytest.fixture(autouse=True)
def fresh_checks(monkeypatch):
    """Every test starts with no kernel checked in this process, and leaves none behind."""
    monkeypatch.setattr(layer, "_checks", {})
    monkeypatch.delenv("ODYSSEY_BACKEND", raising=False)


def test_variants_has_no_import_circle():
    """Every `from . import x` and `from .x import`, at module level or deferred."""
    package = Path(variants.__file__).parent
    graph = {}
    for source in package.glob("*.py"):
        text = source.read_text()
        named = re.findall(r"^\s*from \.(\w+) import", text, re.M)
        listed = re.findall(r"^\s*from \. import ([\w, ]+)", text, re.M)
        graph[source.stem] = {*named, *(m.strip() for group in listed for m in group.split(","))}
    assert graph["layer"] >= {"cells", "family_compiled"} and "layer" in graph["family"]
    graphlib.TopologicalSorter(graph).static_order()  # raises CycleError on a circle


def _ema_step(px, rt, c, h):
    xa, xh = px.chunk(2, -1)
    a = torch.sigmoid(xa)
    return (a * h + (1 - a) * xh,)


def _ema_linear(pre_x):
    xa, xh = pre_x.chunk(2, -1)
    a = torch.sigmoid(xa)
    return a, (1 - a) * xh


EMA = cells.Cell(
    "EMA",
    ("a", "h"),
    (),
    False,
    ("h",),
    (("b_a", 1.0),),
    "a moving average with a gate from x",
    _ema_step,
    linear=_ema_linear,
)


@pytest.mark.skipif(not compiled.runs("cpu", torch.float64), reason="no C++ compiler")
def test_a_new_cell_is_one_row(monkeypatch):
    """A cell whose gate sees only the input, added as a registry row and nothing else:
    built by name, its compiled path (the scan) passes the self-check and gives the plain
    path's outputs and gradients, and h follows its equation step by step."""
    monkeypatch.setitem(cells.CELLS, "ema", EMA)
    monkeypatch.setattr(spec, "CELLS", (*spec.CELLS, "ema"))
    monkeypatch.setitem(spec.PRESETS, "EMA", spec.Spec(cell="ema"))
    assert checked_backend("auto", spec.Spec(cell="ema"), "cpu", torch.float64) == ("compiled", "")
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    results = {}
    for backend in ("plain", "compiled"):
        torch.manual_seed(0)
        rnn = variants.build("EMA", 3, 4, backend=backend, dtype=torch.float64, init_std=0.5)
        out, h_T = rnn(x)
        out.square().sum().backward()
        results[backend] = [t.detach() for t in (out, h_T, *(p.grad for p in rnn.parameters()))]
    for got, want in zip(results["compiled"], results["plain"]):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    w = rnn.paper_weights()
    h = torch.zeros(2, 4, dtype=torch.float64)
    for t in range(6):
        a = torch.sigmoid(x[t] @ w["W_a"].T + w["b_a"])  # the equation, written out
        h = a * h + (1 - a) * (x[t] @ w["W_h"].T + w["b_h"])
        torch.testing.assert_close(results["plain"][0][t], h)
    assert variants.forget_biases(spec.Spec(cell="ema")) == {"b_a": 1.0}


def test_a_cell_without_fast_forms_runs_its_plain_step(monkeypatch, capfd):
    """A row with neither a loop code nor a linear form: every backend runs its plain step,
    without a word on stderr."""
    slow = cells.Cell(*[getattr(EMA, f) for f in ("variant", "blocks", "recurrent",
                      "recurrent_bias", "states", "forget_bias", "title", "step")])  # fmt: skip
    monkeypatch.setitem(cells.CELLS, "ema", slow)
    monkeypatch.setattr(spec, "CELLS", (*spec.CELLS, "ema"))
    for backend in ("auto", "compiled", "triton"):
        assert checked_backend(backend, spec.Spec(cell="ema"), "cpu", torch.float32) == (
            "plain",
            "",
        )
    out, _ = variants.build(spec.Spec(cell="ema"), 3, 4)(torch.randn(5, 2, 3))
    assert out.shape == (5, 2, 4) and capfd.readouterr().err == ""


def failing(*args):
    raise RuntimeError("the loop ran out of registers\nsecond line")


def off_by_one_percent(name, pre_x, w_hh, b_hh, states):
    out, finals = cells.plain_recurrence(name, pre_x, w_hh, b_hh, states)
    return out * 1.01, finals


def wrong_slstm_normaliser_gradient(name, pre_x, w_hh, b_hh, states):
    """Right outputs; the initial normaliser's gradient doubled (2 n0 - n0)."""
    h0, c0, n0, m0 = states
    return cells.plain_recurrence(name, pre_x, w_hh, b_hh, (h0, c0, 2 * n0 - n0.detach(), m0))


@pytest.mark.parametrize(
    "name, kernel, message",
    [
        ("GRU", failing, r"failed: RuntimeError: the loop ran out of registers$"),
        ("minLSTM", off_by_one_percent, r"disagree with the plain path \(output: relative"),
        ("sLSTM", wrong_slstm_normaliser_gradient, r"disagree .* \(n0: relative error 1\)"),
    ],
)
def test_family_kernels_that_fail_or_disagree_give_way_to_the_plain_path(
    name, kernel, message, monkeypatch, capfd
):
    real = layer.family_recurrence
    monkeypatch.setattr(
        layer, "family_recurrence", lambda path: kernel if path == "compiled" else real(path)
    )
    monkeypatch.setattr(compiled, "runs", lambda device, dtype: True)
    torch.manual_seed(0)
    rnns = {b: variants.build(name, 3, [4, 2], backend=b) for b in ("compiled", "plain")}
    rnns["compiled"].load_state_dict(rnns["plain"].state_dict())
    x = torch.randn(5, 2, 3, 3)
    for _ in range(2):
        torch.testing.assert_close(rnns["compiled"](x)[0], rnns["plain"](x)[0], rtol=0, atol=0)
    err = capfd.readouterr().err.splitlines()
    cell = variants.resolve(name).cell
    assert len(err) == 1, err
    assert err[0].startswith(f"variants: the compiled kernels on cpu (cell={cell}, torch.float32)")
    assert err[0].endswith("; using the plain path")
    ran, why = checked_backend("compiled", variants.resolve(name), "cpu", torch.float32)
    assert ran == "plain"
    assert re.search(message, why), why


@pytest.mark.skipif(not compiled.runs("cpu", torch.float32), reason="no C++ compiler")
def test_the_family_kernels_pass_their_own_check():
    for name in variants.FAMILY[1:]:
        for dtype in (torch.float32, torch.float64):
            ran = checked_backend("auto", variants.resolve(name), "cpu", dtype)
            assert ran == ("compiled", ""), (name, dtype)


@pytest.mark.parametrize(
    "chosen, lstm, family", [("plain", "plain", "plain"), ("fused", "fused", "plain")]
)
def test_odyssey_backend_reaches_the_family(chosen, lstm, family, monkeypatch):
    monkeypatch.setenv("ODYSSEY_BACKEND", chosen)
    assert checked_backend("auto", variants.resolve("V"), "cpu", torch.float32)[0] == lstm
    assert checked_backend("auto", variants.resolve("GRU"), "cpu", torch.float32)[0] == family
    # An explicit backend is not overridden.
    assert checked_backend("plain", variants.resolve("sLSTM"), "cpu", torch.float32)[0] == "plain"


def test_ema_step_is_what_the_linear_form_scans():
    """The test cell's two forms agree (else the row test above would test nothing)."""
    pre_x, h = torch.randn(2, 3, 8, dtype=torch.float64), torch.randn(2, 3, 4, dtype=torch.float64)
    a, b = _ema_linear(pre_x)
    torch.testing.assert_close(_ema_step(pre_x, None, None, h)[0], a * h + b)
