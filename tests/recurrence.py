"""What the tests of the LSTM's compute paths (fused, compiled, triton) share: every spec,
random inputs of `recurrence`, its outputs and gradients, and the checks against the plain
path (variants/cell.py)."""

import itertools

import torch

import variants
from variants import Spec, cell

SWITCHES = [
    "input_gate",
    "forget_gate",
    "output_gate",
    "input_activation",
    "output_activation",
    "peepholes",
    "coupled_input_forget",
    "full_gate_recurrence",
]
INPUTS = ["pre_x", "w_hh", "peephole", "w_gg", "y0", "c0"]  # the arguments of `recurrence`
# Plain, coupled, full gate recurrence: the float32 error is checked at paper sizes on these.
FLOAT32_CHECKED = ["V", "CIFG", "FGR"]


def all_specs():
    """Every combination of the switches (coupling needs both gates it couples)."""
    for values in itertools.product([True, False], repeat=len(SWITCHES)):
        kwargs = dict(zip(SWITCHES, values))
        if kwargs["coupled_input_forget"] and not (kwargs["input_gate"] and kwargs["forget_gate"]):
            continue
        yield Spec(**kwargs)


def random_inputs(spec, T, K, B, N, dtype, device, seed):
    """Inputs of `recurrence` with every tensor a leaf that requires grad."""
    gen = torch.Generator().manual_seed(seed)
    G, NG = len(spec.blocks) * N, len(spec.gates) * N

    def rand(*shape, scale=0.5):
        t = torch.randn(shape, generator=gen, dtype=dtype) * scale
        return t.to(device).requires_grad_()

    peephole = rand(K, NG) if spec.peepholes and spec.gates else None
    w_gg = rand(K, NG, NG) if spec.full_gate_recurrence and spec.gates else None
    return rand(T, K, B, G, scale=1.0), rand(K, G, N), peephole, w_gg, rand(K, B, N), rand(K, B, N)


def outputs_and_grads(recurrence, spec, inputs, seed):
    inputs = [t.detach().clone().requires_grad_() if t is not None else None for t in inputs]
    out, c_T = recurrence(spec, *inputs)
    gen = torch.Generator().manual_seed(seed)
    # Drawn in float64 whatever the dtype: the same probes for a float32 run and its reference.
    probe = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out)
    probe_c = torch.randn(c_T.shape, generator=gen, dtype=torch.float64).to(out)
    ((out * probe).sum() + (c_T * probe_c).sum()).backward()
    return out, c_T, [t.grad if t is not None else None for t in inputs]


def assert_matches_plain(recurrence, spec, inputs):
    """Outputs, last cell state and every gradient as the plain path's, to float64 rounding."""
    out, c_T, grads = outputs_and_grads(recurrence, spec, inputs, seed=1)
    ref_out, ref_c, ref_grads = outputs_and_grads(cell.recurrence, spec, inputs, seed=1)
    torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c_T, ref_c, rtol=1e-12, atol=1e-12)
    for name, g, ref in zip(INPUTS, grads, ref_grads):
        assert (g is None) == (ref is None), name
        if ref is not None:
            torch.testing.assert_close(g, ref, rtol=1e-10, atol=1e-12, msg=name)


def assert_float32_error_is_that_of_the_plain_path(name, backend, device):
    """At paper sizes in float32, `backend` is as close to float64 as the plain path."""
    torch.manual_seed(0)
    template = variants.build(name, 39, [100, 60], dtype=torch.float64)
    x = torch.randn(100, 2, 1, 39, dtype=torch.float64)
    results = {}
    for path, dtype in (
        ("plain", torch.float64),
        ("plain", torch.float32),
        (backend, torch.float32),
    ):
        layer = variants.build(name, 39, [100, 60], backend=path, device=device, dtype=dtype)
        layer.load_state_dict(template.state_dict())
        out, (y_n, c_n) = layer(x.to(device, dtype))
        (out.square().sum() + c_n.sum()).backward()
        tensors = [out, c_n] + [p.grad for p in layer.parameters()]
        results[path, dtype] = [t.detach().double().cpu() for t in tensors]
    exact = results["plain", torch.float64]
    for got, plain, ref in zip(
        results[backend, torch.float32], results["plain", torch.float32], exact
    ):
        error, plain_error = ((t - ref).norm() / ref.norm() for t in (got, plain))
        assert error < max(4 * plain_error, 1e-6), (error, plain_error)
