"""SGD with the Nesterov-style momentum of Greff et al., one learning rate and momentum per trial.

The authors' library does, per update:  v <- m v;  theta <- theta + v;  g = grad at theta;
d <- (1 - m) lr g;  v <- v - d;  theta <- theta - d.  So `lookahead()` runs before the
forward pass and `step()` after the backward pass. torch.optim cannot take per-trial
hyperparameters, hence this small optimizer over parameters with a leading trial axis K.
"""

from __future__ import annotations

import torch
from torch import Tensor


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

    def _per_trial(self, values: Tensor, like: Tensor) -> Tensor:
        return (values * self.active).view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def lookahead(self) -> None:
        for p, v in zip(self.params, self.velocity):
            v.mul_(self._per_trial(self.momentum, p))
            p.add_(v)

    @torch.no_grad()
    def step(self) -> None:
        rate = (1 - self.momentum) * self.lr
        for p, v in zip(self.params, self.velocity):
            if p.grad is None:
                continue
            # The gradient is spent here, so d is built in it: no temporaries (at large K
            # these tensors outgrow the caches, and each pass over them costs).
            d = p.grad.mul_(self._per_trial(rate, p))
            # A mask, not the product alone: a stopped trial's gradient may be NaN, and
            # NaN * 0 is NaN.
            d.masked_fill_(~self.active.view(-1, *([1] * (p.dim() - 1))), 0.0)
            v.sub_(d)
            p.sub_(d)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None
