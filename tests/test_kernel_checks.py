"""The compiled and triton kernels check themselves against the plain path on the first use
of a (device, spec, dtype) in a process; kernels that fail or disagree are replaced by the
fused path, with one line on stderr, and `odyssey bench` and `check` say which path ran
and why. Forced here with kernels that raise and kernels that compute something else."""

import re
import types

import pytest
import torch

import variants
from study.cli import bench, main
from study.training import optim
from variants import cell, compiled, fused, layer
from variants.layer import checked_backend


@pytest.fixture(autouse=True)
def fresh_checks(monkeypatch):
    """Every test starts with no kernel checked in this process, and leaves none behind."""
    monkeypatch.setattr(layer, "_checks", {})
    monkeypatch.delenv("ODYSSEY_BACKEND", raising=False)


def failing(*args):
    raise RuntimeError("PassManager::run failed\nsecond line of the compiler's report")


def off_by_one_percent(*args):
    out, c_T = cell.recurrence(*args)
    return out * 1.01, c_T


def wrong_gradient(*args):
    """Right outputs, pre_x's gradient doubled (the value of 2 x - x, the slope of 2 x)."""
    spec, pre_x, *rest = args
    out, c_T = cell.recurrence(spec, 2 * pre_x - pre_x.detach(), *rest)
    return out, c_T


def fake_kernels(monkeypatch, path: str, recurrence):
    """Path `path` (compiled, or triton without triton installed) runs `recurrence`."""
    module = layer._module
    fake = types.SimpleNamespace(recurrence=recurrence)
    monkeypatch.setattr(layer, "_module", lambda p: fake if p == path else module(p))
    if path == "compiled":
        monkeypatch.setattr(compiled, "runs", lambda device, dtype: True)


KERNELS = {
    "raising": (failing, "failed: RuntimeError: PassManager::run failed"),
    "wrong outputs": (off_by_one_percent, r"disagree with the plain path \(output: relative"),
    "wrong gradient": (wrong_gradient, r"disagree with the plain path \(pre_x: relative"),
}


@pytest.mark.parametrize("kernel, message", KERNELS.values(), ids=KERNELS.keys())
@pytest.mark.parametrize("path, backend", [("compiled", "auto"), ("triton", "triton")])
def test_bad_kernels_give_way_to_the_fused_path_with_one_line(
    path, backend, kernel, message, monkeypatch, capfd
):
    fake_kernels(monkeypatch, path, kernel)
    torch.manual_seed(0)
    layers = {b: variants.build("CIFG", 3, [4, 2], backend=b) for b in (backend, "fused")}
    layers[backend].load_state_dict(layers["fused"].state_dict())
    x = torch.randn(5, 2, 3, 3)
    for _ in range(2):
        torch.testing.assert_close(layers[backend](x)[0], layers["fused"](x)[0], rtol=0, atol=0)
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"variants: the {path} kernels on cpu (coupled_input_forget=True, ")
    assert err[0].endswith("; using the fused path")
    ran, why = checked_backend(backend, variants.resolve("CIFG"), "cpu", torch.float32)
    assert ran == "fused"
    assert re.search(message, why), why


def test_each_key_is_checked_once(monkeypatch, capfd):
    """Another spec or dtype is checked anew; the same one never again."""
    calls = []

    def counting(*args):
        calls.append(args[0])
        return failing(*args)

    fake_kernels(monkeypatch, "compiled", counting)
    for name, dtype in [("V", torch.float32), ("V", torch.float32), ("V", torch.float64)]:
        variants.build(name, 3, 4, dtype=dtype)(torch.randn(5, 1, 3, dtype=dtype))
    variants.build("FGR", 3, 4)(torch.randn(5, 1, 3))
    assert len(calls) == 3
    assert len(capfd.readouterr().err.splitlines()) == 3


@pytest.mark.skipif(not compiled.runs("cpu", torch.float32), reason="no C++ compiler")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_compiled_kernels_pass_their_own_check(dtype):
    for name in variants.PAPER_VARIANTS:
        spec = variants.resolve(name)
        assert checked_backend("compiled", spec, "cpu", dtype) == ("compiled", ""), name


def test_bench_and_check_say_which_path_ran_and_why(monkeypatch, capsys):
    fake_kernels(monkeypatch, "compiled", off_by_one_percent)
    row = bench.measure("V", 2, 4, 5, torch.device("cpu"), repeats=1, backend="compiled")
    assert row.backend == "fused" and "disagree with the plain path" in row.why
    assert main(["check", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.count("fused *") == 9, out
    assert "* FGR: the compiled kernels on cpu (full_gate_recurrence=True" in out
    assert "; the fused path ran" in out


def test_the_fused_path_is_not_checked(monkeypatch):
    monkeypatch.setattr(fused, "recurrence", failing)
    assert checked_backend("fused", variants.resolve("V"), "cpu", torch.float32) == ("fused", "")
    assert layer._checks == {}


@pytest.fixture
def fresh_update_check():
    optim._update_checked.cache_clear()
    yield
    optim._update_checked.cache_clear()


@pytest.mark.skipif(not compiled.runs("cpu", torch.float32), reason="no C++ compiler")
@pytest.mark.parametrize(
    "kernel, message",
    [(failing, "PassManager::run failed"), (lambda *args: None, "results differ")],
    ids=["raising", "doing nothing"],
)
def test_a_bad_update_kernel_gives_way_to_the_torch_ops(
    kernel, message, fresh_update_check, monkeypatch, capfd
):
    monkeypatch.setattr(compiled, "call", kernel)
    theta = torch.nn.Parameter(torch.ones(2, 3))
    opt = optim.PopulationNesterov([theta], torch.tensor([0.1, 0.2]), torch.tensor([0.9, 0.5]))
    for _ in range(2):
        opt.lookahead()
        theta.grad = torch.ones(2, 3)
        opt.step()
    # By hand as in test_train: trial 0 .99 then .99 - .01 * 1 - .009 = .971; trial 1 .9, .75.
    torch.testing.assert_close(theta.detach()[:, 0], torch.tensor([0.971, 0.75]))
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 1 and message in err[0] and err[0].endswith("; using torch ops"), err


@pytest.mark.skipif(not compiled.runs("cpu", torch.float32), reason="no C++ compiler")
def test_the_update_kernels_pass_their_own_check(fresh_update_check):
    assert optim._update_checked(torch.float32) and optim._update_checked(torch.float64)
