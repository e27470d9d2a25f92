"""The family's Triton kernels (variants/triton_family.py) against its plain path: outputs,
last states and every gradient, for every cell; on a GPU or in Triton's interpreter
(tests/triton_device.py).
"""

import pytest
import torch
from reference_family import assert_minlstm_finite_where_its_gates_underflow
from triton_device import DEVICE, DTYPE, MARKS, assert_compiles_for_hopper, assert_matches

import variants
from variants import family, triton_family
from variants.layer import checked_backend

pytestmark = MARKS


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
    got, exact, plain32 = got + got_grads, exact + exact_grads, plain32 + plain32_grads
    assert_matches(got, exact, plain32, [str(k) for k in range(len(got))])


def test_layer_runs_the_kernels_by_name(one_program):
    x = torch.randn(5, 2, 1, 3, dtype=DTYPE, device=DEVICE)
    rnn = variants.build("GRU", 3, [2, 4], backend="triton", dtype=DTYPE, device=DEVICE)
    ref = variants.build("GRU", 3, [2, 4], backend="plain", dtype=DTYPE, device=DEVICE)
    ref.load_state_dict(rnn.state_dict())
    out, h = rnn(x)
    torch.testing.assert_close(out, ref(x)[0])
    assert (out[:, 0, :, 2:] == 0).all() and (h[:, 0, :, 2:] == 0).all()
    assert checked_backend("triton", rnn.spec, x.device, DTYPE) == ("triton", "")


def test_minlstm_is_finite_where_f_plus_i_underflows(one_program):
    rnn = variants.build("minLSTM", 3, 4, backend="triton", dtype=DTYPE, device=DEVICE)
    assert_minlstm_finite_where_its_gates_underflow(rnn)


# Compiles the kernels for an H100 (sm_90), as test_triton.py does for the LSTM's.
COMPILE_FOR_HOPPER = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from variants import family, triton_family as t
from variants.triton_lstm import _launch

_, launch = _launch(100, 1)
options = {"num_warps": launch.pop("num_warps"), "num_stages": launch.pop("num_stages")}
kernels = [
    (fn, {"CELL": code, "A": family.SAVED[name], **launch})
    for name, code in family.LOOP_CODE.items()
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
    assert_compiles_for_hopper(COMPILE_FOR_HOPPER)
