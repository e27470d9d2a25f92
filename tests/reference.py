"""A deliberately plain LSTM straight from the equations of docs/paper.md §1–2.

float64, one sequence, one step at a time, one named matrix per term. Every fast path
of the variants package is checked against this (and the family's against
tests/reference_family.py), on the weights `randomize` writes into a layer.
"""

import torch


def randomize(rnn, scale=0.5, seed=0):
    """Random weights written through the paper_weights() views; returns float64 copies."""
    gen = torch.Generator().manual_seed(seed)
    weights = {}
    for name, view in rnn.paper_weights().items():
        value = torch.randn(view.shape, generator=gen, dtype=torch.float64) * scale
        view.copy_(value)
        weights[name] = value
    return weights


def reference_lstm(spec, w, x):
    """Block outputs [T, N] of one direction for x [T, M]; w maps the paper's names to tensors."""
    N = w["W_z"].shape[0]
    gates = [
        g
        for g, on in (
            ("i", spec.input_gate),
            ("f", spec.forget_gate and not spec.coupled_input_forget),
            ("o", spec.output_gate),
        )
        if on
    ]
    y = torch.zeros(N, dtype=x.dtype)
    c = torch.zeros(N, dtype=x.dtype)
    prev = {a: torch.zeros(N, dtype=x.dtype) for a in gates}  # gate activations at t-1

    def gate(b, x_t, cell):
        s = w[f"W_{b}"] @ x_t + w[f"R_{b}"] @ y + w[f"b_{b}"]
        if spec.peepholes:
            s = s + w[f"p_{b}"] * cell
        if spec.full_gate_recurrence:
            for a in gates:
                s = s + w[f"R_{a}{b}"] @ prev[a]
        return torch.sigmoid(s)

    outputs = []
    for x_t in x:
        a_z = w["W_z"] @ x_t + w["R_z"] @ y + w["b_z"]
        z = torch.tanh(a_z) if spec.input_activation else a_z
        i = gate("i", x_t, c) if spec.input_gate else torch.ones(N, dtype=x.dtype)
        if spec.coupled_input_forget:
            f = 1 - i
        elif spec.forget_gate:
            f = gate("f", x_t, c)
        else:
            f = torch.ones(N, dtype=x.dtype)
        c = z * i + c * f
        o = gate("o", x_t, c) if spec.output_gate else torch.ones(N, dtype=x.dtype)
        y = (torch.tanh(c) if spec.output_activation else c) * o
        prev = {"i": i, "f": f, "o": o}
        prev = {a: prev[a] for a in gates}
        outputs.append(y)
    return torch.stack(outputs)


def reference_bidirectional(spec, w_fwd, w_bwd, x):
    """[T, 2N]: forward outputs, then the reverse direction's, as torch.nn.LSTM concatenates."""
    return torch.cat(
        [reference_lstm(spec, w_fwd, x), reference_lstm(spec, w_bwd, x.flip(0)).flip(0)], -1
    )
