"""Loss functions as pure functions of logits and features.

The K+1-class semi-supervised GAN loss and feature matching of Salimans et al. 2016,
"Improved Techniques for Training GANs" (section 5, eq. 5 and section 3.1), with one-sided label
smoothing (section 3.4) and the non-saturating generator loss on the K+1 real/fake decision; and the losses of
the unsupervised GAN family, written on D's raw output (a logit, or a critic score): minimax and non-saturating
(Goodfellow et al. 2014), Wasserstein (Arjovsky et al. 2017) with the gradient penalty of Gulrajani et al.
2017, and hinge (Lim & Ye 2017; Miyato et al. 2018). Only torch is imported here: networks know nothing of
losses, losses nothing of the training loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "GAN_DISCRIMINATOR_LOSSES",
    "GAN_GENERATOR_LOSSES",
    "SSLDiscriminatorLoss",
    "bce_discriminator_loss",
    "feature_matching_loss",
    "feature_std_matching_loss",
    "gradient_penalty",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "minimax_generator_loss",
    "non_saturating_generator_loss",
    "wasserstein_discriminator_loss",
    "wasserstein_generator_loss",
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


def feature_std_matching_loss(real_features: Tensor, fake_features: Tensor, p: int = 2) -> Tensor:
    """Second-moment feature matching: mean_j |std[f(x)]_j - std[f(G(z))]_j|^p over the batch.

    Not in Salimans et al. 2016 (their generator matches batch means only, :func:`feature_matching_loss`); the
    mean-and-spread matching of McGan (Mroueh et al. 2017) reduced to per-feature standard deviations. A generator
    that maps every z to one image has fake features whose spread is only D's noise, so this term, unlike the mean
    term, grows with mode collapse and pulls the samples apart (``docs/reproduction.md``). Population standard
    deviation (divisor B), as the batch-norm statistics, computed as ``sqrt(var + 1e-8)`` so that a feature that is
    constant over the batch (a ReLU off for every sample) has a finite gradient. Features are flattened after the
    batch dimension.

    Example:
        >>> real = torch.tensor([[1.0, 2.0], [3.0, 2.0]])   # batch std [1, 0]
        >>> fake = torch.tensor([[0.0, 0.0], [0.0, 2.0]])   # batch std [0, 1]
        >>> round(float(feature_std_matching_loss(real, fake, p=2)), 3)      # (1 + 1) / 2
        1.0
        >>> round(float(feature_std_matching_loss(real, real[:1].expand(2, 2), p=1)), 3)  # collapsed: (1 + 0) / 2
        0.5
    """
    if p not in (1, 2):
        raise ValueError(f"feature_std_matching_loss: p must be 1 or 2, got {p!r}")
    real_std = real_features.flatten(1).var(0, correction=0).add(1e-8).sqrt()  # [F]
    fake_std = fake_features.flatten(1).var(0, correction=0).add(1e-8).sqrt()  # [F]
    diff = real_std - fake_std
    return diff.abs().mean() if p == 1 else diff.square().mean()


# ----- the unsupervised GAN family: D outputs one number per image, [B] or [B, 1] -------------------------------
def _check_real_target(real_target: float, loss: str) -> None:
    if not 0.0 < real_target <= 1.0:
        raise ValueError(
            f"{loss}: real_target (one-sided label smoothing alpha) must be in (0, 1], got {real_target!r}"
        )


def bce_discriminator_loss(real_logits: Tensor, fake_logits: Tensor, real_target: float = 1.0) -> Tensor:
    """Discriminator loss of the minimax and non-saturating GANs: ``-mean log D(x) - mean log(1 - D(G(z)))``.

    D(x) = sigmoid(logit), so ``-log D = softplus(-l)`` and ``-log(1 - D) = softplus(l)`` (finite for any logit).
    The two expectations are summed, as in Goodfellow et al. 2014, eq. 1 (not averaged).

    One-sided label smoothing (Salimans et al. 2016, section 3.4): with ``real_target = alpha < 1`` the real term
    is the cross-entropy against alpha, ``-alpha log D(x) - (1 - alpha) log(1 - D(x))``; fake targets stay 0.
    Smoothing the fake side is not offered: with fake target beta the optimal D is (alpha p_data + beta p_model) /
    (p_data + p_model), which tends to beta > 0 where there is no data, so fakes there are not pushed back.

    Example:
        >>> real, fake = torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0])  # D = 1/2 everywhere
        >>> bce_discriminator_loss(real, fake)                                # log 2 + log 2
        tensor(1.3863)
        >>> # 0.9 softplus(-2) + 0.1 softplus(2) + softplus(-1) = 0.1142 + 0.2127 + 0.3133
        >>> bce_discriminator_loss(torch.tensor([2.0]), torch.tensor([-1.0]), real_target=0.9)
        tensor(0.6402)
    """
    _check_real_target(real_target, "bce_discriminator_loss")
    real = F.softplus(-real_logits).mean()  # -log D(x)
    if real_target != 1.0:
        real = real_target * real + (1.0 - real_target) * F.softplus(real_logits).mean()  # -log(1 - D(x))
    return real + F.softplus(fake_logits).mean()  # -log(1 - D(G(z)))


def minimax_generator_loss(fake_logits: Tensor) -> Tensor:
    """The original (saturating) generator loss: ``mean log(1 - D(G(z))) = -mean softplus(l)``, minimised.

    Its gradient vanishes when D confidently rejects the fakes (l very negative), which is why Goodfellow et al.
    2014 propose the non-saturating loss in practice.

    Example:
        >>> minimax_generator_loss(torch.tensor([0.0]))   # log(1 - 1/2)
        tensor(-0.6931)
    """
    return -F.softplus(fake_logits).mean()


def non_saturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss: ``-mean log D(G(z)) = mean softplus(-l)``.

    Example:
        >>> non_saturating_generator_loss(torch.tensor([0.0, 2.0]))   # (log 2 + softplus(-2)) / 2
        tensor(0.4100)
    """
    return F.softplus(-fake_logits).mean()


