"""Where the Triton kernels' tests run, and what they share.

On a CUDA machine the kernels are compiled, in float32, and the tests are marked `cuda`
(`MARKS`). Without a GPU they run in Triton's interpreter on CPU tensors in float64:
TRITON_INTERPRET must be set before triton decorates the kernels, so it is set here, when
a test module imports this one at collection, before any test imports variants.triton_lstm
(no other test module does). The interpreter runs the programs of a launch one after
another, so most tests put every row in one program (the `one_program` fixture of
conftest.py).
"""

import os
import subprocess
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from variants import triton_lstm  # noqa: E402

if not triton_lstm.interpreted():
    DEVICE, DTYPE = "cuda", torch.float32
elif os.environ.get("TRITON_INTERPRET") == "1":
    DEVICE, DTYPE = "cpu", torch.float64
else:  # pragma: no cover - triton imported without the interpreter and no GPU
    pytest.skip("triton kernels need a GPU or TRITON_INTERPRET=1", allow_module_level=True)
MARKS = [pytest.mark.cuda] if DEVICE == "cuda" else []


def assert_matches(got, exact, plain32, names):
    """`got` against the float64 plain path: to rounding in float64; in float32 (CUDA), as
    close as the plain path's own float32 error allows (the fused path's rule)."""
    for name, g, e, p in zip(names, got, exact, plain32):
        assert (g is None) == (e is None), name
        if e is None:
            continue
        g, e, p = (t.detach().cpu().double() for t in (g, e, p))
        if DTYPE == torch.float64:
            torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-11, msg=name)
        else:
            error, plain_error = (g - e).norm(), (p - e).norm()
            assert error <= max(4 * plain_error, 1e-6 * e.norm()), (name, error, plain_error)


def assert_compiles_for_hopper(script, *args):
    """Runs `script`, which compiles kernels for an H100 (sm_90) with Triton's own compiler
    and ptxas; they need no GPU, and the interpreter does not check what the compiler
    accepts."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
