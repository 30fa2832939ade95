"""The vanilla fully connected GAN of the brief (chapter 002; Goodfellow et al. 2014).

Generator:     z ~ N(0, 1)^100 -> Linear 500 -> LeakyReLU -> Linear 500 -> LeakyReLU -> Linear 784 -> tanh
               -> reshape [1, 28, 28].
Discriminator: flatten 784 -> Linear 500 -> LeakyReLU -> Linear 500 -> LeakyReLU -> Linear 1 (a logit; the
               sigmoid of the brief lives in the loss, see :mod:`lightning_gan.losses`).

The brief fixes the layer sizes only; LeakyReLU(0.2) is the usual choice for both players. ``output_shape=(2,)``
and ``output=None`` turn the same networks into the 2-D toy models of the mixture-of-Gaussians tests.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lightning_gan.layers import spectral_normalize
from lightning_gan.networks.registry import register_net

__all__ = ["OUTPUT_ACTIVATIONS", "VanillaDiscriminator", "VanillaGenerator", "check_input_shape"]

#: generator output activations and the value range each one produces (``None``: unbounded).
OUTPUT_ACTIVATIONS: dict[str | None, tuple[type[nn.Module], tuple[float, float] | None]] = {
    "tanh": (nn.Tanh, (-1.0, 1.0)),
    "sigmoid": (nn.Sigmoid, (0.0, 1.0)),
    None: (nn.Identity, None),
}


def output_activation(output: str | None, network: str) -> tuple[nn.Module, tuple[float, float] | None]:
    """The activation module for ``output`` and its value range; a clear error for an unknown name."""
    if output not in OUTPUT_ACTIVATIONS:
        raise ValueError(f"{network}: output must be one of {list(OUTPUT_ACTIVATIONS)}, got {output!r}")
    cls, value_range = OUTPUT_ACTIVATIONS[output]
    return cls(), value_range


def check_input_shape(x: Tensor, shape: tuple[int, ...], network: str) -> None:
    """Raise a ValueError naming the expected and the actual shape unless ``x`` is ``[B, *shape]``."""
    if tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(
            f"{network} expects inputs of shape [B, {', '.join(map(str, shape))}], got {list(x.shape)}; "
            "set its image_shape to match the data module"
        )


def _mlp(dims: list[int], negative_slope: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(d_in, d_out), nn.LeakyReLU(negative_slope)]
    return layers


@register_net("vanilla_generator")
class VanillaGenerator(nn.Module):
    """Fully connected generator: Gaussian noise, LeakyReLU hidden layers, a bounded output.

    Args:
        noise_dim: size of z ~ N(0, 1).
        hidden_dims: widths of the hidden layers (the brief: 500, 500).
        image_shape: shape of one output sample, e.g. (1, 28, 28), or (2,) for 2-D toy data.
        output: ``"tanh"`` (data in [-1, 1]), ``"sigmoid"`` ([0, 1]) or ``None`` (unbounded, for toy data).
        negative_slope: slope of the LeakyReLU for negative inputs.

    Example:
        >>> g = VanillaGenerator()
        >>> g(g.sample_noise(4)).shape, g.value_range
        (torch.Size([4, 1, 28, 28]), (-1.0, 1.0))
    """

    def __init__(
        self,
        noise_dim: int = 100,  # brief 002: input [batch, 100]
        hidden_dims: tuple[int, ...] = (500, 500),  # brief 002: two dense layers of 500
        image_shape: tuple[int, ...] = (1, 28, 28),  # brief 002: 784 reshaped to 28x28
        output: str | None = "tanh",
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        self.image_shape = tuple(image_shape)
        activation, self.value_range = output_activation(output, type(self).__name__)
        dims = [noise_dim, *hidden_dims]
        self.net = nn.Sequential(
            *_mlp(dims, negative_slope), nn.Linear(dims[-1], math.prod(self.image_shape)), activation
        )

    def sample_noise(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """Draw z ~ N(0, 1)^noise_dim."""
        return torch.randn(batch_size, self.noise_dim, device=device)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(-1, *self.image_shape)  # [B, *image_shape]


@register_net("vanilla_discriminator")
class VanillaDiscriminator(nn.Module):
    """Fully connected discriminator (or WGAN critic): one raw output per sample, no sigmoid.

    Args:
        image_shape: shape of one input sample, e.g. (1, 28, 28), or (2,) for 2-D toy data.
        hidden_dims: widths of the hidden layers (the brief: 500, 500).
        negative_slope: slope of the LeakyReLU for negative inputs.
        spectral_norm: put every linear layer under spectral normalisation (Miyato et al. 2018).

    Example:
        >>> VanillaDiscriminator()(torch.rand(4, 1, 28, 28)).shape
        torch.Size([4])
    """

    def __init__(
        self,
        image_shape: tuple[int, ...] = (1, 28, 28),
        hidden_dims: tuple[int, ...] = (500, 500),  # brief 002: two dense layers of 500
        negative_slope: float = 0.2,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        dims = [math.prod(self.image_shape), *hidden_dims]
        self.net = nn.Sequential(*_mlp(dims, negative_slope), nn.Linear(dims[-1], 1))
        if spectral_norm:
            spectral_normalize(self)

    def forward(self, x: Tensor) -> Tensor:
        check_input_shape(x, self.image_shape, type(self).__name__)
        return self.net(x.flatten(1)).squeeze(1)  # [B]
