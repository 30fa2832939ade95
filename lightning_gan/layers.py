"""Small layers the paper's networks need and torch does not ship.

- :class:`GaussianNoise`: additive noise in the discriminator (openai/improved-gan ``GaussianNoiseLayer``).
- :class:`Bias`: a learned shift, for batch norm with a shift but no scale (the MNIST generator).
- :func:`weight_norm_linear`: ``nn.Linear`` under ``torch.nn.utils.parametrizations.weight_norm``
  (Salimans & Kingma 2016), initialised as in the reference code.
- :func:`data_dependent_init`: the data-dependent initialisation of weight-normalised layers
  (Salimans & Kingma 2016, section 3): each layer's pre-activations on an init batch get mean 0
  and standard deviation 1 per unit. Hand-written: torch has weight norm but not this init.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["Bias", "GaussianNoise", "data_dependent_init", "is_weight_normed", "weight_norm_linear"]


class GaussianNoise(nn.Module):
    """Adds N(0, sigma^2) noise in training mode; the identity in eval mode.

    Example:
        >>> noise = GaussianNoise(sigma=0.5).eval()
        >>> noise(torch.ones(2, 3)).sum()
        tensor(6.)
    """

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma  # standard deviation of the added noise

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.sigma == 0:
            return x
        return x + self.sigma * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class Bias(nn.Module):
    """A learned per-feature shift, initialised at zero.

    Example:
        >>> Bias(3)(torch.zeros(2, 3)).shape
        torch.Size([2, 3])
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bias


def weight_norm_linear(
    in_features: int,
    out_features: int,
    *,
    weight_std: float = 0.05,  # openai/improved-gan nn.DenseLayer: theta ~ N(0, 0.05); the MNIST D passes 0.1
    train_scale: bool = True,  # the reference freezes the scale g in all MNIST D layers but the last
) -> nn.Linear:
    """A weight-normalised linear layer, W = g v / ||v|| row-wise, with the reference initialisation.

    ``v ~ N(0, weight_std^2)``, ``g = 1``, bias 0; :func:`data_dependent_init` then sets g and bias.
    A frozen scale stays a parameter with ``requires_grad=False`` so it is checkpointed and
    averaged like the others, but no optimizer sees it.

    Example:
        >>> layer = weight_norm_linear(4, 3, train_scale=False)
        >>> layer.parametrizations.weight.original0.requires_grad
        False
        >>> torch.allclose(layer.weight.norm(dim=1), torch.ones(3))
        True
    """
    layer = nn.Linear(in_features, out_features)
    nn.init.normal_(layer.weight, std=weight_std)
    nn.init.zeros_(layer.bias)
    layer = weight_norm(layer, name="weight", dim=0)
    with torch.no_grad():
        layer.parametrizations.weight.original0.fill_(1.0)
    layer.parametrizations.weight.original0.requires_grad_(train_scale)
    return layer


def is_weight_normed(module: nn.Module) -> bool:
    """Whether ``module`` carries a ``weight_norm`` parametrization of its ``weight``."""
    return parametrize.is_parametrized(module, "weight") and hasattr(module.parametrizations.weight, "original0")


@torch.no_grad()
def data_dependent_init(network: nn.Module, x: Tensor, init_scale: float = 1.0) -> None:
    """Initialise every weight-normalised layer of ``network`` from the data batch ``x``.

    Layers are visited in forward order: each layer's pre-activation ``t = W x`` (bias excluded)
    is measured on the batch, then ``g <- g * init_scale / std(t)`` and ``b <- -mean(t) * init_scale / std(t)``
    (per output unit, population std), and the normalised output is passed on, so later layers are
    initialised on the already-initialised earlier ones. The network is run in whatever mode it is in;
    openai/improved-gan runs this pass with its noise layers on. Works for linear and conv layers.

    Example:
        >>> net = nn.Sequential(weight_norm_linear(5, 4), nn.ReLU(), weight_norm_linear(4, 2))
        >>> x = torch.randn(64, 5)
        >>> data_dependent_init(net, x)
        >>> pre = net[0](x)
        >>> std = pre.std(0, unbiased=False)
        >>> torch.allclose(pre.mean(0), torch.zeros(4), atol=1e-5), torch.allclose(std, torch.ones(4))
        (True, True)
    """

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        reduce_dims = [d for d in range(output.dim()) if d != 1]  # all but the channel/unit dim
        shape = [1, -1] + [1] * (output.dim() - 2)
        pre = output - module.bias.view(shape) if module.bias is not None else output  # t = W x
        mean = pre.mean(dim=reduce_dims)
        inv_std = init_scale / pre.std(dim=reduce_dims, unbiased=False).clamp_min(1e-8)
        g = module.parametrizations.weight.original0  # [out, 1, ...]
        g.mul_(inv_std.view(g.shape))
        if module.bias is not None:
            module.bias.copy_(-mean * inv_std)
        return (pre - mean.view(shape)) * inv_std.view(shape)

    handles = [m.register_forward_hook(hook) for m in network.modules() if is_weight_normed(m)]
    if not handles:
        raise ValueError(f"data_dependent_init: {type(network).__name__} has no weight-normalised layer")
    try:
        network(x)
    finally:
        for handle in handles:
            handle.remove()
