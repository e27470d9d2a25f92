"""Every cell (the nine LSTM variants and the five family cells) on every backend refuses
every bad argument at the boundary with one line, as torch.nn.LSTM does, and never crashes.

The cases run in a worker process (this file run as a script), one after another, each
announced on stdout before it runs: a crash (a signal, an abort) fails the test naming the
case it was on, and a new worker goes on from the next case, so that one run lists every
crash. Each case must raise TypeError or ValueError, in one line, matching what the
boundary says (so that an error from deeper down, where a wrong size went unnoticed,
fails too).
"""

import argparse
import os
import re
import subprocess
import sys
from collections import Counter

import pytest
import torch

import variants
from variants import FAMILY, PAPER_VARIANTS, compiled, family_compiled

CELLS = (*PAPER_VARIANTS, *FAMILY[1:])
LSTM_BACKENDS = ("plain", "fused", "compiled", "triton")
FAMILY_BACKENDS = ("plain", "compiled", "triton")
M, N = 3, 4  # input and hidden size; populations have K = 2 trials of 4 and 2 units


def _states(name: str) -> int:
    cell = variants.resolve(name).cell
    return 2 if cell == "lstm" else len(variants.family.CELLS[cell].states)


def _hx(name: str, shape, **kwargs):
    """hx of `shape` for every state: a tensor for one state, else a tuple."""
    states = [torch.zeros(shape, **kwargs) for _ in range(_states(name))]
    return states[0] if len(states) == 1 else tuple(states)


def _wrong_count(name: str, shape):
    """A tuple of one state too many (two for a cell of one state)."""
    return tuple(torch.zeros(shape) for _ in range(_states(name) + 1))


