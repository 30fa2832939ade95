"""Exponential moving average of a network's parameters (Polyak averaging), for evaluation.

Built on ``torch.optim.swa_utils.AveragedModel`` with a ``multi_avg_fn`` doing one ``torch._foreach_lerp_`` per
update. Lightning's ``EMAWeightAveraging`` averages the whole LightningModule; the paper averages the
discriminator only, so this wraps one submodule.

The average is bias-corrected like Adam's moments: after n updates every past weight p_i has weight
proportional to decay^(n-i), normalised to sum to one. openai/improved-gan starts its average from zeros
without correction; starting from the initial weights without correction would instead keep the random
initialisation in the average for ~1/(1-decay) = 10^4 steps (18 MNIST epochs). With correction the average
is meaningful from the first epoch and tends to the plain decay-0.9999 average.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

__all__ = ["EMA", "debiased_decay"]


def debiased_decay(decay: float, num_averaged: int | Tensor) -> float:
    """Decay of the n-th update, n = ``num_averaged``, that makes the average bias-corrected.

    With m_n = decay m_{n-1} + (1 - decay) p_n, m_0 = 0, the corrected average a_n = m_n / (1 - decay^n) obeys
    a_n = d_n a_{n-1} + (1 - d_n) p_n with d_n = decay (1 - decay^(n-1)) / (1 - decay^n).

    Example:
        >>> debiased_decay(0.5, 1), debiased_decay(0.5, 2)   # first update copies, second: 0.5*0.5/0.75
        (0.0, 0.3333333333333333)
    """
    n = float(num_averaged)
    return decay * (1.0 - decay ** (n - 1)) / (1.0 - decay**n)


class EMA(AveragedModel):
    """Bias-corrected moving average of ``model``'s parameters; buffers are copied from the live model.

    Args:
        model: the network to average (deep-copied).
        decay: the asymptotic decay per update (reference: 0.9999).

    Example:
        >>> net = nn.Linear(1, 1, bias=False)
        >>> ema = EMA(net, decay=0.5)
        >>> with torch.no_grad():
        ...     _ = net.weight.fill_(1.0)
        >>> ema.restart(net)            # average = 1 (one sample)
        >>> with torch.no_grad():
        ...     _ = net.weight.fill_(4.0)
        >>> ema.update(net)             # (0.5 * 1 + 1 * 4) / 1.5
        >>> round(ema.module.weight.item(), 4)
        3.0
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")

        def average(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
            # AveragedModel calls this with the count before the update; the first update copies instead
            weight = 1.0 - debiased_decay(decay, int(num_averaged) + 1)
            torch._foreach_lerp_(averaged, current, weight)

        super().__init__(model, multi_avg_fn=average, use_buffers=False)
        self.decay = decay
        self.requires_grad_(False)

    @torch.no_grad()
    def restart(self, model: nn.Module) -> None:
        """Make the average equal to ``model``'s current weights (counted as one sample)."""
        self.n_averaged.zero_()
        self.update(model)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One averaging step towards ``model``; buffers (e.g. BN statistics) follow ``model``."""
        self.update_parameters(model)
        for mine, theirs in zip(self.module.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)
