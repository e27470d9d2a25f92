import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from study.training import optim, tasks
from study.training.optim import PopulationNesterov
from study.training.protocol import Protocol
from study.training.trainer import Population, PopulationTrainer, TrialConfig, TrialState
from synthetic import make_benchmark


@pytest.fixture(params=["compiled", "torch"])
def update_path(request, monkeypatch):
    """Each optimizer test runs the compiled CPU update and the torch ops (GPU's path)."""
    if request.param == "torch":
        monkeypatch.setattr(optim, "_compiled", lambda *args: False)
    elif not optim._compiled("step", torch.ones(1), torch.ones(1)):
        pytest.skip("no compiled CPU kernels here")
    return request.param


def test_nesterov_matches_hand_computed_updates(update_path):
    # loss = theta^2 / 2 per trial, so grad = theta. Trial 0: lr 0.1, m 0.9; trial 1: lr 0.2, m 0.5.
    theta = torch.nn.Parameter(torch.tensor([[1.0], [1.0]], dtype=torch.float64))
    opt = PopulationNesterov([theta], torch.tensor([0.1, 0.2]), torch.tensor([0.9, 0.5]))
    for _ in range(2):
        opt.lookahead()
        (theta.square().sum() / 2).backward()
        opt.step()
        opt.zero_grad()
    # Trial 0 by hand: d1 = (1-.9)*.1*1 = .01 -> theta .99, v -.01; lookahead v = -.009,
    # theta .981; d2 = .01 * .981 = .00981 -> theta .97119, v -.01881.
    # Trial 1: d1 = .5*.2*1 = .1 -> theta .9, v -.1; lookahead v -.05, theta .85;
    # d2 = .1 * .85 = .085 -> theta .765, v -.135.
    torch.testing.assert_close(
        theta.detach().flatten(), torch.tensor([0.97119, 0.765], dtype=torch.float64)
    )
    torch.testing.assert_close(
        opt.velocity[0].flatten(), torch.tensor([-0.01881, -0.135], dtype=torch.float64)
    )


def test_stopped_trial_never_changes_even_with_nan_gradient(update_path):
    theta = torch.nn.Parameter(torch.ones(2, 3))
    opt = PopulationNesterov([theta], torch.tensor([0.1, 0.1]), torch.tensor([0.9, 0.9]))
    opt.active[1] = False
    opt.lookahead()
    theta.grad = torch.tensor([[1.0, 1, 1], [math.nan, 1, 1]])
    opt.step()
    assert (theta[1] == 1).all() and (theta[0] < 1).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_update_matches_the_torch_ops(dtype, monkeypatch):
    # Three trials, one stopped with a NaN gradient; parameters of several shapes, a
    # single-trial population whose parameters have no trial axis (nn.LSTM in the bench).
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 4, 5), (3, 7), (3,)]
    runs = {}
    for path in ("compiled", "torch"):
        if path == "torch":
            monkeypatch.setattr(optim, "_compiled", lambda *args: False)
        elif not optim._compiled("step", torch.ones(1, dtype=dtype), torch.ones(1, dtype=dtype)):
            pytest.skip("no compiled CPU kernels here")
        gen.manual_seed(0)
        params = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
        lone = [torch.randn(6, 2, generator=gen, dtype=dtype)]
        opt = PopulationNesterov(
            params, torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.9, 0.5, 0.7])
        )
        single = PopulationNesterov(lone, torch.tensor([0.1]), torch.tensor([0.9]))
        opt.active[1] = False
        for _ in range(3):
            for o in (opt, single):
                o.lookahead()
                for p in o.params:
                    p.grad = torch.randn(p.shape, generator=gen, dtype=dtype)
                    if o is opt:
                        p.grad[1] = math.nan
                o.step()
                o.zero_grad()
        runs[path] = [*params, *opt.velocity, *lone, *single.velocity]
    for got, want in zip(runs["compiled"], runs["torch"]):
        torch.testing.assert_close(got, want)