# name: (layer keywords, call(name) -> (args, kwargs), expected message, a regex).
# `pop` layers: K = 2 trials of hidden sizes [4, 2], bidirectional.
SINGLE, POP = {}, {"hidden_size": [N, 2], "bidirectional": True}
X, XP = (5, 2, M), (5, 2, 2, M)  # a single model's input, a population's
H, HP = (1, 2, N), (2, 2, 2, N)
CASES = {
    "input not a tensor": (SINGLE, lambda n: (([[1.0]],), {}), r"^input: expected a tensor"),
    "2-d input": (SINGLE, lambda n: ((torch.zeros(5, M),), {}), r"^expected input \[T"),
    "5-d input": (POP, lambda n: ((torch.zeros(5, 2, 2, 1, M),), {}), r"^expected input"),
    "wrong features": (SINGLE, lambda n: ((torch.zeros(5, 2, M + 1),), {}), r"^expected input"),
    "float64 input": (
        SINGLE,
        lambda n: ((torch.zeros(X, dtype=torch.float64),), {}),
        r"^input: expected torch.float32 \(the layer's dtype\), got torch.float64",
    ),
    "float16 input": (
        SINGLE,
        lambda n: ((torch.zeros(X, dtype=torch.float16),), {}),
        r"^input: expected torch.float32",
    ),
    "bfloat16 input": (
        POP,
        lambda n: ((torch.zeros(XP, dtype=torch.bfloat16),), {}),
        r"^input: expected torch.float32",
    ),
    "integer input": (
        SINGLE,
        lambda n: ((torch.zeros(X, dtype=torch.int64),), {}),
        r"^input: expected torch.float32",
    ),
    "input on another device": (
        SINGLE,
        lambda n: ((torch.zeros(X, device="meta"),), {}),
        r"^input: expected a tensor on the layer's cpu, got meta",
    ),
    "no steps": (SINGLE, lambda n: ((torch.zeros(0, 2, M),), {}), r"at least one step"),
    "no sequences": (POP, lambda n: ((torch.zeros(5, 2, 0, M),), {}), r"one sequence"),
    "population of another size": (
        POP,
        lambda n: ((torch.zeros(5, 3, 2, M),), {}),
        r"^input has population 3, the layer 2",
    ),
    "3-d input for a population": (
        POP,
        lambda n: ((torch.zeros(X),), {}),
        r"^a population of 2 expects a 4-d input",
    ),
    "hx wider than the layer": (
        SINGLE,
        lambda n: ((torch.zeros(X), _hx(n, (1, 2, 2 * N))), {}),
        r"^hx(\[0\])?: expected size \(1, 2, 4\) \(directions, batch, hidden\), got \(1, 2, 8\)",
    ),
    "hx narrower than the layer": (
        SINGLE,
        lambda n: ((torch.zeros(X), _hx(n, (1, 2, N - 1))), {}),
        r"^hx(\[0\])?: expected size \(1, 2, 4\)",
    ),
    "hx of another batch": (
        POP,
        lambda n: ((torch.zeros(XP), _hx(n, (2, 2, 3, N))), {}),
        r"^hx(\[0\])?: expected size \(2, 2, 2, 4\) \(directions, K, batch, hidden\)",
    ),
    "hx without the reverse direction": (
        POP,
        lambda n: ((torch.zeros(XP), _hx(n, (1, 2, 2, N))), {}),
        r"^hx(\[0\])?: expected size \(2, 2, 2, 4\)",
    ),
    "hx of one trial for a population": (
        POP,
        lambda n: ((torch.zeros(XP), _hx(n, (2, 1, 2, N))), {}),
        r"^hx(\[0\])?: expected size \(2, 2, 2, 4\)",
    ),
    "hx of another dtype": (
        SINGLE,
        lambda n: ((torch.zeros(X), _hx(n, H, dtype=torch.float64)), {}),
        r"^hx(\[0\])?: expected torch.float32 \(the layer's dtype\), got torch.float64",
    ),
    "hx on another device": (
        SINGLE,
        lambda n: ((torch.zeros(X), _hx(n, H, device="meta")), {}),
        r"^hx(\[0\])?: expected a tensor on the layer's cpu, got meta",
    ),
    "hx not a tensor": (
        SINGLE,
        lambda n: ((torch.zeros(X), 0.0), {}),
        r"^hx: expected a (tensor|tuple of \d tensors), got float",
    ),
    "hx of one state too many": (
        SINGLE,
        lambda n: ((torch.zeros(X), _wrong_count(n, H)), {}),
        r"^hx: expected a tensor, got tuple|got 3 items|holds 4 states, got 5",
    ),
    "lengths of floats": (
        SINGLE,
        lambda n: ((torch.zeros(X),), {"lengths": torch.tensor([5.0, 4.0])}),
        r"^lengths: expected 2 integers \(one per sequence\), got torch.float32",
    ),
    "lengths of booleans": (
        SINGLE,
        lambda n: ((torch.zeros(X),), {"lengths": torch.tensor([True, True])}),
        r"^lengths: expected 2 integers",
    ),
    "lengths a list": (
        SINGLE,
        lambda n: ((torch.zeros(X),), {"lengths": [5, 4]}),
        r"^lengths: expected 2 integers \(one per sequence\), got list",
    ),
    "lengths of another batch": (
        POP,
        lambda n: ((torch.zeros(XP),), {"lengths": torch.tensor([5, 4, 3])}),
        r"^lengths: expected 2 integers",
    ),
    "lengths 2-d": (
        SINGLE,
        lambda n: ((torch.zeros(X),), {"lengths": torch.tensor([[5, 4]])}),
        r"^lengths: expected 2 integers",
    ),
    "lengths beyond the steps": (
        POP,
        lambda n: ((torch.zeros(XP),), {"lengths": torch.tensor([6, 4])}),
        r"^lengths: expected values in 1\.\.5 \(the steps\), got 4\.\.6",
    ),
    "a length of zero": (
        SINGLE,
        lambda n: ((torch.zeros(X),), {"lengths": torch.tensor([0, 4])}),
        r"^lengths: expected values in 1\.\.5 \(the steps\), got 0\.\.4",
    ),
    "a negative length": (
        POP,
        lambda n: ((torch.zeros(XP),), {"lengths": torch.tensor([5, -1])}),
        r"^lengths: expected values in 1\.\.5 \(the steps\), got -1\.\.5",
    ),
    "lengths on another device": (
        SINGLE,
        lambda n: ((torch.zeros(X),), {"lengths": torch.tensor([5, 4], device="meta")}),
        r"^lengths: expected a tensor on the layer's cpu, got meta",
    ),
    "a layer of integers": (
        {"dtype": torch.int64},
        None,
        r"^dtype: expected one of float16, bfloat16, float32, float64, got torch.int64",
    ),
    "a layer of complex numbers": (
        {"dtype": torch.complex64},
        None,
        r"^dtype: expected one of float16, bfloat16, float32, float64, got torch.complex64",
    ),
}


def cases() -> list[tuple[str, str, str]]:
    """(cell, backend, case) for every cell, its backends and every case."""
    return [
        (name, backend, case)
        for name in CELLS
        for backend in (LSTM_BACKENDS if name in PAPER_VARIANTS else FAMILY_BACKENDS)
        for case in CASES
    ]


