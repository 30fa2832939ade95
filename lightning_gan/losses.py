"""Loss functions as pure functions of logits and features.

The K+1-class semi-supervised GAN loss and feature matching of Salimans et al. 2016,
"Improved Techniques for Training GANs" (section 5, eq. 5 and section 3.1), with one-sided label
smoothing (section 3.4) and the non-saturating generator loss on the K+1 real/fake decision. Only torch is
imported here: networks know nothing of losses, losses nothing of the training loop.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "SSLDiscriminatorLoss",
    "feature_matching_loss",
    "ssl_discriminator_loss",
    "ssl_generator_loss",
    "ssl_real_probability",
]


class SSLDiscriminatorLoss(NamedTuple):
    """The parts of the K+1 discriminator loss; ``total`` is what gets back-propagated."""

    total: Tensor
    label: Tensor
    unlabelled: Tensor
    fake: Tensor


def ssl_real_probability(logits: Tensor) -> Tensor:
    """D(x) = Z(x) / (Z(x) + 1) with Z(x) = sum_k exp(l_k(x)): the probability that x is real.

    The fake class K+1 has its logit fixed at 0, so D(x) = sigmoid(logsumexp(l(x))).

    Example:
        >>> ssl_real_probability(torch.tensor([[0.0, 0.0]]))  # Z = 2, D = 2/3
        tensor([0.6667])
    """
    return torch.sigmoid(torch.logsumexp(logits, dim=1))


def ssl_discriminator_loss(
    logits_labelled: Tensor,  # [B_l, K]
    labels: Tensor,  # [B_l]
    logits_unlabelled: Tensor,  # [B_u, K]
    logits_fake: Tensor,  # [B_f, K]
    unsupervised_weight: float = 1.0,
    real_target: float = 1.0,  # one-sided label smoothing alpha; the paper suggests 0.9
) -> SSLDiscriminatorLoss:
    """K+1-class discriminator loss of the semi-supervised GAN (Salimans et al. 2016, section 5).

    ``total = label + unsupervised_weight / 2 * (unlabelled + fake)`` with

    - ``label = cross_entropy(l(x_lab), y)`` over the K real classes,
    - ``unlabelled = -mean log D(x_unl) = mean softplus(-lse(l(x_unl)))``,
    - ``fake = -mean log(1 - D(G(z))) = mean softplus(lse(l(G(z))))``,

    where D(x) = Z/(Z+1) and lse is logsumexp over classes. Written with logsumexp and softplus,
    so logits of any magnitude give finite values (openai/improved-gan computes the same terms).

    One-sided label smoothing (section 3.4): with ``real_target = alpha < 1`` the unlabelled real term is the
    binary cross-entropy against target alpha, ``-alpha log D(x) - (1 - alpha) log(1 - D(x))``
    ``= alpha softplus(-lse) + (1 - alpha) softplus(lse)``; fake targets stay 0. Smoothing the fake side is not
    offered: with fake target beta the optimal discriminator is D*(x) = (alpha p_data + beta p_model) /
    (p_data + p_model), so where p_data is ~0 and p_model large D* tends to beta > 0, and the generator gets no
    incentive to move those samples towards the data. ``alpha = 1`` is the unsmoothed loss above.

    Example:
        >>> lab = torch.tensor([[0.0, 0.0]])       # CE = log 2
        >>> unl = torch.tensor([[0.0, 0.0]])       # D = 2/3, -log D = log 1.5
        >>> fake = torch.tensor([[0.0, -100.0]])   # Z = 1, D = 1/2, -log(1-D) = log 2
        >>> parts = ssl_discriminator_loss(lab, torch.tensor([1]), unl, fake)
        >>> [round(float(p), 4) for p in parts]    # log2 + (log1.5 + log2)/2
        [1.2425, 0.6931, 0.4055, 0.6931]
        >>> smoothed = ssl_discriminator_loss(lab, torch.tensor([1]), unl, fake, real_target=0.9)
        >>> round(float(smoothed.unlabelled), 4)  # 0.9 log 1.5 + 0.1 log 3
        0.4748
    """
    if not 0.0 < real_target <= 1.0:
        raise ValueError(f"ssl_discriminator_loss: real_target must be in (0, 1], got {real_target!r}")
    label = F.cross_entropy(logits_labelled, labels)
    lse_unl = torch.logsumexp(logits_unlabelled, dim=1)  # [B_u]
    unlabelled = F.softplus(-lse_unl).mean()  # -log D(x)
    if real_target != 1.0:
        unlabelled = real_target * unlabelled + (1.0 - real_target) * F.softplus(lse_unl).mean()  # -log(1 - D(x))
    fake = F.softplus(torch.logsumexp(logits_fake, dim=1)).mean()
    total = label + unsupervised_weight / 2 * (unlabelled + fake)
    return SSLDiscriminatorLoss(total, label, unlabelled, fake)


def ssl_generator_loss(logits_fake: Tensor) -> Tensor:  # [B_f, K] -> scalar
    """Non-saturating generator loss on the K+1 real/fake decision: ``-mean log D(G(z))``.

    With D = sigmoid(lse(l)), ``-log D = softplus(-lse(l))``. This is the generator loss the paper pairs with
    minibatch discrimination (section 3.2; openai/improved-gan ``train_cifar_minibatch_discrimination.py``);
    it does not saturate when D confidently rejects the fakes, unlike ``log(1 - D(G(z)))``.

    Example:
        >>> ssl_generator_loss(torch.tensor([[0.0, 0.0]]))    # D = 2/3, -log D = log 1.5
        tensor(0.4055)
        >>> ssl_generator_loss(torch.tensor([[0.0, -100.0]]))  # D = 1/2, -log D = log 2
        tensor(0.6931)
    """
    return F.softplus(-torch.logsumexp(logits_fake, dim=1)).mean()


def feature_matching_loss(real_features: Tensor, fake_features: Tensor, p: int = 2) -> Tensor:
    """Feature matching (Salimans et al. 2016, section 3.1): mean_j |E[f(x)]_j - E[f(G(z))]_j|^p.

    The batch means of an intermediate discriminator layer are compared. ``p=2`` is the squared error
    of openai/improved-gan's MNIST code, ``p=1`` the mean absolute error of its CIFAR-10/SVHN code.
    Features are flattened after the batch dimension.

    Example:
        >>> real = torch.tensor([[1.0, 2.0], [3.0, 2.0]])   # batch mean [2, 2]
        >>> fake = torch.tensor([[0.0, 0.0], [0.0, 2.0]])   # batch mean [0, 1]
        >>> feature_matching_loss(real, fake, p=2)          # (4 + 1) / 2
        tensor(2.5000)
        >>> feature_matching_loss(real, fake, p=1)          # (2 + 1) / 2
        tensor(1.5000)
    """
    if p not in (1, 2):
        raise ValueError(f"feature_matching_loss: p must be 1 or 2, got {p!r}")
    diff = real_features.flatten(1).mean(0) - fake_features.flatten(1).mean(0)  # [F]
    return diff.abs().mean() if p == 1 else diff.square().mean()