def test_losses_and_metrics_against_hand_computed_values():
    # The paper's loss sums over a sequence's frames; "mean" divides by its length (T = 2).
    # framewise: 2 frames of one sequence, K=1, 3 classes.
    logits = torch.tensor([[[[2.0, 0.0, 0.0]]], [[[0.0, 1.0, 3.0]]]])  # [T=2, K=1, B=1, 3]
    batch = tasks.collate("framewise", [torch.zeros(2, 1)], [torch.tensor([0, 1])])
    ce = -math.log(math.e**2 / (math.e**2 + 2)) - math.log(math.e / (1 + math.e + math.e**3))
    assert tasks.loss("framewise", logits, batch).item() == pytest.approx(ce, rel=1e-6)
    assert tasks.loss("framewise", logits, batch, "mean").item() == pytest.approx(ce / 2, rel=1e-6)
    num, den = tasks.metric("framewise", logits, batch)
    assert (num.item(), den.item()) == (1.0, 2.0)  # frame 2 predicts class 2, truth 1

    # next_step: NLL of a step = -sum_j [y log s + (1-y) log(1-s)] over the keys.
    logits = torch.tensor([[[[0.0, 2.0]]], [[[-1.0, 0.0]]]])
    batch = tasks.collate(
        "next_step", [torch.zeros(2, 1)], [torch.tensor([[1.0, 0.0], [0.0, 1.0]])]
    )
    s = torch.sigmoid
    nll = (
        -math.log(0.5)
        - math.log(1 - s(torch.tensor(2.0)).item())
        - math.log(1 - s(torch.tensor(-1.0)).item())
        - math.log(0.5)
    )
    assert tasks.loss("next_step", logits, batch).item() == pytest.approx(nll, rel=1e-6)
    assert tasks.loss("next_step", logits, batch, "mean").item() == pytest.approx(nll / 2)
    num, den = tasks.metric("next_step", logits, batch)  # the metric is per step either way
    assert num.item() / den.item() == pytest.approx(nll / 2, rel=1e-6)

    # ctc: T=2, labels {blank, 1}, target "1": paths (1,1), (1,-), (-,1) are all that emit "1".
    probs = torch.tensor([[0.4, 0.6], [0.7, 0.3]])  # [T, classes]
    logits = probs.log()[:, None, None, :]
    batch = tasks.collate("ctc", [torch.zeros(2, 1)], [torch.tensor([1])])
    p = 0.6 * 0.3 + 0.6 * 0.7 + 0.4 * 0.3
    assert tasks.loss("ctc", logits, batch).item() == pytest.approx(-math.log(p), rel=1e-5)
    assert tasks.loss("ctc", logits, batch, "mean").item() == pytest.approx(-math.log(p) / 2)
    num, den = tasks.metric("ctc", logits, batch)  # best path: (1, blank) -> "1", no edits
    assert (num.item(), den.item()) == (0.0, 1.0)


def test_summed_loss_of_a_batch_is_the_mean_over_its_sequences():
    # Two sequences of lengths 2 and 1, K=1, 2 classes: summed per sequence, then halved.
    logits = torch.tensor([[[[1.0, 0.0], [0.0, 2.0]]], [[[0.0, 0.0], [5.0, 5.0]]]])
    batch = tasks.collate(
        "framewise",
        [torch.zeros(2, 1), torch.zeros(1, 1)],
        [torch.tensor([0, 1]), torch.tensor([1])],
    )
    first = -math.log(math.e / (math.e + 1)) + math.log(2)  # frames 1 and 2 of sequence 1
    second = -math.log(math.e**2 / (1 + math.e**2))  # its frame 2 is padding, not counted
    assert tasks.loss("framewise", logits, batch).item() == pytest.approx((first + second) / 2)


