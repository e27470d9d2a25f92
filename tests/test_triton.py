"""The triton backend against the plain path: outputs and every gradient, for every preset
and every combination of switches; on a GPU or in Triton's interpreter (tests/triton_device.py).
"""

import pytest
import torch
from recurrence import FLOAT32_CHECKED, INPUTS, all_specs, outputs_and_grads, random_inputs
from triton_device import DEVICE, DTYPE, MARKS, assert_compiles_for_hopper, assert_matches

import variants
from variants import cell, layer, triton_lstm
from variants.layer import checked_backend
from variants.triton_lstm import Layout

pytestmark = MARKS


def check_recurrence(spec, T, K, B, N, seed=0):
    inputs = random_inputs(spec, T, K, B, N, torch.float64, "cpu", seed)
    to = [t.detach().to(DEVICE, DTYPE) if t is not None else None for t in inputs]
    out, c_T, grads = outputs_and_grads(triton_lstm.recurrence, spec, to, seed + 1)
    exact = outputs_and_grads(cell.recurrence, spec, inputs, seed + 1)
    as32 = [t.detach().float() if t is not None else None for t in inputs]
    plain32 = outputs_and_grads(cell.recurrence, spec, as32, seed + 1)
    names = ["out", "c_T", *INPUTS]
    assert_matches(
        [out, c_T, *grads], [exact[0], exact[1], *exact[2]], [plain32[0], plain32[1], *plain32[2]],
        names,
    )  # fmt: skip


@pytest.mark.parametrize("spec", list(all_specs()), ids=lambda s: s.describe())
def test_every_combination_matches_plain(spec, one_program):
    """N = 5 in a program of 16 columns, B = 2: padding masked in both."""
    check_recurrence(spec, T=4, K=3, B=2, N=5)


LAYOUTS = {
    "passes": Layout(chunk=2, rows=16, num_warps=2, r_cache=".ca"),  # 4 passes, last masked
    "row-per-program": Layout(chunk=4, rows=1, num_warps=1, r_cache=".ca"),  # K B programs
    "programs-span-trials": Layout(chunk=8, rows=4, num_warps=2, r_cache=".cg"),
}


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
@pytest.mark.parametrize("name", ["V", "FGR"])
def test_layouts(name, layout):
    """Several passes per product, one program per row, programs that span trials (B = 3
    rows per trial, 4 per program)."""
    triton_lstm.use_layout(layout)
    try:
        check_recurrence(variants.resolve(name), T=3, K=2, B=3, N=7)
    finally:
        triton_lstm.use_layout(None)


def layer_outputs_and_grads(layer, x, hx, lengths, probe):
    hx = [h.detach().clone().requires_grad_() for h in hx]
    out, (y_n, c_n) = layer(x, tuple(hx), lengths=lengths)
    ((out * probe).sum() + (c_n * probe[0, :, :, : c_n.shape[-1]]).sum()).backward()
    grads = [p.grad for p in layer.parameters()] + [h.grad for h in hx]
    return [out, c_n, *grads]


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("name", variants.PAPER_VARIANTS)
def test_presets_through_the_layer(name, bidirectional, one_program):
    """A padded population (hidden 5, 8, 3) of B = 2 sequences of lengths 6 and 4, with an
    initial state: every output, final state and gradient as the plain path gives."""
    torch.manual_seed(0)
    sizes, T, B, M = [5, 8, 3], 6, 2, 3
    D = 2 if bidirectional else 1
    template = variants.build(name, M, sizes, bidirectional=bidirectional, dtype=torch.float64)
    x = torch.randn(T, len(sizes), B, M, dtype=torch.float64)
    hx = [torch.randn(D, len(sizes), B, 8, dtype=torch.float64) * 0.5 for _ in range(2)]
    probe = torch.randn(T, len(sizes), B, D * 8, dtype=torch.float64)
    lengths = torch.tensor([6, 4])
    results = {}
    for backend, device, dtype in (
        ("triton", DEVICE, DTYPE),
        ("plain", "cpu", torch.float64),
        ("plain", "cpu", torch.float32),
    ):
        layer = variants.build(
            name, M, sizes, bidirectional=bidirectional, backend=backend, device=device, dtype=dtype
        )
        layer.load_state_dict(template.state_dict())
        moved = [t.to(device, dtype) for t in (x, *hx, probe)]
        results[backend, dtype] = layer_outputs_and_grads(
            layer, moved[0], moved[1:3], lengths, moved[3]
        )
    names = ["out", "c_n", *(n for n, _ in template.named_parameters()), "y0", "c0"]
    assert_matches(
        results["triton", DTYPE], results["plain", torch.float64],
        results["plain", torch.float32], names,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["V", "NOG", "FGR"])