def wasserstein_discriminator_loss(real_scores: Tensor, fake_scores: Tensor, real_target: float = 1.0) -> Tensor:
    """WGAN critic loss (Arjovsky et al. 2017): ``mean f(G(z)) - mean f(x)``, minimised by the critic f.

    Its negative estimates the Wasserstein-1 distance when f is 1-Lipschitz (weight clipping or
    :func:`gradient_penalty`). ``real_target`` exists for a uniform signature and must be 1.

    Example:
        >>> wasserstein_discriminator_loss(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0]))   # -0.5 - 2
        tensor(-2.5000)
    """
    if real_target != 1.0:
        raise ValueError("label smoothing does not apply to the Wasserstein loss (no targets): leave real_target at 1")
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(fake_scores: Tensor) -> Tensor:
    """WGAN generator loss: ``-mean f(G(z))``.

    Example:
        >>> wasserstein_generator_loss(torch.tensor([-1.0, 0.0]))
        tensor(0.5000)
    """
    return -fake_scores.mean()


def hinge_discriminator_loss(real_scores: Tensor, fake_scores: Tensor, real_target: float = 1.0) -> Tensor:
    """Hinge loss for D (Lim & Ye 2017; Miyato et al. 2018): ``mean relu(1 - D(x)) + mean relu(1 + D(G(z)))``.

    ``real_target`` exists for a uniform signature and must be 1 (the margin already keeps D from saturating).

    Example:
        >>> hinge_discriminator_loss(torch.tensor([0.5, 2.0]), torch.tensor([-3.0, 0.0]))   # (0.5+0)/2 + (0+1)/2
        tensor(0.7500)
    """
    if real_target != 1.0:
        raise ValueError("label smoothing does not apply to the hinge loss (no targets): leave real_target at 1")
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def hinge_generator_loss(fake_scores: Tensor) -> Tensor:
    """Generator loss paired with the hinge D loss: ``-mean D(G(z))``.

    Example:
        >>> hinge_generator_loss(torch.tensor([-3.0, 0.0]))
        tensor(1.5000)
    """
    return -fake_scores.mean()


def gradient_penalty(
    critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, epsilon: Tensor | None = None
) -> Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017, eq. 3): ``mean (||grad_x f(x_hat)||_2 - 1)^2``.

    ``x_hat = eps x + (1 - eps) G(z)`` with one ``eps ~ U(0, 1)`` per sample (``epsilon`` of shape [B] to fix
    it). The gradient is taken with ``create_graph=True`` so the penalty itself can be back-propagated into the
    critic; the norm is over all dimensions of one sample. Multiply by lambda (10 in the paper) yourself.

    Example:
        >>> critic = lambda x: 3.0 * x.flatten(1).sum(1)           # gradient 3 everywhere, norm 3 sqrt(4) = 6
        >>> gradient_penalty(critic, torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2))  # (6 - 1)^2
        tensor(25.)
    """
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real {list(real.shape)} and fake {list(fake.shape)} shapes differ")
    if epsilon is None:
        epsilon = torch.rand(len(real), device=real.device, dtype=real.dtype)
    eps = epsilon.view(-1, *([1] * (real.dim() - 1)))  # [B, 1, ...]
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).square().mean()


#: D losses of the unsupervised family by name, each ``(real_out, fake_out, real_target) -> loss``.
GAN_DISCRIMINATOR_LOSSES: dict[str, Callable[..., Tensor]] = {
    "minimax": bce_discriminator_loss,
    "non_saturating": bce_discriminator_loss,
    "wasserstein": wasserstein_discriminator_loss,
    "hinge": hinge_discriminator_loss,
}
#: G losses by the same names, each ``fake_out -> loss``.
GAN_GENERATOR_LOSSES: dict[str, Callable[[Tensor], Tensor]] = {
    "minimax": minimax_generator_loss,
    "non_saturating": non_saturating_generator_loss,
    "wasserstein": wasserstein_generator_loss,
    "hinge": hinge_generator_loss,
}
