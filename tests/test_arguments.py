"""Every tensor argument of a layer is checked at the boundary, as torch.nn.LSTM checks its
own: one clear error, the same on every backend, and never a crash; the compiled kernels
check the sizes they are given before touching memory.

The fuzz test runs this file as a script in a subprocess, so that a crash (a signal) fails
the test instead of killing the test runner.
"""

import argparse
import random
import subprocess
import sys
import time

import pytest
import torch

import variants
from variants import PAPER_VARIANTS, compiled
from variants.layer import check_arguments

BACKENDS = ["plain", "fused", "compiled"]


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
def test_a_state_of_the_wrong_size_is_refused(backend):
    """It ended in a segmentation fault on the compiled path (the default on CPU)."""
    lstm = variants.build("V", 3, 4, backend=backend)
    hx = (torch.zeros(1, 2, 8), torch.zeros(1, 2, 8))
    with pytest.raises(ValueError, match=r"^hx\[0\]: expected size \(1, 2, 4\) .*got \(1, 2, 8\)"):
        lstm(torch.randn(5, 2, 3), hx)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_state_of_one_trial_is_not_broadcast_over_a_population(backend):
    """The compiled path broadcast it silently where plain and fused raised."""
    lstm = variants.build("V", 3, 4, population=3, backend=backend)
    hx = (torch.zeros(1, 1, 2, 4), torch.zeros(1, 1, 2, 4))
    with pytest.raises(ValueError, match=r"expected size \(1, 3, 2, 4\) \(directions, K, batch"):
        lstm(torch.randn(5, 3, 2, 3), hx)


def _layer(**kwargs):
    return variants.build("V", 3, 4, **kwargs)


