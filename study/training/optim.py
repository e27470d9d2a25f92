"""SGD with the Nesterov-style momentum of Greff et al., one learning rate and momentum per trial.

The authors' library does, per update:  v <- m v;  theta <- theta + v;  g = grad at theta;
d <- (1 - m) lr g;  v <- v - d;  theta <- theta - d.  So `lookahead()` runs before the
forward pass and `step()` after the backward pass. torch.optim cannot take per-trial
hyperparameters, hence this small optimizer over parameters with a leading trial axis K.
On CPU each half runs as one compiled pass per parameter (variants/csrc/update.cpp): the
arithmetic of the torch ops used elsewhere, up to the compiler's fused multiply-adds.
"""

from __future__ import annotations

import functools
import sys

import torch
from torch import Tensor

from variants import compiled


class PopulationNesterov:
    def __init__(
        self,
        params: list[Tensor],
        lr: Tensor,
        momentum: Tensor,
        velocity: list[Tensor] | None = None,  # to continue; zeros to start
    ) -> None:
        self.params = list(params)
        ref = self.params[0]
        self.lr = lr.to(device=ref.device, dtype=ref.dtype)
        self.momentum = momentum.to(device=ref.device, dtype=ref.dtype)
        # A stopped trial gets rate 0 and momentum 0: its parameters never change again.
        self.active = torch.ones_like(self.lr, dtype=torch.bool)
        self.velocity = velocity if velocity is not None else [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def lookahead(self) -> None:
        momentum = self.momentum * self.active
        for p, v in zip(self.params, self.velocity):
            if _compiled("lookahead", momentum, p, v):
                compiled.call("lookahead", p.dtype, *_sized(p, v, momentum), *_shape(momentum, p))
                continue
            v.mul_(_per_trial(momentum, p))
            p.add_(v)

    @torch.no_grad()
    def step(self) -> None:
        rate = (1 - self.momentum) * self.lr * self.active
        for p, v in zip(self.params, self.velocity):
            if p.grad is None:
                continue
            if _compiled("step", rate, p, v, p.grad):
                # torch.bool is one byte of 0 or 1: the kernel reads it as uint8_t
                args = _sized(p, v, p.grad, rate, self.active)
                compiled.call("step", p.dtype, *args, *_shape(rate, p))
                continue
            # The gradient is spent here, so d is built in it: no temporaries (at large K
            # these tensors outgrow the caches, and each pass over them costs).
            d = p.grad.mul_(_per_trial(rate, p))
            # A mask, not the product alone: a stopped trial's gradient may be NaN, and
            # NaN * 0 is NaN.
            d.masked_fill_(~_per_trial(self.active, p), 0.0)
            v.sub_(d)
            p.sub_(d)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None


def _per_trial(values: Tensor, like: Tensor) -> Tensor:
    """Values per trial [K], shaped to broadcast over a parameter with a leading trial axis."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def _compiled(name: str, *tensors: Tensor) -> bool:
    """Whether the compiled half of the update runs for these tensors (per-trial
    coefficients first): CPU, one dtype of float32 or float64, contiguous, a library that
    builds."""
    dtype = tensors[0].dtype
    if tensors[0].device.type != "cpu" or dtype not in compiled.SUFFIX:
        return False
    if not all(t.is_contiguous() and t.dtype == dtype for t in tensors):
        return False
    K, p = tensors[0].numel(), tensors[1]
    if K > 1 and (p.dim() == 0 or p.shape[0] != K):
        return False  # not a leading trial axis: the torch ops say why
    return compiled.library() is not None and _update_checked(dtype)


@functools.cache
def _update_checked(dtype: torch.dtype) -> bool:
    """Whether the compiled update does what the torch ops do, on two trials of three
    numbers (one trial stopped): checked on the first use of a dtype in a process, like
    the recurrence kernels (variants/layer.py); if not, one line says so and the torch ops
    run."""
    gen = torch.Generator().manual_seed(0)
    p, v, g = (torch.randn(2, 3, generator=gen, dtype=dtype) for _ in range(3))
    coefficient, active = torch.tensor([0.9, 0.5], dtype=dtype), torch.tensor([True, False])
    want_v = v * coefficient[:, None]
    want_p = p + want_v
    d = g * (coefficient * active)[:, None]
    want_v, want_p = want_v - d, want_p - d
    try:
        compiled.call("lookahead", dtype, *_sized(p, v, coefficient), 2, 3, 1)
        compiled.call("step", dtype, *_sized(p, v, g, coefficient, active), 2, 3, 1)
    except Exception as err:  # noqa: BLE001 - any failure means: do not use these kernels
        problem = (str(err).strip().splitlines() or [type(err).__name__])[0]
    else:
        close = torch.allclose(p, want_p) and torch.allclose(v, want_v)
        problem = None if close else "results differ from the torch ops"
    if problem:
        print(
            f"optim: the compiled update failed its check ({problem}); using torch ops",
            file=sys.stderr,
        )
    return problem is None


def _sized(*tensors: Tensor) -> list[int]:
    """Each (contiguous) tensor's pointer and number of elements, for the kernels' checks."""
    return [n for t in tensors for n in (t.data_ptr(), t.numel())]


def _shape(coefficients: Tensor, p: Tensor) -> tuple[int, int, int]:
    """(K, numbers per trial, threads) for the kernels."""
    K = coefficients.numel()
    return K, p.numel() // K, torch.get_num_threads()
