"""lightning_gan: PyTorch Lightning GANs with a semi-supervised focus.

The K+1-class semi-supervised GAN of Salimans et al. 2016, "Improved Techniques for Training GANs",
with its networks, losses, data modules and a LightningCLI entry point (``python -m lightning_gan``).
"""

__version__ = "0.1.0"