def test_forward_only_records_nothing(name, one_program):
    """Without gradients the forward-only kernel runs: same outputs, no autograd record."""
    spec = variants.resolve(name)
    inputs = random_inputs(spec, 4, 3, 2, 5, DTYPE, DEVICE, seed=0)
    out, c_T = triton_lstm.recurrence(spec, *inputs)
    with torch.no_grad():
        out_eval, c_eval = triton_lstm.recurrence(spec, *inputs)
    assert out_eval.grad_fn is None and c_eval.grad_fn is None
    torch.testing.assert_close(out_eval, out.detach())
    torch.testing.assert_close(c_eval, c_T.detach())


@pytest.mark.parametrize("name", FLOAT32_CHECKED)
def test_float32_error_is_that_of_the_plain_path(name, one_program):
    """Larger sizes in float32: on a GPU the paper's (hidden 100 and 60, T = 100); under
    the interpreter smaller ones. Within the fused path's rule (tests/recurrence.py)."""
    sizes, T = ([100, 60], 100) if DEVICE == "cuda" else ([24, 13], 16)
    torch.manual_seed(0)
    template = variants.build(name, 39, sizes, dtype=torch.float64)
    x = torch.randn(T, len(sizes), 1, 39, dtype=torch.float64)
    results = {}
    for backend, device, dtype in (
        ("plain", "cpu", torch.float64),
        ("plain", "cpu", torch.float32),
        ("triton", DEVICE, torch.float32),
    ):
        layer = variants.build(name, 39, sizes, backend=backend, device=device, dtype=dtype)
        layer.load_state_dict(template.state_dict())
        out, (y_n, c_n) = layer(x.to(device, dtype))
        (out.square().sum() + c_n.sum()).backward()
        results[backend, dtype] = [out, c_n] + [p.grad for p in layer.parameters()]
    exact = results["plain", torch.float64]
    for got, plain, ref in zip(
        results["triton", torch.float32], results["plain", torch.float32], exact
    ):
        got, plain = got.detach().cpu().double(), plain.detach().double()
        error, plain_error = ((t - ref).norm() / ref.norm() for t in (got, plain))
        assert error < max(4 * plain_error, 1e-6), (error, plain_error)


@pytest.mark.parametrize("name", variants.PAPER_VARIANTS)
def test_the_kernels_pass_their_own_check(name, one_program, monkeypatch):
    """What the layer runs on the first use of a (device, spec, dtype): else it would fall
    back to the fused path."""
    monkeypatch.setattr(layer, "_checks", {})
    assert checked_backend("triton", variants.resolve(name), DEVICE, DTYPE) == ("triton", "")


@pytest.mark.skipif(DEVICE != "cuda", reason="auto picks triton on CUDA only")
def test_auto_is_triton_on_cuda(monkeypatch):
    monkeypatch.delenv("ODYSSEY_BACKEND", raising=False)
    calls = []
    monkeypatch.setattr(
        triton_lstm, "recurrence", lambda *a: calls.append(1) or cell.recurrence(*a)
    )
    variants.build("V", 3, 4, device="cuda")(torch.randn(5, 1, 3, device="cuda"))
    assert calls


# Compiles the kernels for an H100 (sm_90) with Triton's own compiler and ptxas, which need
# no GPU: the interpreter runs the kernels' Python, not what Triton's compiler accepts.
COMPILE_FOR_HOPPER = """
import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
import variants
from variants import triton_lstm as t

for name in sys.argv[1:]:
    spec = variants.resolve(name)
    on = object()
    switches = t._switches(
        spec,
        on if spec.peepholes and spec.gates else None,
        on if spec.full_gate_recurrence and spec.gates else None,
    )
    _, launch = t._launch(100, 1)
    options = {"num_warps": launch.pop("num_warps"), "num_stages": launch.pop("num_stages")}
    kernels = (
        (t._forward_kernel, {"ACTS": True, "SAVE": True}),
        (t._forward_kernel, {"ACTS": switches["FGR"], "SAVE": False}),
        (t._backward_kernel, {}),
    )
    for fn, extra in kernels:
        constants = {**switches, **launch, **extra}
        signature = {
            a: "constexpr" if a in constants else "*fp32" if a.endswith("_ptr") else "i32"
            for a in fn.arg_names
        }
        source = ASTSource(fn, signature, constants)
        triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options)
"""


@pytest.mark.skipif(DEVICE == "cuda", reason="on a GPU every test compiles the kernels")
def test_kernels_compile_for_hopper():
    """Every switch on and off once: peepholes, the gates, coupling, full gate recurrence,
    the activations; forward saving, forward only and backward; the default layout."""
    assert_compiles_for_hopper(COMPILE_FOR_HOPPER, "V", "CIFG+FGR", "NIAF+NOAF+NP", "NIG+NFG+NOG")
