import copy

import pytest
import torch

import variants
from reference import randomize, reference_bidirectional, reference_lstm
from variants import PAPER_VARIANTS, Spec

T, B, M = 7, 2, 3


def split(weights, sfx):
    """The weights of one direction: sfx '' for forward, '_reverse' for the reverse one."""
    return {
        k.removesuffix(sfx): v
        for k, v in weights.items()
        if k.endswith("_reverse") == (sfx == "_reverse")
    }


@pytest.mark.parametrize("name", PAPER_VARIANTS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_matches_reference_outputs_and_gradients(name, bidirectional, backend, device):
    spec = variants.resolve(name)
    lstm = variants.build(
        name, M, 4, bidirectional=bidirectional, backend=backend, dtype=torch.float64, device=device
    )
    weights = randomize(lstm)
    x = torch.randn(T, B, M, dtype=torch.float64)
    probe = torch.randn(T, B, lstm.hidden_size * (2 if bidirectional else 1), dtype=torch.float64)

    out, (y_n, c_n) = lstm(x.to(device))
    (out * probe.to(device)).sum().backward()
    grads = {k: v.cpu() for k, v in lstm.paper_weights(grad=True).items()}

    ref_w = {k: v.clone().requires_grad_() for k, v in weights.items()}
    ref_out = []
    for b in range(B):
        if bidirectional:
            ref_out.append(
                reference_bidirectional(spec, split(ref_w, ""), split(ref_w, "_reverse"), x[:, b])
            )
        else:
            ref_out.append(reference_lstm(spec, ref_w, x[:, b]))
    ref_out = torch.stack(ref_out, dim=1)
    (ref_out * probe).sum().backward()

    torch.testing.assert_close(out.cpu(), ref_out.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(y_n[0].cpu(), ref_out[-1, :, :4].detach())
    assert set(grads) == set(ref_w)
    for k, w in ref_w.items():
        torch.testing.assert_close(grads[k], w.grad, rtol=1e-9, atol=1e-11, msg=f"grad of {k}")


def copy_torch_lstm_weights(ref, w, N):
    """Write torch.nn.LSTM's weights into paper_weights() views (gate order i, f, g = z, o)."""
    for sfx, lsfx in (("", "_l0"), ("_reverse", "_l0_reverse")):
        w_ih, w_hh = getattr(ref, "weight_ih" + lsfx), getattr(ref, "weight_hh" + lsfx)
        b = getattr(ref, "bias_ih" + lsfx) + getattr(ref, "bias_hh" + lsfx)
        for k, gate in enumerate("ifzo"):
            rows = slice(k * N, (k + 1) * N)
            w[f"W_{gate}{sfx}"].copy_(w_ih[rows])
            w[f"R_{gate}{sfx}"].copy_(w_hh[rows])
            w[f"b_{gate}{sfx}"].copy_(b[rows])


def test_np_equals_torch_lstm(backend):
    torch.manual_seed(0)
    N = 5
    ref = torch.nn.LSTM(M, N, bidirectional=True, dtype=torch.float64)
    ours = variants.build("NP", M, N, bidirectional=True, backend=backend, dtype=torch.float64)
    with torch.no_grad():
        copy_torch_lstm_weights(ref, ours.paper_weights(), N)
    x = torch.randn(T, B, M, dtype=torch.float64)
    out, (y_n, c_n) = ours(x)
    ref_out, (ref_y, ref_c) = ref(x)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(y_n, ref_y)
    torch.testing.assert_close(c_n, ref_c)


def test_batch_first_matches_time_first(backend):
    lstm = variants.build("V", M, 4, bidirectional=True, backend=backend, dtype=torch.float64)
    x = torch.randn(T, B, M, dtype=torch.float64)
    out, (y_n, c_n) = lstm(x)
    lstm.batch_first = True
    out_bf, (y_bf, c_bf) = lstm(x.transpose(0, 1))
    torch.testing.assert_close(out_bf.transpose(0, 1), out)
    torch.testing.assert_close(y_bf, y_n)
    torch.testing.assert_close(c_bf, c_n)


@pytest.mark.parametrize("name", PAPER_VARIANTS)
def test_population_equals_separate_models(name, backend, device):
    sizes = [3, 5, 4]
    pop = variants.build(
        name, M, sizes, bidirectional=True, backend=backend, dtype=torch.float64, device=device
    )
    singles = [
        variants.build(
            name, M, n, bidirectional=True, backend=backend, dtype=torch.float64, device=device
        )
        for n in sizes
    ]
    pop_w = pop.paper_weights()
    for k, single in enumerate(singles):
        randomize(single, seed=k)
        for key, v in single.paper_weights().items():
            if v.dim() == 2:
                pop_w[key][k, : v.shape[0], : v.shape[1]].copy_(v)
            else:
                pop_w[key][k, : v.shape[0]].copy_(v)
    x = torch.randn(T, len(sizes), B, M, dtype=torch.float64, device=device)
    out, (y_n, c_n) = pop(x)
    out.sum().backward()
    pop_g = pop.paper_weights(grad=True)
    N = pop.hidden_size
    for k, (single, n) in enumerate(zip(singles, sizes)):
        ref, (ref_y, ref_c) = single(x[:, k])
        ref.sum().backward()
        torch.testing.assert_close(out[:, k, :, :n], ref[..., :n])
        torch.testing.assert_close(out[:, k, :, N : N + n], ref[..., n:])
        torch.testing.assert_close(c_n[:, k, :, :n], ref_c)
        assert (out[:, k, :, n:N] == 0).all() and (out[:, k, :, N + n :] == 0).all()
        assert (c_n[:, k, :, n:] == 0).all()
        for key, g in single.paper_weights(grad=True).items():
            idx = (k, slice(0, g.shape[0])) + ((slice(0, g.shape[1]),) if g.dim() == 2 else ())
            torch.testing.assert_close(pop_g[key][idx], g, msg=key)


@pytest.mark.parametrize("name", ["V", "FGR", "NOAF"])
def test_padded_units_stay_zero_through_sgd(name, backend):
    sizes = [2, 6, 4]
    pop = variants.build(name, M, sizes, backend=backend, dtype=torch.float64)
    opt = torch.optim.SGD(pop.parameters(), lr=0.5, momentum=0.9)
    for _ in range(5):
        opt.zero_grad()
        out, _ = pop(torch.randn(T, 3, B, M, dtype=torch.float64))
        (out**2).sum().backward()
        opt.step()
    for grad in (False, True):
        for key, view in pop.paper_weights(grad=grad).items():
            for k, n in enumerate(sizes):
                assert (view[k, n:] == 0).all(), key  # rows of padded units
                if view.dim() == 3 and key.startswith("R"):
                    assert (view[k, :, n:] == 0).all(), key  # inputs from padded units
    out, (y_n, c_n) = pop(torch.randn(T, 3, B, M, dtype=torch.float64))
    for k, n in enumerate(sizes):
        assert (out[:, k, :, n:] == 0).all() and (c_n[:, k, :, n:] == 0).all()


@pytest.mark.parametrize("name", PAPER_VARIANTS)
def test_gradcheck(name, backend):
    lstm = variants.build(name, 2, [2, 3], backend=backend, dtype=torch.float64, init_std=0.5)
    x = torch.randn(3, 2, 1, 2, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in lstm.named_parameters()]

    def f(x, *ps):
        out, (_, c_n) = torch.func.functional_call(lstm, dict(zip(names, ps)), (x,))
        return out, c_n

    inputs = (x,) + tuple(p.detach().clone().requires_grad_() for p in lstm.parameters())
    assert torch.autograd.gradcheck(f, inputs)


def expected_params(spec, M, n, directions):
    """From the equations: each block has W (n×M), R (n×n), b (n); each gate with weights of its
    own has a peephole (n); full gate recurrence adds one n×n matrix per pair of such gates."""
    blocks = 1 + sum(
        [spec.input_gate, spec.forget_gate and not spec.coupled_input_forget, spec.output_gate]
    )
    gates = blocks - 1
    count = blocks * (n * M + n * n + n)
    count += gates * n if spec.peepholes else 0
    count += gates * gates * n * n if spec.full_gate_recurrence else 0
    return directions * count


@pytest.mark.parametrize("name", PAPER_VARIANTS)
def test_parameter_counts(name):
    spec = variants.resolve(name)
    for bidi in (False, True):
        lstm = variants.build(name, 39, [20, 100], bidirectional=bidi)
        assert lstm.n_params() == [expected_params(spec, 39, n, 1 + bidi) for n in (20, 100)]
    single = variants.build(name, 39, 100)
    assert single.n_params()[0] == sum(p.numel() for p in single.parameters())
    assert single.n_params()[0] == sum(v.numel() for v in single.paper_weights().values())


def test_paper_counts_by_hand():
    # M=39, N=100 vanilla: 4 blocks * (3900 + 10000 + 100) + 3 peepholes * 100 = 56300.
    assert variants.build("V", 39, 100).n_params() == [56300]
    # CIFG: 3 blocks * 14000 + 2 * 100 = 42200; FGR: 56300 + 9 * 100 * 100 = 146300.
    assert variants.build("CIFG", 39, 100).n_params() == [42200]
    assert variants.build("FGR", 39, 100).n_params() == [146300]
    assert variants.build("NP", 39, 100).n_params() == [56000]


def test_paper_weights_contract():
    single = variants.build("FGR", 3, 4)
    w = single.paper_weights()
    assert w["W_z"].shape == (4, 3) and w["R_o"].shape == (4, 4) and w["p_f"].shape == (4,)
    assert {"R_if", "R_oi", "R_ff"} <= set(w)
    pop = variants.build("CIFG", 3, 4, population=5, bidirectional=True)
    w = pop.paper_weights()
    assert w["W_i_reverse"].shape == (5, 4, 3)
    assert not any(k.startswith(("W_f", "R_f", "p_f", "b_f")) for k in w)
    w["R_i"][2].fill_(7.0)
    assert (pop.weight_hh[2, 4:8] == 7.0).all()


def test_init_is_normal_with_std_0_1():
    w = torch.cat([p.flatten() for p in variants.build("V", 39, 200).parameters()])
    assert abs(w.mean().item()) < 0.002 and abs(w.std().item() - 0.1) < 0.002


def test_float32_and_deepcopy():
    lstm = variants.build("FGR", M, [3, 4], bidirectional=True)
    out, _ = lstm(torch.randn(T, 2, B, M))
    assert out.dtype == torch.float32 and out.shape == (T, 2, B, 8)
    twin = copy.deepcopy(lstm)
    torch.testing.assert_close(twin(torch.ones(T, 2, B, M))[0], lstm(torch.ones(T, 2, B, M))[0])


def test_presets_combine_with_plus():
    assert variants.resolve("CIFG+NP") == Spec(coupled_input_forget=True, peepholes=False)
    assert variants.resolve("nog+noaf+fgr") == Spec(
        output_gate=False, output_activation=False, full_gate_recurrence=True
    )
    with pytest.raises(ValueError, match="needs both input_gate"):
        variants.resolve("CIFG+NIG")
    with pytest.raises(ValueError, match="unknown variant 'XX'"):
        variants.resolve("V+XX")


def test_custom_spec_and_register():
    spec = Spec(coupled_input_forget=True, peepholes=False)
    variants.register("CIFG+NP", spec)
    assert variants.build("cifg+np", 3, 4).spec == spec
    with pytest.raises(ValueError, match="needs both input_gate"):
        Spec(input_gate=False, coupled_input_forget=True)
    with pytest.raises(ValueError, match="unknown variant 'XYZ'"):
        variants.build("XYZ", 3, 4)


def test_bad_shapes_are_explained():
    with pytest.raises(ValueError, match="4-d input"):
        variants.build("V", 3, 4, population=2)(torch.randn(T, B, 3))
    with pytest.raises(ValueError, match=r"expected input \[T, \(K,\) B, 3\]"):
        variants.build("V", 3, 4)(torch.randn(T, B, 5))


def test_lengths_make_padded_batches_exact(backend):
    lstm = variants.build("V", M, 4, bidirectional=True, backend=backend, dtype=torch.float64)
    seqs = [torch.randn(n, M, dtype=torch.float64) for n in (7, 4, 6)]
    batch = torch.nn.utils.rnn.pad_sequence(seqs)  # [7, 3, M], zeros after each length
    out, _ = lstm(batch, lengths=torch.tensor([7, 4, 6]))
    for b, seq in enumerate(seqs):
        alone, _ = lstm(seq[:, None])
        torch.testing.assert_close(out[: len(seq), b], alone[:, 0])