@pytest.mark.parametrize("task", ["framewise", "next_step", "ctc"])
def test_summed_gradient_is_length_times_the_averaged(task):
    T = 7
    logits = torch.randn(T, 1, 1, 5, generator=torch.Generator().manual_seed(0))
    targets = {
        "framewise": torch.tensor([0, 1, 2, 3, 4, 0, 1]),
        "next_step": (torch.rand(T, 5, generator=torch.Generator().manual_seed(1)) > 0.5).float(),
        "ctc": torch.tensor([1, 2, 1]),
    }[task]
    batch = tasks.collate(task, [torch.zeros(T, 1)], [targets])
    grads = {}
    for reduction in ("sum", "mean"):
        leaf = logits.clone().requires_grad_()
        tasks.loss(task, leaf, batch, reduction).sum().backward()
        grads[reduction] = leaf.grad
    torch.testing.assert_close(grads["sum"], T * grads["mean"])


def test_best_path_and_edit_distance():
    assert tasks.best_path(torch.tensor([0, 3, 3, 0, 3, 5, 5, 0])) == [3, 3, 5]
    assert tasks.edit_distance([1, 2, 3], [1, 3]) == 1
    assert tasks.edit_distance([], [4, 4]) == 2
    assert tasks.edit_distance([1, 2, 3, 4], [2, 1, 4, 4]) == 3  # no transpositions
    assert tasks.edit_distance([5, 6], [6, 5]) == 2
    assert tasks.edit_distance("kitten", "sitting") == 3


def test_ctc_loss_per_trial_matches_torch_per_sequence():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 2, 3, 5, generator=gen)  # [T, K, B, O]
    targets = [torch.tensor([1, 2]), torch.tensor([3]), torch.tensor([4, 4, 1])]
    batch = tasks.collate("ctc", [torch.zeros(n, 1) for n in (6, 4, 5)], targets)
    got = tasks.loss("ctc", logits, batch)
    for k in range(2):
        expect = (
            sum(
                F.ctc_loss(
                    logits[:n, k, b].log_softmax(-1), t[None], [n], [len(t)], reduction="sum"
                )
                for b, (n, t) in enumerate(zip((6, 4, 5), targets))
            )
            / 3
        )
        assert got[k].item() == pytest.approx(expect.item(), rel=1e-5)


def configs(n=3):
    return [
        TrialConfig(hidden_size=h, learning_rate=lr, momentum=m, input_noise=s, seed=10 + i)
        for i, (h, lr, m, s) in enumerate(
            [(3, 0.05, 0.9, 0.0), (6, 0.1, 0.5, 0.3), (4, 0.02, 0.0, 0.1)][:n]
        )
    ]


@pytest.mark.parametrize("task", ["framewise", "ctc", "next_step"])
def test_population_equals_training_alone(task):
    bench = make_benchmark(task)
    proto = Protocol(max_epochs=3, patience=2)
    pop = PopulationTrainer(bench, "CIFG", proto, dtype=torch.float64, order_seed=5)
    for c in configs():
        pop.add(c)
    results = pop.run()
    for c, res in zip(configs(), results):
        alone = PopulationTrainer(bench, "CIFG", proto, dtype=torch.float64, order_seed=5)
        alone.add(c)
        (ref,) = alone.run()
        assert res.value == pytest.approx(ref.value, rel=1e-9)
        assert res.test_metric == pytest.approx(ref.test_metric, rel=1e-9)
        assert (res.best_epoch, res.epochs) == (ref.best_epoch, ref.epochs)
    assert all(r.epochs >= 1 for r in results) and not any(r.diverged for r in results)


def test_training_lowers_the_loss():
    """A learnable task (the class counts the positive inputs among two) at a step size in
    the smooth regime: the training loss falls fivefold in 8 epochs (7.4 to 1.3-1.5 in
    float32 and float64, on every path), the validation error to 6-11 %. The bounds sit
    twice as far, so that rounding (AVX2 or AVX-512, any path) cannot move the verdict;
    at lr 0.5 the validation curve jumped by 5 points from epoch to epoch."""
    bench = make_benchmark("framewise", n=(40, 10, 10))
    trainer = PopulationTrainer(bench, "V", Protocol(max_epochs=8, patience=8))
    trainer.add(TrialConfig(8, 0.1, 0.9, 0.0, seed=0))
    (res,) = trainer.run()
    assert res.train_curve[-1] < 0.4 * res.train_curve[0], res.train_curve
    assert res.value < 0.25, res.valid_curve  # half the error of always guessing class 1


