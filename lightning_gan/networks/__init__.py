"""Generator and discriminator networks: plain ``nn.Module``s, importing only torch.

Networks are registered by name (as stylegan2's ``register_metric`` and timm's ``register_model``)
so tests and scripts can iterate over all of them; configs pick them by ``class_path``.

Example:
    >>> sorted(NETWORKS)[:2]
    ['cifar_discriminator', 'cifar_generator']
    >>> build_net("mnist_generator", noise_dim=10)(torch.rand(2, 10)).shape
    torch.Size([2, 1, 28, 28])
"""

from __future__ import annotations

import torch  # noqa: F401  (used by the module doctest)

from lightning_gan.networks.cifar import CIFARDiscriminator, CIFARGenerator
from lightning_gan.networks.dcgan import DCGANDiscriminator, DCGANGenerator
from lightning_gan.networks.mlp import MNISTDiscriminator, MNISTGenerator
from lightning_gan.networks.registry import NETWORKS, build_net, register_net
from lightning_gan.networks.vanilla import VanillaDiscriminator, VanillaGenerator

__all__ = [
    "NETWORKS",
    "CIFARDiscriminator",
    "CIFARGenerator",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MNISTDiscriminator",
    "MNISTGenerator",
    "VanillaDiscriminator",
    "VanillaGenerator",
    "build_net",
    "register_net",
]
