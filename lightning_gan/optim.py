"""Optimizers and schedules that torch does not have, from openai/improved-gan.

- :class:`ReferenceAdam`: the reference's Adam, epsilon inside the square root.
- :class:`LinearDecayLR`: the reference's CIFAR-10 / SVHN learning-rate schedule, constant then linear to 0.

Hand-written because no library offers it: torch's ``Adam`` divides by ``sqrt(v_hat) + eps``, the reference
(``nn.adam_updates`` in openai/improved-gan) by ``sqrt(v_hat + 1e-8)``. For a parameter whose gradients vanish the
reference's step stays bounded (``m_hat / 1e-4``) while torch's default (``eps=1e-8``) grows 10,000 times larger; on
semi-supervised MNIST that difference decides whether training collapses (``docs/reproduction.md``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = ["LinearDecayLR", "ReferenceAdam"]


class ReferenceAdam(torch.optim.Optimizer):
    """Adam with ``p <- p - lr * m_hat / sqrt(v_hat + eps)``, as in openai/improved-gan (Salimans et al. 2016).

    ``m_hat = m_t / (1 - beta1^t)`` and ``v_hat = v_t / (1 - beta2^t)`` are torch's bias-corrected moments; only the
    place of ``eps`` differs from ``torch.optim.Adam``. No weight decay, amsgrad or closure tricks: the reference has
    none.

    Args:
        params: the parameters (or parameter groups) to optimise.
        lr: learning rate (the reference's MNIST setup: 0.003).
        betas: ``(beta1, beta2)`` (the reference's MNIST setup: (0.5, 0.999)).
        eps: added to ``v_hat`` under the square root (the reference: 1e-8).
        foreach: update all parameters with one set of ``torch._foreach_*`` kernels (``False``: one parameter at a
            time, the same numbers; the baseline of ``benchmarks/ssl_throughput.py``).

    Example:
        >>> p = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = ReferenceAdam([p], lr=0.1, betas=(0.5, 0.999), eps=1e-8)
        >>> p.grad = torch.tensor([1e-6])  # a vanishing gradient: the step is m_hat / sqrt(v_hat + eps), not lr
        >>> opt.step()
        >>> round(1.0 - p.item(), 6)  # 0.1 * 1e-6 / sqrt(1e-12 + 1e-8)
        0.001
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        foreach: bool = True,
    ) -> None:
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"ReferenceAdam: lr >= 0, eps >= 0 and betas in [0, 1) required, got {lr}, {eps}, {betas}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "foreach": foreach})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # noqa: D102 (torch.optim.Optimizer.step)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            by_step: dict[float, list[Tensor]] = {}  # parameters that share a step count share the bias corrections
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                by_step.setdefault(float(state["step"]), []).append(p)
            batches = [(t, params) for t, params in by_step.items()]  # one set of kernels per step count (usually one)
            if not group.get("foreach", True):  # the plain loop: the same kernels, one parameter at a time
                batches = [(t, [p]) for t, params in batches for p in params]
            for t, params in batches:
                grads = [p.grad for p in params]
                m = [self.state[p]["exp_avg"] for p in params]
                v = [self.state[p]["exp_avg_sq"] for p in params]
                torch._foreach_lerp_(m, grads, 1 - beta1)  # m_t = beta1 m + (1 - beta1) g
                torch._foreach_mul_(v, beta2)
                torch._foreach_addcmul_(v, grads, grads, value=1 - beta2)  # v_t
                denom = torch._foreach_div(v, 1 - beta2**t)  # v_hat
                torch._foreach_add_(denom, group["eps"])
                torch._foreach_sqrt_(denom)  # sqrt(v_hat + eps)
                torch._foreach_addcdiv_(params, m, denom, value=-group["lr"] / (1 - beta1**t))
        return loss


class LinearDecayLR(torch.optim.lr_scheduler.LRScheduler):
    """Per-epoch learning rate ``base_lr * min(1, (total_epochs - epoch) / decay_epochs)``, clamped at 0.

    Constant for the first ``total_epochs - decay_epochs`` epochs, then linear down to 0 at ``total_epochs``
    (0 beyond it). openai/improved-gan ``train_cifar_feature_matching.py``: ``lr * min(3 - epoch/400, 1)`` over 1200
    epochs, i.e. ``total_epochs=1200, decay_epochs=400``; ``train_svhn_feature_matching.py``:
    ``lr * min(3 - epoch/300, 1)`` over 900 epochs, i.e. ``total_epochs=900, decay_epochs=300``. ``epoch`` counts
    from 0 and is the scheduler's ``last_epoch``: call :meth:`step` once per epoch (Lightning's default
    ``interval="epoch"``). The rate is computed in closed form from the epoch, so resuming from a ``state_dict`` (plain
    attributes) or stepping with an explicit epoch gives the same rate.

    Args:
        optimizer: the wrapped optimizer; each group's initial ``lr`` is its ``base_lr``.
        total_epochs: the epoch at which the rate reaches 0.
        decay_epochs: the length of the linear decay, ``1 <= decay_epochs <= total_epochs``.
        last_epoch: the index of the last epoch, ``-1`` to start afresh (torch's convention).

    Example:
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
        >>> sched = LinearDecayLR(opt, total_epochs=1200, decay_epochs=400)
        >>> [round(sched.factor(e), 4) for e in (0, 800, 1000, 1199, 1200)]
        [1.0, 1.0, 0.5, 0.0025, 0.0]
        >>> for _ in range(1000):
        ...     opt.step()
        ...     sched.step()
        >>> sched.get_last_lr()   # 3e-4 * min(3 - 1000 / 400, 1)
        [0.00015]
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_epochs: int = 1200,  # reference CIFAR-10: 1200 epochs (SVHN: 900)
        decay_epochs: int = 400,  # reference CIFAR-10: decay over the last 400 (SVHN: 300)
        last_epoch: int = -1,
    ) -> None:
        for name, value in (("total_epochs", total_epochs), ("decay_epochs", decay_epochs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LinearDecayLR: {name} must be a positive integer, got {value!r}")
        if decay_epochs > total_epochs:
            raise ValueError(
                f"LinearDecayLR: decay_epochs ({decay_epochs}) must not exceed total_epochs ({total_epochs}): "
                "the decay would start before epoch 0"
            )
        self.total_epochs = total_epochs
        self.decay_epochs = decay_epochs
        super().__init__(optimizer, last_epoch)

    def factor(self, epoch: int) -> float:
        """The multiplier of the base rates at ``epoch``: ``min(1, (total_epochs - epoch) / decay_epochs)``, >= 0."""
        return max(0.0, min(1.0, (self.total_epochs - epoch) / self.decay_epochs))

    def get_lr(self) -> list[float]:  # noqa: D102 (torch.optim.lr_scheduler.LRScheduler.get_lr)
        return [base_lr * self.factor(self.last_epoch) for base_lr in self.base_lrs]

    def _get_closed_form_lr(self) -> list[float]:  # used by torch when step() is given an explicit epoch
        return self.get_lr()
