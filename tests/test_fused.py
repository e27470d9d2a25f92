"""The fused recurrence against the plain one, for every combination of the spec's switches."""

import pytest
import torch
from recurrence import (
    FLOAT32_CHECKED,
    all_specs,
    assert_float32_error_is_that_of_the_plain_path,
    assert_matches_plain,
    random_inputs,
)

import variants
from variants import fused


@pytest.mark.parametrize("spec", list(all_specs()), ids=lambda s: s.describe())
def test_every_spec_matches_plain(spec, device):
    inputs = random_inputs(spec, T=6, K=3, B=2, N=4, dtype=torch.float64, device=device, seed=0)
    assert_matches_plain(fused.recurrence, spec, inputs)


@pytest.mark.parametrize("name", FLOAT32_CHECKED)
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
