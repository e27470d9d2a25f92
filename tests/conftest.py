import pytest
import torch

from variants.layer import BACKENDS

# Every concrete compute path of the variants package; each is checked against the reference.
# triton has its own tests (tests/test_triton.py: CUDA, or Triton's interpreter on CPU).
PATHS = [b for b in BACKENDS if b not in ("auto", "triton")]

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
        ],
    ),
]


@pytest.fixture(scope="session", autouse=True)
def data_home(tmp_path_factory):
    """Built benchmarks go into a temporary data home, never into the checkout: one for the
    session, so that each is built once (the full JSB from music21 takes about a minute).
    Subprocesses (`odyssey run`, its workers) inherit it."""
    home = tmp_path_factory.mktemp("data-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ODYSSEY_DATA_HOME", str(home))
        yield home


@pytest.fixture(params=PATHS)
def backend(request):
    return request.param


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


# Tiny tensors: one thread avoids OpenMP spin-waits when other processes share the cores.
torch.set_num_threads(1)
