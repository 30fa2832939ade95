"""Mode score (Che et al. 2017, "Mode Regularized Generative Adversarial Networks"): IS with a class-balance term.

    MS = exp(E_x KL(p(y|x) || p(y)) - KL(p(y) || p*(y)))

``p(y|x)`` is a classifier's prediction for a generated sample ``x``, ``p(y) = E_x p(y|x)`` its marginal over the
generated samples and ``p*(y)`` the class distribution of the training data. The first term is the log Inception
score (Salimans et al. 2016, section 4); the second is zero when the generated classes are as frequent as the real
ones and grows as the generator over- or under-produces classes (mode collapse, mode dropping).

Which KL comes first: the formula is often quoted with ``p*(y)`` in the first KL too,
``exp(E_x KL(p(y|x) || p*(y)) - KL(p(y) || p*(y)))``. Expanding both KLs, the ``log p*`` terms cancel and that
expression is exactly ``exp(H(y) - E_x H(y|x))``, the Inception score (one split) for every ``p*``: the prior would
change nothing. We use ``p(y)`` in the first KL, as Xu et al. 2018 ("An empirical study on evaluation metrics of
generative adversarial networks") write it, the form in which ``p*`` matters. The two agree whenever ``p(y) = p*(y)``.

All states are sums (``dist_reduce_fx="sum"``), so the metric is exact under DDP: the sum over samples of
``sum_y p(y|x) log p(y|x)`` (minus the conditional entropy), the sum of ``p(y|x)`` and the sample count. Then
``log MS = E_x sum_y p log p + H(p(y)) - KL(p(y) || p*(y))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["ModeScore", "mode_score"]


def _as_prior(prior: Tensor | Sequence[float] | None, num_classes: int) -> Tensor:
    """``prior`` as a float64 distribution over ``num_classes`` classes (uniform when ``None``), normalised."""
    if prior is None:
        return torch.full((num_classes,), 1.0 / num_classes, dtype=torch.float64)
    p = torch.as_tensor(prior, dtype=torch.float64).detach().cpu().flatten()
    if p.numel() != num_classes or bool((p < 0).any()) or not float(p.sum()) > 0:
        raise ValueError(
            f"prior must hold {num_classes} non-negative class frequencies with a positive sum, got {p.tolist()}"
        )
    return p / p.sum()


def _probabilities(inputs: Tensor, probabilities: bool) -> tuple[Tensor, Tensor]:
    """``(p(y|x), sum_y p log p)`` per sample, in float64, from logits or probabilities ``[N, K]``."""
    if inputs.ndim != 2:
        raise ValueError(f"expected logits or probabilities of shape [N, K], got {list(inputs.shape)}")
    x = inputs.detach().double()
    if probabilities:
        p = x / x.sum(dim=1, keepdim=True)  # [N, K]
        return p, torch.special.xlogy(p, p).sum(dim=1)  # 0 log 0 = 0
    log_p = x.log_softmax(dim=1)  # [N, K]
    p = log_p.exp()
    return p, (p * log_p).sum(dim=1)


def _log_mode_score(neg_entropy_sum: Tensor, prob_sum: Tensor, count: Tensor, prior: Tensor) -> Tensor:
    """``log MS`` from the sufficient statistics (float64)."""
    marginal = prob_sum / count  # p(y) = E_x p(y|x), [K]
    entropy = -torch.special.xlogy(marginal, marginal).sum()  # H(p(y))
    kl_to_prior = (torch.special.xlogy(marginal, marginal) - torch.special.xlogy(marginal, prior)).sum()
    return neg_entropy_sum / count + entropy - kl_to_prior  # E_x KL(p(y|x) || p(y)) - KL(p(y) || p*(y))


def mode_score(inputs: Tensor, prior: Tensor | Sequence[float] | None = None, *, probabilities: bool = False) -> Tensor:
    """Mode score of a set of class predictions: ``exp(E_x KL(p(y|x) || p(y)) - KL(p(y) || p*(y)))``.

    Args:
        inputs: classifier logits ``[N, K]`` (or probabilities, with ``probabilities=True``) of generated samples.
        prior: ``p*(y)``, the class distribution of the training data, ``[K]`` (normalised here); uniform if ``None``.
        probabilities: ``inputs`` are probabilities (rows are normalised), not logits.

    Returns:
        The score, a float32 scalar between 0 and K; 1 when every sample gets the same prediction.

    Example:
        Confident, balanced predictions score K; a collapsed generator (always class 0) scores 1 against
        itself and far less against a uniform prior:

        >>> confident = torch.eye(4)  # four samples, one per class
        >>> mode_score(confident, probabilities=True)
        tensor(4.)
        >>> mode_score(torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 4), probabilities=True)  # exp(0 - log 4)
        tensor(0.2500)
        >>> mode_score(torch.zeros(5, 3))  # uniform p(y|x): exp(0 - KL(uniform || uniform))
        tensor(1.)
    """
    p, neg_entropy = _probabilities(inputs, probabilities)
    count = torch.tensor(float(len(p)), dtype=torch.float64, device=p.device)
    log_ms = _log_mode_score(neg_entropy.sum(), p.sum(dim=0), count, _as_prior(prior, p.shape[1]).to(p.device))
    return log_ms.exp().float()


class ModeScore(Metric):
    """Mode score of generated samples from a classifier's predictions, accumulated batch by batch.

    ``MS = exp(E_x KL(p(y|x) || p(y)) - KL(p(y) || p*(y)))`` (Che et al. 2017; see the module docstring for why
    ``p(y)``, not ``p*(y)``, is in the first KL). Higher is better; the maximum, K, needs confident predictions
    whose classes are as frequent as in ``prior``.

    The states are three sums (per-sample ``sum_y p log p``, ``p(y|x)`` and the count), reduced by summation under
    DDP. The prior is a buffer, not a state: it is the same on every rank and survives ``reset``.

    Args:
        num_classes: K, the number of classes of the classifier.
        prior: ``p*(y)``, the class distribution of the training data (normalised here); uniform if ``None``.
            Replace it later with :meth:`set_prior` (e.g. with a classifier's marginal on the real images).
        probabilities: ``update`` receives probabilities instead of logits.
        kwargs: torchmetrics ``Metric`` options (``sync_on_compute``, ``process_group``, ...).

    Example:
        >>> metric = ModeScore(num_classes=3, probabilities=True)
        >>> metric.update(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        >>> metric.update(torch.tensor([[0.0, 0.0, 1.0]]))
        >>> metric.compute()  # confident and balanced: K
        tensor(3.)
        >>> metric.set_prior([0.5, 0.25, 0.25])  # class 0 twice as frequent in the training data
        >>> metric.compute()  # 3 exp(-KL(uniform || prior)) = 3 exp(-(log(2/3) + 2 log(4/3)) / 3)
        tensor(2.8348)
    """

    is_differentiable: bool = False
    higher_is_better: bool = True
    full_state_update: bool = False
    plot_lower_bound: float = 0.0

    neg_entropy_sum: Tensor
    prob_sum: Tensor
    count: Tensor
    prior: Tensor

    def __init__(
        self,
        num_classes: int,
        prior: Tensor | Sequence[float] | None = None,
        probabilities: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.probabilities = probabilities
        self.register_buffer("prior", _as_prior(prior, num_classes), persistent=False)
        self.add_state("neg_entropy_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("prob_sum", torch.zeros(num_classes, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def set_prior(self, prior: Tensor | Sequence[float] | None) -> None:
        """Replace ``p*(y)`` (normalised here; uniform if ``None``); accumulated samples are kept."""
        self.prior = _as_prior(prior, self.num_classes).to(self.prior.device)
        self._computed = None  # a cached value used the old prior

    def update(self, inputs: Tensor) -> None:
        """Add a batch of logits ``[N, K]`` (probabilities if built with ``probabilities=True``)."""
        if inputs.shape[-1] != self.num_classes:
            raise ValueError(f"expected {self.num_classes} classes, got inputs of shape {list(inputs.shape)}")
        p, neg_entropy = _probabilities(inputs, self.probabilities)
        self.neg_entropy_sum += neg_entropy.sum()
        self.prob_sum += p.sum(dim=0)
        self.count += len(p)

    def compute(self) -> Tensor:
        """The score over every sample added since the last ``reset`` (float32 scalar)."""
        if self.count < 1:
            raise RuntimeError("ModeScore.compute() needs at least one sample; call update() first")
        prior = self.prior.to(self.prob_sum.device)
        return _log_mode_score(self.neg_entropy_sum, self.prob_sum, self.count, prior).exp().float()
