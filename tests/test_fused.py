"""The fused recurrence against the plain one, for every combination of the spec's switches."""

import itertools

import pytest
import torch

import variants
from variants import Spec, cell, fused

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


def all_specs():
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


@pytest.mark.parametrize("spec", list(all_specs()), ids=lambda s: s.describe())
def test_every_spec_matches_plain(spec, device):
    inputs = random_inputs(spec, T=6, K=3, B=2, N=4, dtype=torch.float64, device=device, seed=0)
    out, c_T, grads = outputs_and_grads(fused.recurrence, spec, inputs, seed=1)
    ref_out, ref_c, ref_grads = outputs_and_grads(cell.recurrence, spec, inputs, seed=1)
    torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c_T, ref_c, rtol=1e-12, atol=1e-12)
    names = ["pre_x", "w_hh", "peephole", "w_gg", "y0", "c0"]
    for name, g, ref in zip(names, grads, ref_grads):
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


@pytest.mark.parametrize("name", ["V", "CIFG", "FGR"])
def test_float32_error_is_that_of_the_plain_path(name, device):
    assert_float32_error_is_that_of_the_plain_path(name, "fused", device)


def test_initial_state_gradients_through_the_layer():
    torch.manual_seed(0)
    layers = {
        b: variants.build("V", 3, 4, bidirectional=True, backend=b) for b in ("plain", "auto")
    }
    layers["auto"].load_state_dict(layers["plain"].state_dict())
    x = torch.randn(5, 2, 3, dtype=torch.float32)
    hx = [torch.randn(2, 2, 4) for _ in range(2)]
    grads = {}
    for b, layer in layers.items():
        state = [s.clone().requires_grad_() for s in hx]
        out, (y_n, c_n) = layer(x, tuple(state))
        (out.sum() + c_n.square().sum()).backward()
        grads[b] = [s.grad for s in state]
    for got, ref in zip(grads["auto"], grads["plain"]):
        torch.testing.assert_close(got, ref)
