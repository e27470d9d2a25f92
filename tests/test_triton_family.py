"""The family's Triton kernels (variants/triton_family.py) against its plain path: outputs,
last states and every gradient, for every cell.

As in test_triton.py: without a GPU the kernels run in Triton's interpreter on CPU tensors
in float64, TRITON_INTERPRET set here at collection, and every row in one program.
"""

import os
import subprocess
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

import variants  # noqa: E402
from variants import family, triton_family, triton_lstm  # noqa: E402
from variants.triton_lstm import Layout  # noqa: E402

if not triton_lstm.interpreted():
    DEVICE, DTYPE = "cuda", torch.float32
    pytestmark = pytest.mark.cuda
elif os.environ.get("TRITON_INTERPRET") == "1":
    DEVICE, DTYPE = "cpu", torch.float64
else:  # pragma: no cover - triton imported without the interpreter and no GPU
    pytest.skip("triton kernels need a GPU or TRITON_INTERPRET=1", allow_module_level=True)


@pytest.fixture
def one_program():
    if DEVICE == "cpu":
        triton_lstm.use_layout(Layout(chunk=64, rows=64, num_warps=4, r_cache=".ca"))
    yield
    triton_lstm.use_layout(None)


def random_inputs(name, T, K, B, N, seed):
    """pre_x, R, c (GRU) and the initial states; sLSTM's n > 0 except in one trial, whose
    zero state takes the first step's rule."""
    gen = torch.Generator().manual_seed(seed)
    cell = family.CELLS[name]

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    pre_x = randn(T, K, B, len(cell.blocks) * N)
    w_hh = 0.5 * randn(K, len(cell.recurrent) * N, N) if cell.recurrent else None
    b_hh = randn(K, len(cell.recurrent) * N) if cell.recurrent_bias else None
    states = [0.5 * randn(K, B, N) for _ in cell.states]
    if name == "slstm":
        states[2] = states[2].abs() + 0.5
        for s in states[1:]:
            s[0] = 0  # trial 0 starts from the zero state
    return pre_x, w_hh, b_hh, states


def outputs_and_grads(run, name, inputs, seed):
    pre_x, w_hh, b_hh, states = (
        [t.detach().clone().requires_grad_() for t in x]
        if isinstance(x, list)
        else (x.detach().clone().requires_grad_() if x is not None else None)
        for x in inputs
    )
    out, last = run(name, pre_x, w_hh, b_hh, tuple(states))
    gen = torch.Generator().manual_seed(seed)
    loss = sum((t * torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t)).sum()
               for t in (out, *last))  # fmt: skip
    loss.backward()
    leaves = [pre_x, w_hh, b_hh, *states]
    return [out, *last], [t.grad if t is not None else None for t in leaves]


@pytest.mark.parametrize("name", family.CELLS)
def test_kernels_match_the_plain_path(name, one_program):
    """N = 5 in a program of 16 columns, K = 3, B = 2: padding masked in both."""
    inputs = random_inputs(name, 4, 3, 2, 5, seed=0)
    on = [
        [t.to(DEVICE, DTYPE) for t in x]
        if isinstance(x, list)
        else (x.to(DEVICE, DTYPE) if x is not None else None)
        for x in inputs
    ]
    got, got_grads = outputs_and_grads(triton_family.recurrence, name, on, 1)
    exact, exact_grads = outputs_and_grads(family.plain_recurrence, name, inputs, 1)
    as32 = [[t.float() for t in x] if isinstance(x, list) else x if x is None else x.float()
            for x in inputs]  # fmt: skip
    plain32, plain32_grads = outputs_and_grads(family.plain_recurrence, name, as32, 1)
    for k, (g, e, p) in enumerate(zip(got + got_grads, exact + exact_grads,
                                      plain32 + plain32_grads)):  # fmt: skip
        assert (g is None) == (e is None), k
        if e is None:
            continue
        g, p = g.detach().cpu().double(), p.detach().double()
        if DTYPE == torch.float64:
            torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-11, msg=str(k))
        else:  # float32 on a GPU: as close as the plain path's own float32 error allows
            error, plain_error = (g - e).norm(), (p - e).norm()
            assert error <= max(4 * plain_error, 1e-6 * e.norm()), (k, error, plain_error)


def test_layer_runs_the_kernels_by_name(one_program):
    x = torch.randn(5, 2, 1, 3, dtype=DTYPE, device=DEVICE)
    rnn = variants.build("GRU", 3, [2, 4], backend="triton", dtype=DTYPE, device=DEVICE)
    ref = variants.build("GRU", 3, [2, 4], backend="plain", dtype=DTYPE, device=DEVICE)
    ref.load_state_dict(rnn.state_dict())
    out, h = rnn(x)
    torch.testing.assert_close(out, ref(x)[0])
    assert (out[:, 0, :, 2:] == 0).all() and (h[:, 0, :, 2:] == 0).all()
    assert family.resolve_path("triton", x.device, DTYPE) == "triton"


# Compiles the kernels for an H100 (sm_90) with Triton's own compiler and ptxas, which need
# no GPU, as test_triton.py does for the LSTM's: the interpreter does not check what
# Triton's compiler accepts.
COMPILE_FOR_HOPPER = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from variants import triton_family as t
from variants.triton_lstm import _launch

_, launch = _launch(100, 1)
options = {"num_warps": launch.pop("num_warps"), "num_stages": launch.pop("num_stages")}
kernels = [
    (fn, {"CELL": code, "A": t.SAVED[name], **launch})
    for name, code in t.CELL_CODE.items()
    for fn in (t._forward_kernel, t._backward_kernel)
]
kernels += [(fn, {"BLOCK": t.SCAN_BLOCK}) for fn in (t._scan_forward, t._scan_backward)]
for fn, constants in kernels:
    signature = {
        a: "constexpr" if a in constants else "*fp32" if a.endswith("_ptr") else "i32"
        for a in fn.arg_names
    }
    triton.compile(ASTSource(fn, signature, constants), target=GPUTarget("cuda", 90, 32),
                   options=options)
"""


@pytest.mark.skipif(DEVICE == "cuda", reason="on a GPU every test compiles the kernels")
def test_kernels_compile_for_hopper():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run(
        [sys.executable, "-c", COMPILE_FOR_HOPPER], env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
