"""Deliberately plain cells of the gated-RNN family, straight from the equations of
docs/family.md.

float64, one sequence, one step at a time, one named matrix per term. Every path of
variants.family is checked against these; sLSTM's stabilised form also against its
unstabilised one.
"""

import torch


def _zeros(w):
    n = next(v for k, v in w.items() if k.startswith("W_")).shape[0]
    return torch.zeros(n, dtype=torch.float64)


def gru(w, x):
    h, outputs = _zeros(w), []
    for x_t in x:
        r = torch.sigmoid(w["W_r"] @ x_t + w["b_r"] + w["R_r"] @ h + w["c_r"])
        u = torch.sigmoid(w["W_u"] @ x_t + w["b_u"] + w["R_u"] @ h + w["c_u"])
        n = torch.tanh(w["W_n"] @ x_t + w["b_n"] + r * (w["R_n"] @ h + w["c_n"]))
        h = (1 - u) * n + u * h
        outputs.append(h)
    return torch.stack(outputs)


def mgu(w, x):
    h, outputs = _zeros(w), []
    for x_t in x:
        f = torch.sigmoid(w["W_f"] @ x_t + w["R_f"] @ h + w["b_f"])
        candidate = torch.tanh(w["W_h"] @ x_t + w["R_h"] @ (f * h) + w["b_h"])
        h = (1 - f) * h + f * candidate
        outputs.append(h)
    return torch.stack(outputs)


def mingru(w, x):
    h, outputs = _zeros(w), []
    for x_t in x:
        u = torch.sigmoid(w["W_u"] @ x_t + w["b_u"])
        candidate = w["W_h"] @ x_t + w["b_h"]
        h = (1 - u) * h + u * candidate
        outputs.append(h)
    return torch.stack(outputs)


def minlstm(w, x):
    h, outputs = _zeros(w), []
    for x_t in x:
        f = torch.sigmoid(w["W_f"] @ x_t + w["b_f"])
        i = torch.sigmoid(w["W_i"] @ x_t + w["b_i"])
        candidate = w["W_h"] @ x_t + w["b_h"]
        h = (f * h + i * candidate) / (f + i)
        outputs.append(h)
    return torch.stack(outputs)


def _slstm_pre(w, x_t, h):
    return {g: w[f"W_{g}"] @ x_t + w[f"R_{g}"] @ h + w[f"b_{g}"] for g in "zifo"}


def slstm(w, x, states=False):
    """The stabilised sLSTM from zero states; the first step sets m = ĩ (as the authors'
    code does while n is zero) and f = 0 (nothing to keep). With states=True, also every
    step's (c, n, m)."""
    h, c, n, m = _zeros(w), _zeros(w), _zeros(w), _zeros(w)
    outputs, trace = [], []
    for t, x_t in enumerate(x):
        a = _slstm_pre(w, x_t, h)
        log_f = torch.nn.functional.logsigmoid(a["f"])
        m_new = a["i"] if t == 0 else torch.maximum(log_f + m, a["i"])
        i = torch.exp(a["i"] - m_new)
        f = torch.exp(log_f + m - m_new) if t else torch.zeros_like(m)
        c = f * c + i * torch.tanh(a["z"])
        n = f * n + i
        m = m_new
        h = torch.sigmoid(a["o"]) * c / n
        outputs.append(h)
        trace.append((c, n, m))
    return (torch.stack(outputs), trace) if states else torch.stack(outputs)


def slstm_unstabilised(w, x):
    """sLSTM as first written: i = exp(ĩ), f = σ(f̃), no stabiliser (overflows for large ĩ)."""
    h, c, n = _zeros(w), _zeros(w), _zeros(w)
    outputs = []
    for x_t in x:
        a = _slstm_pre(w, x_t, h)
        i, f = torch.exp(a["i"]), torch.sigmoid(a["f"])
        c = f * c + i * torch.tanh(a["z"])
        n = f * n + i
        h = torch.sigmoid(a["o"]) * c / n
        outputs.append(h)
    return torch.stack(outputs)


CELLS = {"gru": gru, "mgu": mgu, "mingru": mingru, "minlstm": minlstm, "slstm": slstm}


def reference(cell, w, x, bidirectional=False):
    """[T, N] (bidirectional: [T, 2N], the reverse direction's outputs second)."""
    step = CELLS[cell]
    if not bidirectional:
        return step(w, x)
    fwd = {k: v for k, v in w.items() if not k.endswith("_reverse")}
    bwd = {k.removesuffix("_reverse"): v for k, v in w.items() if k.endswith("_reverse")}
    return torch.cat([step(fwd, x), step(bwd, x.flip(0)).flip(0)], -1)


def assert_minlstm_finite_where_its_gates_underflow(rnn):
    """Biases that put f and i (both) below float32's range in unit 0 and 1, below float64's
    in unit 2 (where the reference gives NaN): outputs and gradients finite everywhere, equal
    to the float64 reference wherever it is finite."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        views = rnn.paper_weights()
        for view in views.values():
            view.copy_(torch.randn(view.shape, generator=gen, dtype=torch.float64))
        views["b_f"].copy_(torch.tensor([-300.0, -120.0, -1000.0, 2.0]))
        views["b_i"].copy_(torch.tensor([-310.0, -100.0, -990.0, -200.0]))
    weights = {k: v.detach().double().cpu() for k, v in rnn.paper_weights().items()}
    T, B = 7, 2
    x = torch.randn(T, B, rnn.input_size, generator=gen, dtype=torch.float64)
    out, _ = rnn(x.to(rnn.weight_ih))
    out.sum().backward()
    out = out.detach().double().cpu()
    ref = torch.stack([minlstm(weights, x[:, b]) for b in range(B)], 1)
    assert out.isfinite().all()
    assert all(p.grad.isfinite().all() for p in rnn.parameters())
    finite = ref.isfinite()
    assert not finite[..., 2].any() and finite[..., :2].all()  # the case this test is for
    torch.testing.assert_close(out[finite], ref[finite], rtol=1e-3, atol=1e-3)
