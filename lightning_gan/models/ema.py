"""Exponential moving average of a network's parameters (Polyak averaging), for evaluation.

A ``torch.optim.swa_utils.AveragedModel`` (so ``module``, the ``n_averaged`` buffer and the checkpoint layout are
the usual ones) whose update is one ``torch._foreach_lerp_`` over all parameters, with no host-device
synchronisation: the count of averaged samples is mirrored in a Python int, so the bias-corrected decay is computed
on the host, and ``n_averaged`` (checkpointed) is advanced with a device-side ``add_``. ``AveragedModel``'s own
update reads ``n_averaged`` three times per call (``bool(n == 0)``, ``n > 0``, and the average function's ``int(n)``),
each a blocking copy from an accelerator. Lightning's ``EMAWeightAveraging`` averages the whole LightningModule; the
paper averages the discriminator only, so this wraps one submodule.

The average is bias-corrected like Adam's moments: after n updates every past weight p_i has weight
proportional to decay^(n-i), normalised to sum to one. openai/improved-gan starts its average from zeros
without correction; starting from the initial weights without correction would instead keep the random
initialisation in the average for ~1/(1-decay) = 10^4 steps (18 MNIST epochs). With correction the average
is meaningful from the first epoch and tends to the plain decay-0.9999 average.
"""

from __future__ import annotations

from typing import Any

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
        >>> round(ema.module.weight.item(), 4), ema.num_averaged
        (3.0, 2)
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        super().__init__(model, use_buffers=False)
        self.decay = decay
        self.requires_grad_(False)
        self._count: int | None = 0  # host copy of n_averaged; None: read the buffer once (after load_state_dict)
        self._pairs: tuple[nn.Module, list[Tensor], list[Tensor]] | None = None  # (model, averaged, current)

    @property
    def num_averaged(self) -> int:
        """Samples in the average (``n_averaged`` as a Python int; reads the buffer only after a state-dict load)."""
        if self._count is None:
            self._count = int(self.n_averaged)
        return self._count

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        return {**state, "_pairs": None}  # a copy or pickle must not drag the live model along

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._count = None  # n_averaged came from the checkpoint

    @torch.no_grad()
    def restart(self, model: nn.Module) -> None:
        """Make the average equal to ``model``'s current weights (counted as one sample)."""
        self.n_averaged.zero_()
        self._count = 0
        self.update(model)

    @torch.no_grad()
    def update(self, model: nn.Module, foreach: bool = True) -> None:
        """One averaging step towards ``model``; buffers (e.g. BN statistics) follow ``model``.

        Args:
            model: the live network, with the same parameters and buffers as ``module``.
            foreach: one ``torch._foreach_lerp_`` (``_foreach_copy_`` for the first sample) over all parameters,
                with the count kept on the host. ``False``: the plain transcription, a Python loop of ``lerp_`` per
                parameter with the count read from the ``n_averaged`` tensor (a host-device synchronisation on an
                accelerator). Both give the same numbers.
        """
        if foreach:
            averaged, current = self._parameter_lists(model)
            n = self.num_averaged
            if n == 0:
                torch._foreach_copy_(averaged, current)
            else:
                torch._foreach_lerp_(averaged, current, 1.0 - debiased_decay(self.decay, n + 1))
            mine, theirs = list(self.module.buffers()), list(model.buffers())
            if mine:
                torch._foreach_copy_(mine, [b.detach() for b in theirs])
        else:
            n = int(self.n_averaged)
            averaged, current = self._walk_parameters(model)  # walked every time
            for p_avg, p in zip(averaged, current, strict=True):
                if n == 0:
                    p_avg.copy_(p)
                else:
                    p_avg.lerp_(p, 1.0 - debiased_decay(self.decay, n + 1))
            for mine, theirs in zip(self.module.buffers(), model.buffers(), strict=True):
                mine.copy_(theirs)
        self.n_averaged.add_(1)
        self._count = n + 1

    def _walk_parameters(self, model: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
        """The parameters of the average and of ``model``, which must have as many."""
        averaged, current = list(self.module.parameters()), list(model.parameters())
        if len(averaged) != len(current):
            raise ValueError(f"EMA.update: the model has {len(current)} parameters, the average {len(averaged)}")
        return averaged, current

    def _parameter_lists(self, model: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
        """The parameters of the average and of ``model``, listed once per model and reused.

        Walking a weight-normalised network's modules for its parameters costs about as much as averaging them;
        the lists are rebuilt when ``model`` is another module or its first parameter is another tensor.
        """
        first = next(model.parameters(), None)
        if self._pairs is None or self._pairs[0] is not model or (self._pairs[2][:1] or [None])[0] is not first:
            self._pairs = (model, *self._walk_parameters(model))
        return self._pairs[1], self._pairs[2]

    def update_parameters(self, model: nn.Module) -> None:
        """``AveragedModel``'s update entry point: :meth:`update`."""
        self.update(model)