def test_early_stopping_picks_best_epoch(monkeypatch):
    bench = make_benchmark("framewise")
    trainer = PopulationTrainer(bench, "V", Protocol(max_epochs=50, patience=3))
    trainer.add(configs(1)[0])
    # The untrained network is never evaluated: the first value is epoch 1's.
    script = iter([5, 5, 4, 3, 3, 3.5, 2.5, 2.5, 2.6, 2.6, 2.5, 2.5, 2.8, 2.8, 9, 9])
    monkeypatch.setattr(Population, "evaluate", lambda self, batches: [next(script)])
    (res,) = trainer.run()
    # valid per epoch: 1: 5, 2: 4, 3: 3, 4: 2.5, 5: 2.6, 6: 2.5 (not better), 7: 2.8 -> stop.
    assert (res.best_epoch, res.value, res.test_metric, res.epochs) == (4, 2.5, 2.5, 7)
    assert res.valid_curve == [5, 4, 3, 2.5, 2.6, 2.5, 2.8]
    assert res.test_curve == [5, 3, 3.5, 2.5, 2.6, 2.5, 2.8]
    assert len(res.train_curve) == 7 and all(math.isfinite(v) for v in res.train_curve)


def test_max_epochs_bounds_training():
    trainer = PopulationTrainer(
        make_benchmark("framewise"), "NP", Protocol(max_epochs=2, patience=50)
    )
    trainer.add(configs(1)[0])
    (res,) = trainer.run()
    assert res.epochs == 2


def test_divergence_is_flagged_and_others_unaffected():
    bench = make_benchmark("next_step")
    proto = Protocol(max_epochs=3, patience=3)
    healthy, wild = (
        configs(1)[0],
        TrialConfig(5, math.inf, 0.0, 0.0, seed=3),
    )  # inf weights after one step
    pop = PopulationTrainer(bench, "NOAF", proto, dtype=torch.float64)
    pop.add(healthy)
    pop.add(wild)
    res_healthy, res_wild = pop.run()
    assert res_wild.diverged and res_wild.epochs == 1
    # Its weights are not finite: no trained epoch has a metric, and the untrained network
    # is not a candidate. It learned nothing: +inf on both metrics, ranked last.
    assert res_wild.best_epoch == 0 and res_wild.value == res_wild.test_metric == math.inf
    assert len(res_wild.valid_curve) == 1 and math.isnan(res_wild.valid_curve[0])
    alone = PopulationTrainer(bench, "NOAF", proto, dtype=torch.float64)
    alone.add(healthy)
    (ref,) = alone.run()
    assert not res_healthy.diverged and res_healthy.value == pytest.approx(ref.value, rel=1e-9)


def test_checkpoint_resume_equals_uninterrupted(tmp_path):
    bench = make_benchmark("ctc")
    proto = Protocol(max_epochs=4, patience=4)
    full = PopulationTrainer(bench, "FGR", proto, dtype=torch.float64, order_seed=9)
    for c in configs():
        full.add(c)
    expected = full.run()

    first = PopulationTrainer(bench, "FGR", proto, dtype=torch.float64, order_seed=9)
    for c in configs():
        first.add(c)
    first.train_epoch()
    first.train_epoch()
    for k, state in enumerate(first.trials):  # what the runner writes after every epoch
        state.save(tmp_path / f"{k}.pt")
    resumed = PopulationTrainer(bench, "FGR", proto, dtype=torch.float64, order_seed=9)
    for k in range(len(configs())):
        resumed.add_state(TrialState.load(tmp_path / f"{k}.pt"))
    got = resumed.run()
    for a, b, sa, sb in zip(got, expected, resumed.trials, full.trials):
        assert (a.value, a.test_metric, a.best_epoch, a.epochs) == (
            b.value,
            b.test_metric,
            b.best_epoch,
            b.epochs,
        )
        assert sa.history == sb.history
        for name in sa.params:
            assert torch.equal(sa.params[name], sb.params[name]), name
            assert torch.equal(sa.velocity[name], sb.velocity[name]), name


