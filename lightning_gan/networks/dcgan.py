"""DCGAN generator and discriminator for 28x28 and 32x32 images (Radford et al. 2016).

The DCGAN rules: strided (transposed) convolutions instead of pooling, batch norm in both players except the
generator's output and the discriminator's input, no fully connected hidden layers, ReLU in the generator with a
tanh output, LeakyReLU(0.2) in the discriminator. Spatial sizes, for ``base_channels = c``:

32x32 G: z [100] -> ConvT 4x4 -> [4c, 4, 4] -> [2c, 8, 8] -> [c, 16, 16] -> [C, 32, 32]
28x28 G: z [100] -> ConvT 7x7 -> [2c, 7, 7] -> [c, 14, 14] -> [C, 28, 28]
D mirrors G: stride-2 4x4 convolutions down to 4x4 (or 7x7), then one convolution over the whole map to 1 output.

For WGAN-GP use ``norm=None`` in the critic (batch norm makes each critic output depend on the batch, which the
per-sample gradient penalty assumes it does not); ``spectral_norm=True`` for SN-GAN.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_gan.layers import spectral_normalize
from lightning_gan.networks.registry import register_net
from lightning_gan.networks.vanilla import check_input_shape, output_activation

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "dcgan_levels"]


def dcgan_levels(image_shape: tuple[int, ...], network: str) -> tuple[int, int]:
    """``(start_size, upsamplings)``: halve the image side while it stays even and >= 8 (32 -> 4, 28 -> 7).

    Example:
        >>> dcgan_levels((3, 32, 32), "G"), dcgan_levels((1, 28, 28), "G")
        ((4, 3), (7, 2))
    """
    if len(image_shape) != 3 or image_shape[1] != image_shape[2] or image_shape[1] < 8:
        raise ValueError(f"{network} needs square images [C, H, H] with H >= 8, got image_shape={tuple(image_shape)}")
    size, levels = image_shape[1], 0
    while size % 2 == 0 and size >= 8:
        size, levels = size // 2, levels + 1
    return size, levels


def _weights_init(module: nn.Module) -> None:
    """DCGAN init: conv weights ~ N(0, 0.02), batch-norm scale ~ N(1, 0.02), shift 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


@register_net("dcgan_generator")
class DCGANGenerator(nn.Module):
    """DCGAN generator: a transposed convolution from z to a 4x4 (or 7x7) map, then stride-2 upsampling.

    Args:
        noise_dim: size of z ~ N(0, 1).
        image_shape: (C, H, H) of the output; H = 4 * 2^k or 7 * 2^k (28 and 32 included).
        base_channels: channels of the last hidden layer; each layer towards z doubles them.
        output: ``"tanh"`` (data in [-1, 1], the DCGAN choice) or ``"sigmoid"`` ([0, 1]).

    Example:
        >>> g = DCGANGenerator(image_shape=(3, 32, 32), base_channels=8)
        >>> g(g.sample_noise(2)).shape
        torch.Size([2, 3, 32, 32])
    """

    def __init__(
        self,
        noise_dim: int = 100,  # DCGAN: z in R^100
        image_shape: tuple[int, int, int] = (1, 28, 28),
        base_channels: int = 64,  # DCGAN: 64 filters at the image-side layer
        output: str = "tanh",  # DCGAN: tanh output
    ) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        self.image_shape = tuple(image_shape)
        start, levels = dcgan_levels(self.image_shape, type(self).__name__)
        activation, self.value_range = output_activation(output, type(self).__name__)
        channels = [base_channels * 2 ** (levels - 1 - i) for i in range(levels)]  # e.g. [4c, 2c, c]
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(noise_dim, channels[0], start, 1, 0, bias=False),  # [B, 4c, 4, 4]
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(),
        ]
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        layers += [nn.ConvTranspose2d(channels[-1], self.image_shape[0], 4, 2, 1), activation]  # no BN on the output
        self.net = nn.Sequential(*layers)
        self.apply(_weights_init)

    def sample_noise(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """Draw z ~ N(0, 1)^noise_dim."""
        return torch.randn(batch_size, self.noise_dim, device=device)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.view(len(z), self.noise_dim, 1, 1))  # [B, C, H, W]


@register_net("dcgan_discriminator")
class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator (or critic): stride-2 convolutions, LeakyReLU(0.2), one raw output per image.

    Args:
        image_shape: (C, H, H) of the input; H = 4 * 2^k or 7 * 2^k.
        base_channels: channels of the first convolution; each following one doubles them.
        norm: ``"batch"`` (DCGAN) or ``None`` (no normalisation: WGAN-GP critics, SN-GAN).
        spectral_norm: spectral normalisation of every convolution (Miyato et al. 2018).

    Example:
        >>> DCGANDiscriminator(base_channels=8)(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2])
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        base_channels: int = 64,  # DCGAN: 64 filters in the first layer
        norm: str | None = "batch",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        if norm not in ("batch", None):
            raise ValueError(f"DCGANDiscriminator: norm must be 'batch' or None, got {norm!r}")
        self.image_shape = tuple(image_shape)
        start, levels = dcgan_levels(self.image_shape, type(self).__name__)
        channels = [base_channels * 2**i for i in range(levels)]  # e.g. [c, 2c, 4c]
        layers: list[nn.Module] = []
        for i, c_out in enumerate(channels):
            c_in = self.image_shape[0] if i == 0 else channels[i - 1]
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=i == 0 or norm is None))
            if i > 0 and norm == "batch":  # DCGAN: no batch norm on the input layer
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
        layers.append(nn.Conv2d(channels[-1], 1, start, 1, 0))  # [B, 1, 1, 1]
        self.net = nn.Sequential(*layers)
        self.apply(_weights_init)
        if spectral_norm:
            spectral_normalize(self)

    def forward(self, x: Tensor) -> Tensor:
        check_input_shape(x, self.image_shape, type(self).__name__)
        return self.net(x).flatten()  # [B]