def run_case(name: str, backend: str, case: str) -> str:
    """'refused' when the case raised the boundary's one line, else what went wrong."""
    layer_kwargs, call, pattern = CASES[case]
    sizes = {"hidden_size": N, **layer_kwargs}
    try:
        layer = variants.build(name, M, backend=backend, **sizes)
        if call is not None:
            args, kwargs = call(name)
            layer(*args, **kwargs)
    except (TypeError, ValueError) as err:
        message = str(err)
        if "\n" in message:
            return f"{type(err).__name__} of several lines: {message!r}"
        if not re.search(pattern, message):
            return f"{type(err).__name__} not from the boundary: {message!r}"
        return "refused"
    except Exception as err:  # noqa: BLE001 - any other exception is the finding
        return f"{type(err).__name__}: {str(err)[:300]!r}"
    return "accepted"


def test_every_bad_argument_of_every_cell_is_refused_without_a_crash():
    all_cases = cases()
    env = {**os.environ, "TRITON_INTERPRET": "1"}  # the triton backend's kernels on CPU
    results: dict[int, str] = {}
    start = 0
    while start < len(all_cases):
        run = subprocess.run(
            [sys.executable, __file__, "--start", str(start)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        last = None
        for line in run.stdout.splitlines():
            kind, index, *rest = line.split(" ", 2)
            if kind == "case":
                last = int(index)
            elif kind == "result":
                results[int(index)] = rest[0]
                last = None
        if run.returncode != 0:
            if last is None:  # died between cases: nothing to attribute
                raise AssertionError((run.returncode, run.stderr[-3000:]))
            results[last] = f"crashed (exit {run.returncode}): {run.stderr.strip()[-300:]!r}"
            start = last + 1
        else:
            start = len(all_cases)
    assert len(results) == len(all_cases)
    counts = Counter((name, backend) for name, backend, _ in all_cases)
    print(f"{len(all_cases)} cases; per cell and backend: {dict(counts)}")
    failures = [
        f"{' / '.join(all_cases[i])}: {result}"
        for i, result in sorted(results.items())
        if result != "refused"
    ]
    assert not failures, "\n".join(failures)


@pytest.mark.skipif(not compiled.runs("cpu", torch.float32), reason="no C++ compiler")
@pytest.mark.parametrize(
    "cell, message",
    [
        ("gru", "family_forward: x \\(pre_x or grad_out\\) holds 360 elements, 372 needed"),
        ("mgu", "family_forward: x \\(pre_x or grad_out\\) holds 240 elements, 248 needed"),
        ("slstm", "family_forward: x \\(pre_x or grad_out\\) holds 480 elements, 496 needed"),
        ("mingru", "scan_forward: a holds 120 elements, 240 needed"),
        ("minlstm", "scan_forward: a holds 120 elements, 240 needed"),
    ],
)
def test_the_family_kernels_refuse_sizes_that_do_not_fit(cell, message):
    """Called past the layer's check with states twice as wide as pre_x's blocks (T = 5,
    K = 2, B = 3, N = 4), and with no steps: refused before touching memory."""
    spec = variants.family.CELLS[cell]
    T, K, B = 5, 2, 3
    pre_x = torch.randn(T, K, B, len(spec.blocks) * N)
    w_hh = torch.randn(K, len(spec.recurrent) * N, N) if spec.recurrent else None
    b_hh = torch.randn(K, len(spec.recurrent) * N) if spec.recurrent_bias else None
    wide = tuple(torch.ones(K, B, 2 * N) for _ in spec.states)
    with pytest.raises(RuntimeError, match=f"^compiled {message}$"):
        family_compiled.recurrence(cell, pre_x, w_hh, b_hh, wide)
    ok = tuple(torch.ones(K, B, N) for _ in spec.states)
    with pytest.raises(RuntimeError, match="must be positive"):
        family_compiled.recurrence(cell, pre_x[:0], w_hh, b_hh, ok)


def worker(start: int) -> None:
    """Run the cases from `start` on, each announced before it runs and reported after."""
    torch.set_num_threads(1)
    for index, (name, backend, case) in enumerate(cases()):
        if index < start:
            continue
        print(f"case {index}", flush=True)
        print(f"result {index} {run_case(name, backend, case)}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the bad-argument cases, from --start on")
    parser.add_argument("--start", type=int, default=0)
    worker(parser.parse_args().start)