def test_trials_of_one_population_share_an_epoch(tmp_path):
    trainer = PopulationTrainer(make_benchmark("framewise"), "V", Protocol(max_epochs=3))
    state = trainer.add(configs(1)[0])
    trainer.train_epoch()
    state.save(tmp_path / "a.pt")
    other = PopulationTrainer(make_benchmark("framewise"), "V", Protocol(max_epochs=3))
    other.add_state(TrialState.load(tmp_path / "a.pt"))
    assert other.epoch == 1
    with pytest.raises(ValueError, match="at epoch 0 cannot join a population at epoch 1"):
        fresh = PopulationTrainer(make_benchmark("framewise"), "V", Protocol())
        other.add_state(fresh.add(configs(2)[1]))


def test_noise_only_during_training():
    bench = make_benchmark("framewise")
    proto = Protocol(max_epochs=2, patience=2)
    quiet = TrialConfig(5, 0.05, 0.9, 0.0, seed=7)
    noisy = TrialConfig(5, 0.05, 0.9, 0.8, seed=7)
    trainer = PopulationTrainer(bench, "V", proto, dtype=torch.float64)
    trainer.add(quiet)
    trainer.add(noisy)
    trainer.run()
    quiet_state, noisy_state = trainer.trials
    assert quiet_state.history[0] == noisy_state.history[0]  # same weights, evaluation noiseless
    assert not torch.equal(quiet_state.params["W_z"], noisy_state.params["W_z"])  # training noisy


def test_forget_bias_and_clipping_options():
    bench = make_benchmark("framewise")
    trainer = PopulationTrainer(bench, "V", Protocol(max_epochs=1, forget_bias=1.0, clip_norm=0.5))
    state = trainer.add(configs(1)[0])
    assert (state.params["b_f"] == 1.0).all() and "b_f_reverse" in state.params
    assert (state.params["b_f_reverse"] == 1.0).all()
    (res,) = trainer.run()
    assert res.epochs == 1


def test_clipping_scales_each_trial_by_its_own_norm():
    from study.training.trainer import _clip_per_trial

    # Trial 0's gradient has norm 5 (3-4-0 over two tensors), trial 1's norm 0.5.
    a = torch.zeros(2, 2, requires_grad=True)
    b = torch.zeros(2, 1, requires_grad=True)
    a.grad = torch.tensor([[3.0, 0.0], [0.3, 0.0]])
    b.grad = torch.tensor([[4.0], [0.4]])
    _clip_per_trial([a, b], max_norm=1.0)
    torch.testing.assert_close(a.grad, torch.tensor([[0.6, 0.0], [0.3, 0.0]]), rtol=1e-5, atol=0)
    torch.testing.assert_close(b.grad, torch.tensor([[0.8], [0.4]]), rtol=1e-5, atol=0)


def test_batches_of_several_sequences_train_every_trial_like_alone():
    bench = make_benchmark("ctc")
    proto = Protocol(max_epochs=2, patience=2, batch_size=3)
    pop = PopulationTrainer(bench, "NIG", proto, dtype=torch.float64, order_seed=2)
    for c in configs():
        pop.add(c)
    pop.run()
    assert len(pop.train_batches) == 4  # 12 sequences, grouped by length, 3 to a batch
    for c, state in zip(configs(), pop.trials):
        alone = PopulationTrainer(bench, "NIG", proto, dtype=torch.float64, order_seed=2)
        alone.add(c)
        alone.run()
        np.testing.assert_allclose(state.history, alone.trials[0].history, rtol=1e-9)
        torch.testing.assert_close(state.params["R_z"], alone.trials[0].params["R_z"])
