"""The compiled recurrence against the plain one: every combination of switches, padding,
lengths, threads, saturation, float32 error; and the fallback where it cannot be built."""

from pathlib import Path

import pytest
import torch
from recurrence import (
    FLOAT32_CHECKED,
    INPUTS,
    all_specs,
    assert_float32_error_is_that_of_the_plain_path,
    assert_matches_plain,
    outputs_and_grads,
    random_inputs,
)

import variants
from variants import PAPER_VARIANTS, cell, compiled, fused
from variants.layer import resolve_backend

pytestmark = pytest.mark.skipif(
    not compiled.runs("cpu", torch.float64), reason="no C++ compiler: the fused path runs"
)


@pytest.fixture
def threads():
    """Two threads for the test (conftest sets one), so that work is split across them."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


# N = 3 and 13: rows shorter than a vector of four doubles, and rows with a partial vector.
@pytest.mark.parametrize("N", [3, 13])
@pytest.mark.parametrize("spec", list(all_specs()), ids=lambda s: s.describe())
def test_every_spec_matches_plain(spec, N):
    inputs = random_inputs(spec, T=6, K=3, B=2, N=N, dtype=torch.float64, device="cpu", seed=0)
    assert_matches_plain(compiled.recurrence, spec, inputs)


@pytest.mark.parametrize("N", [3, 13])
@pytest.mark.parametrize("spec", list(all_specs()), ids=lambda s: s.describe())
def test_every_spec_in_float32_is_close_to_float64(spec, N):
    """The float32 kernels (eight lanes, their own exp and tanh) on the same inputs: within
    a few float32 roundings of float64 (the plain path's own float32 error is about 3e-7)."""
    inputs = random_inputs(spec, T=6, K=3, B=2, N=N, dtype=torch.float64, device="cpu", seed=5)
    single = [t.float() if t is not None else None for t in inputs]
    out, c_T, grads = outputs_and_grads(compiled.recurrence, spec, single, seed=1)
    ref_out, ref_c, ref_grads = outputs_and_grads(cell.recurrence, spec, inputs, seed=1)
    names = ["out", "c_T", *INPUTS]
    for name, got, ref in zip(names, [out, c_T, *grads], [ref_out, ref_c, *ref_grads]):
        if ref is not None:
            assert (got.double() - ref).norm() / ref.norm() < 1e-5, name


@pytest.mark.parametrize("name", ["V", "CIFG", "NIG", "FGR"])
@pytest.mark.parametrize("K, B", [(3, 2), (1, 3)])  # trials over threads; one trial's batch
def test_threads_split_trials_and_batches(name, K, B, threads):
    spec = variants.resolve(name)
    inputs = random_inputs(spec, T=5, K=K, B=B, N=9, dtype=torch.float64, device="cpu", seed=2)
    assert_matches_plain(compiled.recurrence, spec, inputs)


@pytest.mark.parametrize("name", ["V", "NOAF", "FGR"])
def test_saturated_gates_match_plain(name):
    """Pre-activations far beyond where sigmoid and tanh saturate (and exp would overflow)."""
    spec = variants.resolve(name)
    inputs = random_inputs(spec, T=6, K=2, B=2, N=5, dtype=torch.float64, device="cpu", seed=3)
    with torch.no_grad():
        inputs[0].mul_(400.0)
    assert_matches_plain(compiled.recurrence, spec, inputs)


def test_non_finite_input_stays_non_finite():
    """A diverged trial must look diverged: NaN from the step it appears, in its trial only."""
    spec = variants.resolve("V")
    pre_x, w_hh, peephole, _, y0, c0 = random_inputs(
        spec, T=5, K=2, B=1, N=4, dtype=torch.float32, device="cpu", seed=4
    )
    pre_x = pre_x.detach().clone()
    pre_x[2, 0, 0, 0] = float("nan")
    out, c_T = compiled.recurrence(spec, pre_x, w_hh, peephole, None, y0, c0)
    assert out[:2].isfinite().all() and out[2:, 1].isfinite().all()
    assert out[2:, 0].isnan().any(dim=-1).all() and c_T[0].isnan().any()


@pytest.mark.parametrize("name", PAPER_VARIANTS)
def test_padded_population_with_lengths_matches_plain(name):
    """Through the layer: two directions, hidden sizes 5 and 3 (padded), batches with lengths."""
    torch.manual_seed(0)
    layers = {
        b: variants.build(
            name, 3, [5, 3], bidirectional=True, backend=b, dtype=torch.float64, init_std=0.5
        )
        for b in ("plain", "compiled")
    }
    layers["compiled"].load_state_dict(layers["plain"].state_dict())
    x = torch.randn(7, 2, 3, 3, dtype=torch.float64)
    lengths = torch.tensor([7, 4, 2])
    probe = torch.randn(7, 2, 3, 10, dtype=torch.float64)
    results = {}
    for b, layer in layers.items():
        out, (y_n, c_n) = layer(x, lengths=lengths)
        (out * probe).sum().add(c_n.square().sum()).backward()
        results[b] = [out, y_n, c_n] + [p.grad for p in layer.parameters()]
    for got, ref in zip(results["compiled"], results["plain"]):
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    assert (results["compiled"][0].view(7, 2, 3, 2, 5)[:, 1, :, :, 3:] == 0).all()


@pytest.mark.parametrize("name", FLOAT32_CHECKED)
def test_float32_error_is_that_of_the_plain_path(name):
    assert_float32_error_is_that_of_the_plain_path(name, "compiled", "cpu")


def test_auto_is_compiled_on_cpu_in_float32_and_float64_only(monkeypatch):
    monkeypatch.delenv("ODYSSEY_BACKEND", raising=False)
    assert resolve_backend("auto", torch.device("cpu"), torch.float32) == "compiled"
    assert resolve_backend("auto", torch.device("cpu"), torch.float64) == "compiled"
    assert resolve_backend("auto", torch.device("cpu"), torch.bfloat16) == "fused"
    assert resolve_backend("compiled", torch.device("cuda"), torch.float32) == "fused"
    assert resolve_backend("plain", torch.device("cpu"), torch.float32) == "plain"


def test_auto_runs_the_compiled_path(monkeypatch):
    monkeypatch.delenv("ODYSSEY_BACKEND", raising=False)
    calls = []
    run = compiled.recurrence
    monkeypatch.setattr(compiled, "recurrence", lambda *a: calls.append(1) or run(*a))
    monkeypatch.setattr(fused, "recurrence", None)
    variants.build("V", 3, 4)(torch.randn(5, 1, 3))
    assert calls


@pytest.fixture
def fresh_library():
    """Forget the loaded library before and after the test (the next call loads it again)."""
    compiled.library.cache_clear()
    yield
    compiled.library.cache_clear()


def test_without_a_compiler_the_fused_path_runs_and_says_so_once(
    fresh_library, monkeypatch, tmp_path, capfd
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.delenv("ODYSSEY_BACKEND", raising=False)
    torch.manual_seed(0)
    layers = {b: variants.build("V", 3, 4, backend=b) for b in ("auto", "fused")}
    layers["auto"].load_state_dict(layers["fused"].state_dict())
    x = torch.randn(5, 2, 3)
    for _ in range(2):
        torch.testing.assert_close(layers["auto"](x)[0], layers["fused"](x)[0], rtol=0, atol=0)
    err = capfd.readouterr().err
    assert len(err.splitlines()) == 1 and "using the fused path" in err, err


def test_a_compiler_without_openmp_builds_the_kernels_for_one_thread(
    fresh_library, monkeypatch, tmp_path
):
    compiler = tmp_path / "c++-without-openmp"
    compiler.write_text(
        '#!/bin/sh\nfor a in "$@"; do [ "$a" = -fopenmp ] && '
        "{ echo \"error: unsupported option '-fopenmp'\" >&2; exit 1; }; done\n"
        'exec c++ "$@"\n'
    )
    compiler.chmod(0o755)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CXX", str(compiler))
    assert compiled.library() is not None
    torch.manual_seed(0)
    layers = {b: variants.build("V", 3, 4, population=3, backend=b) for b in ("compiled", "fused")}
    layers["compiled"].load_state_dict(layers["fused"].state_dict())
    x = torch.randn(5, 3, 2, 3)
    torch.testing.assert_close(layers["compiled"](x)[0], layers["fused"](x)[0])


def test_a_built_library_is_not_built_again(monkeypatch):
    path = compiled.build()  # built (or found) for this module's skipif
    monkeypatch.setattr(compiled.subprocess, "run", None)  # compiling now would raise
    assert compiled.build() == path


@pytest.mark.parametrize("chosen", ["plain", "fused", "compiled"])
def test_odyssey_backend_is_what_auto_runs(chosen, monkeypatch):
    monkeypatch.setenv("ODYSSEY_BACKEND", chosen)
    assert resolve_backend("auto", torch.device("cpu"), torch.float32) == chosen
    assert resolve_backend("plain", torch.device("cpu"), torch.float32) == "plain"
    monkeypatch.setenv("ODYSSEY_BACKEND", "gpu")
    with pytest.raises(ValueError, match="ODYSSEY_BACKEND must be one of"):
        variants.build("V", 3, 4)(torch.randn(5, 1, 3))


def test_the_flags_come_from_odyssey_cxxflags_and_key_the_cache(monkeypatch, tmp_path):
    """A portable build (no -march=native) is another library in the cache, not a reuse."""
    commands = []

    def compile_(command, **kwargs):
        commands.append(command)
        Path(command[command.index("-o") + 1]).write_bytes(b"")

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(compiled.subprocess, "run", compile_)
    monkeypatch.delenv("ODYSSEY_CXXFLAGS", raising=False)
    native = compiled.build()
    monkeypatch.setenv("ODYSSEY_CXXFLAGS", "-O2 -mtune=generic")
    portable = compiled.build()
    assert native != portable and native.exists() and portable.exists()
    assert "-march=native" in commands[0] and "-march=native" not in commands[1]
    assert {"-O2", "-mtune=generic", "-shared", "-fPIC"} <= set(commands[1])
