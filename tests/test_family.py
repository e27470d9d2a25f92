"""The gated-RNN family (variants/family.py) against the float64 references of
tests/reference_family.py, on every path, and GRU against torch.nn.GRU."""

import math

import pytest
import torch
from reference_family import (
    assert_minlstm_finite_where_its_gates_underflow,
    reference,
    slstm,
    slstm_unstabilised,
)
from runs import assert_exact, run_args

import variants
from reference import randomize
from study.analysis import read_results
from study.cli import main
from study.runner.options import resolve_variants
from study.training.protocol import Protocol
from study.training.trainer import PopulationTrainer, TrialConfig
from synthetic import make_benchmark
from variants.family import CELLS

T, B, M = 7, 2, 3
NAMES = {variants.resolve(name).cell: name for name in variants.FAMILY[1:]}  # cell: variant
PATHS = ["plain", "compiled"]


@pytest.fixture(params=PATHS)
def path(request):
    return request.param


def build(cell, hidden, path, **kwargs):
    return variants.build(NAMES[cell], M, hidden, backend=path, dtype=torch.float64, **kwargs)


def first_state(states):
    return states if isinstance(states, torch.Tensor) else states[0]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_matches_reference_outputs_and_gradients(cell, bidirectional, path):
    rnn = build(cell, 4, path, bidirectional=bidirectional)
    weights = randomize(rnn)
    x = torch.randn(T, B, M, dtype=torch.float64)
    probe = torch.randn(T, B, 4 * (1 + bidirectional), dtype=torch.float64)
    out, states = rnn(x)
    (out * probe).sum().backward()
    grads = rnn.paper_weights(grad=True)

    ref_w = {k: v.clone().requires_grad_() for k, v in weights.items()}
    ref_out = torch.stack([reference(cell, ref_w, x[:, b], bidirectional) for b in range(B)], 1)
    (ref_out * probe).sum().backward()

    torch.testing.assert_close(out, ref_out.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(first_state(states)[0], ref_out[-1, :, :4].detach())
    assert set(grads) == set(ref_w)
    for k, w in ref_w.items():
        torch.testing.assert_close(grads[k], w.grad, rtol=1e-9, atol=1e-11, msg=f"grad of {k}")


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_of_the_final_state_and_of_hx(cell, path):
    # Gradients reach the last states (all four of sLSTM's) and the initial ones: checked
    # numerically, so every backward term of the fast paths is exercised.
    rnn = build(cell, [2, 3], path, init_std=0.5)
    x = torch.randn(3, 2, 1, M, dtype=torch.float64, requires_grad=True)
    S = len(CELLS[cell].states)
    # sLSTM's state must be one it can reach: n > 0 (n = 0 means no state yet).
    hx = [0.3 * torch.randn(1, 2, 1, 3, dtype=torch.float64) for _ in range(S)]
    if S > 1:
        hx[2] = hx[2].abs() + 0.5
    names = [n for n, _ in rnn.named_parameters()]

    def f(x, *rest):
        h0, ps = rest[:S], rest[S:]
        state = h0[0] if S == 1 else tuple(h0)
        out, last = torch.func.functional_call(rnn, dict(zip(names, ps)), (x, state))
        return (out, *((last,) if S == 1 else last))

    inputs = (
        x,
        *(h.requires_grad_() for h in hx),
        *(p.detach().clone().requires_grad_() for p in rnn.parameters()),
    )
    assert torch.autograd.gradcheck(f, inputs)


def test_gru_equals_torch_gru(path):
    torch.manual_seed(0)
    N = 5
    ref = torch.nn.GRU(M, N, bidirectional=True, dtype=torch.float64)
    ours = build("gru", N, path, bidirectional=True)
    w = ours.paper_weights()
    with torch.no_grad():
        for sfx, lsfx in (("", "_l0"), ("_reverse", "_l0_reverse")):
            for k, gate in enumerate("run"):  # torch's order: r, z (our u), n
                rows = slice(k * N, (k + 1) * N)
                w[f"W_{gate}{sfx}"].copy_(getattr(ref, "weight_ih" + lsfx)[rows])
                w[f"R_{gate}{sfx}"].copy_(getattr(ref, "weight_hh" + lsfx)[rows])
                w[f"b_{gate}{sfx}"].copy_(getattr(ref, "bias_ih" + lsfx)[rows])
                w[f"c_{gate}{sfx}"].copy_(getattr(ref, "bias_hh" + lsfx)[rows])
    x = torch.randn(T, B, M, dtype=torch.float64)
    h0 = torch.randn(2, B, N, dtype=torch.float64)
    probe = torch.randn(T, B, 2 * N, dtype=torch.float64)
    out, h_n = ours(x, h0)
    ref_out, ref_h = ref(x, h0)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(h_n, ref_h)
    ((out * probe).sum() + h_n.sum()).backward()
    ((ref_out * probe).sum() + ref_h.sum()).backward()
    grads = ours.paper_weights(grad=True)
    for sfx, lsfx in (("", "_l0"), ("_reverse", "_l0_reverse")):
        for k, gate in enumerate("run"):
            rows = slice(k * N, (k + 1) * N)
            for ours_name, theirs in (("W", "weight_ih"), ("R", "weight_hh")):
                expected = getattr(ref, theirs + lsfx).grad[rows]
                torch.testing.assert_close(grads[f"{ours_name}_{gate}{sfx}"], expected)
            for ours_name, theirs in (("b", "bias_ih"), ("c", "bias_hh")):
                expected = getattr(ref, theirs + lsfx).grad[rows]
                torch.testing.assert_close(grads[f"{ours_name}_{gate}{sfx}"], expected)


@pytest.mark.parametrize("cell", CELLS)
def test_population_equals_separate_models(cell, path):
    sizes = [3, 5, 4]
    pop = build(cell, sizes, path, bidirectional=True)
    singles = [build(cell, n, path, bidirectional=True) for n in sizes]
    pop_w = pop.paper_weights()
    for k, single in enumerate(singles):
        randomize(single, seed=k)
        for key, v in single.paper_weights().items():
            pop_w[key][k][tuple(slice(0, s) for s in v.shape)].copy_(v)
    x = torch.randn(T, len(sizes), B, M, dtype=torch.float64)
    out, states = pop(x)
    out.sum().backward()
    pop_g = pop.paper_weights(grad=True)
    N = pop.hidden_size
    pop_states = (states,) if isinstance(states, torch.Tensor) else states
    for k, (single, n) in enumerate(zip(singles, sizes)):
        ref, ref_states = single(x[:, k])
        ref.sum().backward()
        ref_states = (ref_states,) if isinstance(ref_states, torch.Tensor) else ref_states
        torch.testing.assert_close(out[:, k, :, :n], ref[..., :n])
        torch.testing.assert_close(out[:, k, :, N : N + n], ref[..., n:])
        assert (out[:, k, :, n:N] == 0).all() and (out[:, k, :, N + n :] == 0).all()
        for s, ref_s in zip(pop_states, ref_states):
            torch.testing.assert_close(s[:, k, :, :n], ref_s)
            assert (s[:, k, :, n:] == 0).all()
        for key, g in single.paper_weights(grad=True).items():
            torch.testing.assert_close(pop_g[key][k][tuple(slice(0, s) for s in g.shape)], g)


@pytest.mark.parametrize("cell", CELLS)
def test_padded_units_stay_zero_through_sgd(cell, path):
    sizes = [2, 6, 4]
    pop = build(cell, sizes, path)
    opt = torch.optim.SGD(pop.parameters(), lr=0.5, momentum=0.9)
    for _ in range(5):
        opt.zero_grad()
        out, _ = pop(torch.randn(T, 3, B, M, dtype=torch.float64))
        (out**2).sum().backward()
        opt.step()
    for grad in (False, True):
        for key, view in pop.paper_weights(grad=grad).items():
            for k, n in enumerate(sizes):
                assert (view[k, n:] == 0).all(), key
                if key.startswith("R"):
                    assert (view[k, :, n:] == 0).all(), key


@pytest.mark.parametrize("cell", CELLS)
def test_lengths_make_padded_batches_exact(cell, path):
    rnn = build(cell, 4, path, bidirectional=True)
    randomize(rnn)
    seqs = [torch.randn(n, M, dtype=torch.float64) for n in (7, 4, 6)]
    batch = torch.nn.utils.rnn.pad_sequence(seqs)
    out, _ = rnn(batch, lengths=torch.tensor([7, 4, 6]))
    for b, seq in enumerate(seqs):
        alone, _ = rnn(seq[:, None])
        torch.testing.assert_close(out[: len(seq), b], alone[:, 0])


@pytest.mark.parametrize("cell", CELLS)
def test_batch_first_matches_time_first(cell):
    rnn = build(cell, 4, "plain", bidirectional=True)
    x = torch.randn(T, B, M, dtype=torch.float64)
    out, states = rnn(x)
    rnn.batch_first = True
    out_bf, states_bf = rnn(x.transpose(0, 1))
    torch.testing.assert_close(out_bf.transpose(0, 1), out)
    torch.testing.assert_close(states_bf, states)


def test_slstm_states_and_first_step_as_the_authors_code(path):
    # From zero states the first step sets m = ĩ, so i' = 1, c = tanh(z̃), n = 1.
    rnn = build("slstm", 4, path)
    w = randomize(rnn, scale=1.0)
    x = torch.randn(T, 1, M, dtype=torch.float64)
    outs = []
    state = None
    for t in range(T):  # one step at a time through hx: the states are the whole state
        out, state = rnn(x[t : t + 1], state)
        outs.append(out[0])
    ref_out, trace = slstm(w, x[:, 0], states=True)
    torch.testing.assert_close(torch.cat(outs), ref_out)
    c, n, m = trace[-1]
    torch.testing.assert_close(state[1][0, 0], c)
    torch.testing.assert_close(state[2][0, 0], n)
    torch.testing.assert_close(state[3][0, 0], m)
    c1, n1, m1 = trace[0]
    pre_i = w["W_i"] @ x[0, 0] + w["b_i"]
    torch.testing.assert_close(m1, pre_i)
    torch.testing.assert_close(n1, torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(c1, torch.tanh(w["W_z"] @ x[0, 0] + w["b_z"]))


def test_slstm_stabiliser_equals_the_unstabilised_cell_and_survives_large_gates(path):
    rnn = build("slstm", 4, path)
    w = randomize(rnn, scale=1.0)
    x = 3 * torch.randn(T, 1, M, dtype=torch.float64)
    torch.testing.assert_close(rnn(x)[0][:, 0], slstm_unstabilised(w, x[:, 0]))
    with torch.no_grad():  # input gates near exp(2000): the unstabilised cell overflows
        rnn.paper_weights()["b_i"].fill_(2000.0)
    assert not torch.isfinite(slstm_unstabilised(rnn.paper_weights(), x[:, 0])).all()
    out, _ = rnn(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[:, 0], slstm(rnn.paper_weights(), x[:, 0]))


def expected_params(cell, n, inputs=39):
    """From docs/family.md, one direction."""
    m = inputs
    return {
        "gru": 3 * (n * m + n * n + 2 * n),
        "mgu": 2 * (n * m + n * n + n),
        "mingru": 2 * (n * m + n),
        "minlstm": 3 * (n * m + n),
        "slstm": 4 * (n * m + n * n + n),
    }[cell]


@pytest.mark.parametrize("cell", CELLS)
def test_parameter_counts(cell):
    for bidi in (False, True):
        rnn = variants.build(NAMES[cell], 39, [20, 100], bidirectional=bidi)
        assert rnn.n_params() == [(1 + bidi) * expected_params(cell, n) for n in (20, 100)]
    single = variants.build(NAMES[cell], 39, 100)
    assert single.n_params()[0] == sum(p.numel() for p in single.parameters())
    assert single.n_params()[0] == sum(v.numel() for v in single.paper_weights().values())


def test_counts_by_hand_and_torch_gru():
    # GRU at 39 -> 100: 3 * (3900 + 10000 + 100 + 100) = 42300, torch.nn.GRU's own count.
    assert variants.build("GRU", 39, 100).n_params() == [42300]
    assert sum(p.numel() for p in torch.nn.GRU(39, 100).parameters()) == 42300
    assert variants.build("MGU", 39, 100).n_params() == [28000]
    assert variants.build("minGRU", 39, 100).n_params() == [8000]
    assert variants.build("minLSTM", 39, 100).n_params() == [12000]
    assert variants.build("sLSTM", 39, 100).n_params() == [56000]


def test_init_is_normal_with_std_0_1():
    w = torch.cat([p.flatten() for p in variants.build("sLSTM", 39, 200).parameters()])
    assert abs(w.mean().item()) < 0.002 and abs(w.std().item() - 0.1) < 0.002


@pytest.mark.parametrize("cell", CELLS)
def test_forget_bias_sets_the_gate_that_keeps_the_state(cell):
    # Zero input, zero weights but the forget bias: the kept share of a state h0 after one
    # step is sigma(1) for the cells one gate mixes (GRU, MGU, minGRU) and sLSTM's gate, and
    # f / (f + i) for minLSTM, whose other gate stays at sigma(0).
    bench = make_benchmark("framewise", bidirectional=True)
    trainer = PopulationTrainer(bench, NAMES[cell], Protocol(max_epochs=1, forget_bias=1.0))
    state = trainer.add(TrialConfig(4, 1e-3, 0.9, 0.0, seed=0))
    for name, coefficient in CELLS[cell].forget_bias:
        for sfx in ("", "_reverse"):
            assert (state.params[name + sfx] == coefficient).all()
    rnn = build(cell, 3, "plain")
    with torch.no_grad():
        for view in rnn.paper_weights().values():
            view.zero_()
        for name, coefficient in variants.forget_biases(rnn.spec).items():
            rnn.paper_weights()[name].fill_(coefficient * 1.0)
    h0 = torch.ones(1, 1, 3, dtype=torch.float64)
    x = torch.zeros(1, 1, M, dtype=torch.float64)
    if cell == "slstm":  # f' = sigma(1) exactly when the stabiliser stays put (m = 0 > log f)
        hx = (h0, h0, h0, torch.zeros_like(h0))
        _, (_, c, n, _) = rnn(x, hx)
        kept = c[0, 0]
    else:
        _, h = rnn(x, h0)
        kept = h[0, 0]
    sig = 1 / (1 + math.exp(-1))
    expected = sig / (sig + 0.5) if cell == "minlstm" else sig
    torch.testing.assert_close(kept, torch.full((3,), expected, dtype=torch.float64))


def test_lstm_forget_bias_unchanged():
    assert variants.forget_biases(variants.resolve("V")) == {"b_f": 1.0}
    assert variants.forget_biases(variants.resolve("CIFG")) == {}
    assert variants.forget_biases(variants.resolve("NFG")) == {}


def test_names_resolve_and_mix_with_the_paper_variants():
    assert variants.resolve("gru") == variants.Spec(cell="gru")
    assert resolve_variants("family") == ("V", "GRU", "MGU", "minGRU", "minLSTM", "sLSTM")
    assert resolve_variants("nig,mingru,V") == ("NIG", "minGRU", "V")
    assert resolve_variants("all,family")[:9] == variants.PAPER_VARIANTS
    assert len(resolve_variants("all,family")) == 14
    with pytest.raises(ValueError, match="do not apply to cell 'gru'"):
        variants.resolve("GRU+NP")
    with pytest.raises(ValueError, match="sets cell both ways"):
        variants.resolve("GRU+MGU")
    with pytest.raises(ValueError, match="runs on backend"):
        variants.build("GRU", 3, 4, backend="fused")


def test_bad_hx_is_explained():
    with pytest.raises(ValueError, match="hx of slstm holds 4 states, got 2"):
        variants.build("sLSTM", 3, 4)(torch.randn(T, B, 3), (torch.zeros(1, B, 4),) * 2)


def test_check_lists_the_family_with_parameter_counts(capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    for name, count in (("GRU", "42,300"), ("MGU", "28,000"), ("minGRU", "8,000")):
        assert name in out and count in out
    assert "minLSTM" in out and "12,000" in out and "sLSTM" in out


def test_smoke_study_of_the_family_and_its_report(tmp_path, tiny_jsb):
    storage = f"sqlite:///{tmp_path}/family.db"
    assert main(run_args(storage, tiny_jsb, tmp_path, trials=2, variants="family")) == 0
    names = [f"jsb-original/{v}" for v in variants.FAMILY]
    assert_exact(storage, names, 2)
    out = tmp_path / "report"
    assert main(["report", "--storage", storage, "--out", str(out)]) == 0
    summary = read_results(out).summary
    assert list(summary.variant) == list(variants.FAMILY)
    assert summary.set_index("variant").p_value.drop("V").notna().all()  # each against V
    text = (out / "REPORT.md").read_text()
    for name in variants.FAMILY[1:]:
        # compared with V, without a verdict from 2 trials a side
        assert f"- {name} against V: top mean " in text and "no verdict from 2 top" in text
    assert (out / "figures" / "jsb-original-top.png").is_file()
    for row in read_results(out).trials.itertuples():  # jsb: 88 keys in and out, one direction
        cell = variants.resolve(row.variant).cell
        head = row.hidden_size * 88 + 88
        if cell != "lstm":
            assert row.n_params == expected_params(cell, row.hidden_size, inputs=88) + head


@pytest.mark.parametrize("bias, value", [("b_f", -800.0), ("b_f", 40.0), ("b_i", -800.0)])
def test_slstm_extreme_gates_match_the_reference(bias, value, path):
    # log sigma(f~) far below the float64 range of exp, and near 0; input gates that vanish.
    rnn = build("slstm", 4, path)
    randomize(rnn, scale=1.0)
    with torch.no_grad():
        rnn.paper_weights()[bias].fill_(value)
    x = torch.randn(T, B, M, dtype=torch.float64)
    out, _ = rnn(x)
    for b in range(B):
        torch.testing.assert_close(out[:, b], slstm(rnn.paper_weights(), x[:, b]))


@pytest.mark.parametrize("name", ["GRU", "sLSTM", "minLSTM"])
def test_a_trial_in_a_population_equals_the_trial_alone(name):
    # Bidirectional framewise task, lengths differ within the population's batches.
    bench = make_benchmark("framewise")
    proto = Protocol(max_epochs=2, patience=2, forget_bias=1.0)
    configs = [TrialConfig(3, 0.05, 0.9, 0.0, 10), TrialConfig(6, 0.1, 0.5, 0.3, 11)]
    pop = PopulationTrainer(bench, name, proto, dtype=torch.float64, order_seed=5)
    for c in configs:
        pop.add(c)
    results = pop.run()
    for c, res in zip(configs, results):
        alone = PopulationTrainer(bench, name, proto, dtype=torch.float64, order_seed=5)
        alone.add(c)
        (ref,) = alone.run()
        assert res.value == pytest.approx(ref.value, rel=1e-9)
        assert res.test_metric == pytest.approx(ref.test_metric, rel=1e-9)
        assert res.n_params == ref.n_params


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_minlstm_is_finite_where_f_plus_i_underflows(dtype, path):
    rnn = variants.build("minLSTM", M, 4, backend=path, dtype=dtype)
    assert_minlstm_finite_where_its_gates_underflow(rnn)