H = torch.zeros(2, 3, 2, 4)  # bidirectional, K = 3, B = 2, N = 4
CASES = {
    "input not a tensor": (_layer(), ([[1.0]],), {}, TypeError, "input: expected a tensor"),
    "input of another dtype": (
        _layer(),
        (torch.zeros(5, 2, 3, dtype=torch.float64),),
        {},
        ValueError,
        "input: expected torch.float32 \\(the layer's dtype\\), got torch.float64",
    ),
    "input on another device": (
        _layer(),
        (torch.zeros(5, 2, 3, device="meta"),),
        {},
        ValueError,
        "input: expected a tensor on the layer's cpu, got meta",
    ),
    "input of integers": (
        _layer(),
        (torch.zeros(5, 2, 3, dtype=torch.int64),),
        {},
        ValueError,
        "got torch.int64",
    ),
    "no steps": (_layer(), (torch.zeros(0, 2, 3),), {}, ValueError, "at least one step"),
    "no sequences": (_layer(), (torch.zeros(5, 0, 3),), {}, ValueError, "one sequence"),
    "2-d input": (_layer(), (torch.zeros(5, 3),), {}, ValueError, "expected input"),
    "batch first, wrong features": (
        _layer(batch_first=True),
        (torch.zeros(2, 5, 4),),
        {},
        ValueError,
        r"expected input \[\(K,\) B, T, 3\] got \(2, 5, 4\)",
    ),
    "population of another size": (
        _layer(population=3),
        (torch.zeros(5, 2, 2, 3),),
        {},
        ValueError,
        "input has population 2, the layer 3",
    ),
    "hx a tensor, not a pair": (
        _layer(),
        (torch.zeros(5, 2, 3), torch.zeros(1, 2, 4)),
        {},
        TypeError,
        "hx: expected a tuple of 2 tensors, got Tensor",
    ),
    "hx of three": (
        _layer(),
        (torch.zeros(5, 2, 3), (torch.zeros(1, 2, 4),) * 3),
        {},
        TypeError,
        "got 3 items",
    ),
    "hx without the reverse direction": (
        _layer(bidirectional=True, population=3),
        (torch.zeros(5, 3, 2, 3), (H[:1], H[:1])),
        {},
        ValueError,
        r"hx\[0\]: expected size \(2, 3, 2, 4\)",
    ),
    "hx laid out batch first": (
        _layer(bidirectional=True, population=3, batch_first=True),
        (torch.zeros(3, 2, 5, 3), (H.transpose(1, 2), H)),
        {},
        ValueError,
        r"hx\[0\]: expected size \(2, 3, 2, 4\)",
    ),
    "c0 of another dtype": (
        _layer(),
        (torch.zeros(5, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4, dtype=torch.float64))),
        {},
        ValueError,
        r"hx\[1\]: expected torch.float32",
    ),
    "lengths of floats": (
        _layer(),
        (torch.zeros(5, 2, 3),),
        {"lengths": torch.tensor([5.0, 4.0])},
        ValueError,
        "lengths: expected 2 integers",
    ),
    "lengths of another batch": (
        _layer(),
        (torch.zeros(5, 2, 3),),
        {"lengths": torch.tensor([5, 4, 3])},
        ValueError,
        "lengths: expected 2 integers",
    ),
    "lengths beyond the steps": (
        _layer(bidirectional=True),
        (torch.zeros(5, 2, 3),),
        {"lengths": torch.tensor([6, 4])},
        ValueError,
        r"lengths: expected values in 1\.\.5 \(the steps\), got 4\.\.6",
    ),
    "a length of zero": (
        _layer(),
        (torch.zeros(5, 2, 3),),
        {"lengths": torch.tensor([0, 4])},
        ValueError,
        "got 0..4",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_bad_argument_gets_one_line_on_every_backend(case):
    layer, args, kwargs, error, message = case
    for backend in BACKENDS:
        layer.backend = backend
        with pytest.raises(error, match=message) as info:
            layer(*args, **kwargs)
        assert "\n" not in str(info.value)


def test_non_contiguous_and_expanded_arguments_give_the_plain_result():
    torch.manual_seed(0)
    layers = {b: variants.build("FGR", 3, [4, 2], bidirectional=True, backend=b) for b in BACKENDS}
    for layer in layers.values():
        layer.load_state_dict(layers["plain"].state_dict())
    x = torch.randn(3, 2, 5, 6)[..., ::2].permute(2, 1, 0, 3)  # [T=5, K=2, B=3, M=3], strided
    h = torch.randn(1, 1, 3, 4).expand(2, 2, 3, 4)  # stride 0 over directions and trials
    c = torch.randn(2, 3, 2, 4).transpose(1, 2)
    lengths = torch.tensor([5, 2, 4, 9])[:3]
    results = {b: layer(x, (h, c), lengths) for b, layer in layers.items()}
    for backend in ("fused", "compiled"):
        torch.testing.assert_close(results[backend], results["plain"])


def test_one_state_for_a_cell_with_one():
    """The same check serves a cell with a single state (a GRU's h): hx is then a tensor."""
    sizes = dict(input_size=3, hidden_size=4, population=1, directions=1, batch_first=False)
    like = torch.zeros(1)
    check_arguments(torch.zeros(5, 2, 3), torch.zeros(1, 2, 4), None, states=1, like=like, **sizes)
    with pytest.raises(TypeError, match="hx: expected a tensor, got tuple"):
        check_arguments(
            torch.zeros(5, 2, 3), (torch.zeros(1, 2, 4),), None, states=1, like=like, **sizes
        )
    with pytest.raises(ValueError, match=r"^hx: expected size \(1, 2, 4\)"):
        check_arguments(
            torch.zeros(5, 2, 3), torch.zeros(1, 2, 5), None, states=1, like=like, **sizes
        )


needs_library = pytest.mark.skipif(
    not compiled.runs("cpu", torch.float32), reason="no C++ compiler: the fused path runs"
)


@needs_library
def test_the_recurrence_kernels_refuse_sizes_that_do_not_fit():
    """Called past the layer's check: a state wider than R, no steps, a short buffer."""
    spec = variants.resolve("V")
    K, B, N, T = 3, 2, 4, 5
    pre_x, w_hh, peephole = (
        torch.randn(T, K, B, 4 * N),
        torch.randn(K, 4 * N, N),
        torch.randn(K, 3 * N),
    )
    wide = torch.zeros(K, B, 8)
    with pytest.raises(RuntimeError, match="compiled forward: .* holds \\d+ elements, \\d+ needed"):
        compiled.recurrence(spec, pre_x, w_hh, peephole, None, wide, wide)
    ok = torch.zeros(K, B, N)
    with pytest.raises(
        RuntimeError, match="compiled forward: T, K, B, N and threads must be positive"
    ):
        compiled.recurrence(spec, pre_x[:0], w_hh, peephole, None, ok, ok)
    with pytest.raises(
        RuntimeError, match="compiled forward: peephole holds 12 elements, 36 needed"
    ):
        compiled.recurrence(spec, pre_x, w_hh, peephole[:1], None, ok, ok)


@needs_library
def test_the_update_kernels_refuse_sizes_that_do_not_fit():
    p, v, momentum = torch.zeros(3, 4), torch.zeros(2, 4), torch.ones(3)
    args = [p.data_ptr(), p.numel(), v.data_ptr(), v.numel(), momentum.data_ptr(), 3]
    with pytest.raises(RuntimeError, match="compiled lookahead: a parameter, velocity or gradient"):
        compiled.call("lookahead", torch.float32, *args, 3, 4, 1)
    assert (v == 0).all()
    args[-1] = 2  # two momenta for three trials
    v = torch.zeros(3, 4)
    args[2:4] = v.data_ptr(), v.numel()
    with pytest.raises(RuntimeError, match="a per-trial coefficient holds fewer than K"):
        compiled.call("lookahead", torch.float32, *args, 3, 4, 1)


def test_random_calls_on_every_backend_never_crash():
    """2,400 random calls (shapes, dtypes, layouts, lengths, strides) of every paper variant
    on plain, fused and compiled: each an exception with the same message on all three, or
    outputs and gradients equal to the plain path's; never a signal."""
    run = subprocess.run(
        [sys.executable, __file__, "--calls", "2400", "--seed", "0"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, (run.returncode, run.stdout[-2000:], run.stderr[-3000:])
    counts = dict(part.split("=") for part in run.stdout.split()[-3:])
    assert int(counts["calls"]) >= 2400, run.stdout
    assert int(counts["refused"]) > 400 and int(counts["ran"]) > 400, run.stdout


# --- the fuzzer (run as a script) -----------------------------------------------------------


def _maybe_strided(t: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """t itself, or the same values in a non-contiguous view (every other element of a
    wider tensor, a transposed copy, or an expanded one where t has a size-1 axis)."""
    kind = rng.choice(["same", "same", "step", "transposed", "expanded"])
    if kind == "step" and t.dim() and t.numel():
        wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
        wide[..., ::2] = t
        return wide[..., ::2]
    if kind == "transposed" and t.dim() >= 2:
        return t.transpose(0, 1).contiguous().transpose(0, 1)
    if kind == "expanded" and t.dim() and t.numel() and t.shape[0] > 1:
        return t[:1].expand(t.shape)
    return t


def _tweak(shape: list[int], rng: random.Random) -> list[int]:
    """shape with one axis off by one or more (or an axis dropped or added)."""
    shape = list(shape)
    kind = rng.choice(["axis", "axis", "axis", "drop", "add"])
    if kind == "drop" and shape:
        shape.pop(rng.randrange(len(shape)))
    elif kind == "add":
        shape.insert(rng.randrange(len(shape) + 1), rng.randint(1, 3))
    elif shape:
        i = rng.randrange(len(shape))
        shape[i] = max(0, shape[i] + rng.choice([-2, -1, 1, 3]))
    return shape


def _call(rng: random.Random, layer_args: dict, dtype: torch.dtype):
    """Random arguments for a layer built with layer_args, right ~55 % of the time."""
    K, M, D = layer_args["population"], layer_args["input_size"], layer_args["directions"]
    N, first = layer_args["N"], layer_args["batch_first"]
    T, B = rng.randint(1, 6), rng.randint(1, 3)
    single = K == 1 and rng.random() < 0.5
    tk = [T] if single else [T, K]
    shape = ([B, T, M] if single else [K, B, T, M]) if first else [*tk, B, M]
    if rng.random() < 0.15:
        shape = _tweak(shape, rng)
    in_dtype = (
        dtype
        if rng.random() < 0.9
        else rng.choice([torch.float16, torch.int32, torch.float64, torch.float32])
    )
    x = torch.randn(shape, dtype=torch.float64).to(in_dtype)
    x = _maybe_strided(x, rng)
    if rng.random() < 0.02:
        x = x.to("meta")
    hx = None
    if rng.random() < 0.6:
        h_shape = [D, B, N] if single else [D, K, B, N]
        states = []
        for _ in range(2):
            s_shape = _tweak(h_shape, rng) if rng.random() < 0.12 else h_shape
            if not single and rng.random() < 0.04:
                s_shape = [D, 1, B, N]  # one trial's state for a population
            s_dtype = dtype if rng.random() < 0.95 else torch.float16
            states.append(
                _maybe_strided(torch.randn(s_shape, dtype=torch.float64).to(s_dtype), rng)
            )
        hx = tuple(states)
        if rng.random() < 0.03:
            hx = hx[0]
        elif rng.random() < 0.03:
            hx = [*hx, hx[0]]
    lengths = None
    if rng.random() < 0.4:
        values = [rng.randint(1, T) for _ in range(B)]
        if rng.random() < 0.15:
            values[rng.randrange(B)] = rng.choice([0, T + 1, -1])
        lengths = torch.tensor(values)
        if rng.random() < 0.1:
            lengths = rng.choice([lengths.float(), lengths[:-1], lengths[None]])
    return x, hx, lengths


def _run(layer, x, hx, lengths, probe_seed: int):
    """Outputs, final states and the gradients of input and states, or the exception."""
    x = x.detach().requires_grad_(x.dtype.is_floating_point and x.device.type == "cpu")
    if isinstance(hx, (tuple, list)):
        hx = type(hx)(h.detach().requires_grad_(h.dtype.is_floating_point) for h in hx)
    try:
        out, (y_n, c_n) = layer(x, hx, lengths)
        gen = torch.Generator().manual_seed(probe_seed)
        probe = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.dtype)
        ((out * probe).sum() + c_n.square().sum()).backward()
    except Exception as err:  # noqa: BLE001 - the message is the result compared
        return f"{type(err).__name__}: {err}"
    grads = [x.grad] + ([h.grad for h in hx] if hx is not None else [])
    return [out, y_n, c_n, *grads, *(p.grad for p in layer.parameters())]


def _same(got: list, reference: list, dtype: torch.dtype) -> bool:
    """Every tensor as plain's (None where plain's is None), to rounding of the dtype,
    infinities and NaN where plain has them (torch.testing.assert_close would take most
    of the fuzzer's time)."""
    if [g is None for g in got] != [r is None for r in reference]:
        return False
    pairs = [(g, r) for g, r in zip(got, reference) if r is not None]
    if any(g.shape != r.shape for g, r in pairs):
        return False
    g, r = (torch.cat([t.detach().double().flatten() for t in ts]) for ts in zip(*pairs))
    rtol, atol = (1e-9, 1e-11) if dtype == torch.float64 else (1e-4, 1e-5)
    close = ((g - r).abs() <= atol + rtol * r.abs()) | (g == r) | (g.isnan() & r.isnan())
    return bool(close.all())


def fuzz(calls: int, seed: int) -> None:
    torch.set_num_threads(1)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    done = refused = ran = 0
    start, cpu = time.perf_counter(), time.process_time()
    while done < calls:
        name = PAPER_VARIANTS[(done // 4) % len(PAPER_VARIANTS)]
        dtype = rng.choice([torch.float32, torch.float64])
        K = rng.choice([1, 1, 2, 3])
        sizes = [rng.randint(1, 5) for _ in range(K)]
        bidirectional, batch_first, M = rng.random() < 0.5, rng.random() < 0.3, rng.randint(1, 4)
        layers = {
            b: variants.build(
                name,
                M,
                sizes,
                bidirectional=bidirectional,
                batch_first=batch_first,
                backend=b,
                dtype=dtype,
                init_std=0.5,
            )  # fmt: skip
            for b in BACKENDS
        }
        for layer in layers.values():
            layer.load_state_dict(layers["plain"].state_dict())
        layer_args = dict(
            population=K, input_size=M, directions=1 + bidirectional, N=max(sizes),
            batch_first=batch_first,
        )  # fmt: skip
        for _ in range(4):  # four calls per layer
            x, hx, lengths = _call(rng, layer_args, dtype)
            for layer in layers.values():
                layer.zero_grad()
            results = {b: _run(layer, x, hx, lengths, done) for b, layer in layers.items()}
            context = f"call {done}: {name} {layer_args} {dtype} x {tuple(x.shape)} {x.dtype}"
            reference = results["plain"]
            if isinstance(reference, str):
                refused += 1
                for b, got in results.items():
                    assert got == reference, f"{context}: {b} gave {got!r}, plain {reference!r}"
            else:
                ran += 1
                for b, got in results.items():
                    assert not isinstance(got, str), f"{context}: {b} raised {got}"
                    assert _same(got, reference, dtype), f"{context}: {b} differs from plain"
            done += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"{wall:.1f} s ({cpu:.1f} s of CPU) calls={done} refused={refused} ran={ran}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="random calls of every backend")
    parser.add_argument("--calls", type=int, default=2400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    fuzz(args.calls, args.seed)
