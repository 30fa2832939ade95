"""The fully connected MNIST networks of Salimans et al. 2016, section 5.1.

As in openai/improved-gan ``train_mnist_feature_matching.py``:

Generator:     z ~ U(0,1)^100 -> Linear 500 -> BN (shift, no scale) -> softplus -> Linear 500 -> BN -> softplus
               -> weight-normalised Linear 784 -> sigmoid (pixels in [0, 1]).
Discriminator: noise 0.3 -> WN Linear 1000 -> ReLU -> noise 0.5 -> WN Linear 500 -> ReLU -> noise 0.5
               -> 3 x (WN Linear 250 -> ReLU -> noise 0.5) -> WN Linear K (logits of the K real classes).
Feature matching uses the output of the last 250-unit ReLU (reference: ``layers[-3]``), taken before its noise.

Variants for the techniques of section 3: ``MNISTGenerator(norm="virtual_batch")`` replaces batch norm with
virtual batch norm, and ``MNISTDiscriminator(minibatch_kernels=100)`` inserts minibatch discrimination after the
last hidden layer (as openai/improved-gan ``train_cifar_minibatch_discrimination.py`` does before its output layer).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lightning_gan.layers import (
    Bias,
    GaussianNoise,
    MinibatchDiscrimination,
    Softplus,
    VirtualBatchNorm1d,
    weight_norm_linear,
)
from lightning_gan.networks.registry import register_net


def _check_images(x: Tensor, image_shape: tuple[int, ...], network: str) -> None:
    if tuple(x.shape[1:]) != image_shape and tuple(x.shape[1:]) != (math.prod(image_shape),):
        raise ValueError(
            f"{network} expects images of shape [B, {', '.join(map(str, image_shape))}] "
            f"(or flattened [B, {math.prod(image_shape)}]), got {list(x.shape)}; "
            f"set image_shape to match the data module"
        )


@register_net("mnist_generator")
class MNISTGenerator(nn.Module):
    """The paper's MNIST generator: uniform noise, two BN+softplus layers, weight-normalised sigmoid output.

    Args:
        noise_dim: size of z, drawn from U(0, 1) by :meth:`sample_noise`.
        hidden_dim: width of the two hidden layers.
        image_shape: shape of one generated image (C, H, W).
        norm: ``"batch"`` (the paper's MNIST generator: batch norm with a shift and no scale) or
            ``"virtual_batch"`` (virtual batch norm with a learned scale and shift, section 3.5).
        ref_batch_size: with ``norm="virtual_batch"``, the size of the reference noise batch. It is drawn once,
            when the generator is built, kept in the buffer ``ref_noise`` (so it is checkpointed) and run through
            the current weights in front of every batch, so each VBN layer sees the current reference statistics.

    Example:
        >>> g = MNISTGenerator()
        >>> g(g.sample_noise(4)).shape
        torch.Size([4, 1, 28, 28])
        >>> vbn = MNISTGenerator(norm="virtual_batch", ref_batch_size=8)
        >>> vbn(vbn.sample_noise(4)).shape, vbn.ref_noise.shape
        (torch.Size([4, 1, 28, 28]), torch.Size([8, 100]))
    """

    def __init__(
        self,
        noise_dim: int = 100,  # reference: z in R^100
        hidden_dim: int = 500,  # reference: two layers of 500 units
        image_shape: tuple[int, int, int] = (1, 28, 28),
        norm: str = "batch",  # reference MNIST code: batch norm
        ref_batch_size: int = 100,  # virtual batch norm only: the training batch size, as in the paper's reference
    ) -> None:
        super().__init__()
        if norm not in ("batch", "virtual_batch"):
            raise ValueError(f"MNISTGenerator: norm must be 'batch' or 'virtual_batch', got {norm!r}")
        self.noise_dim = noise_dim
        self.image_shape = tuple(image_shape)
        self.value_range = (0.0, 1.0)  # sigmoid output
        self.norm = norm
        out_dim = math.prod(self.image_shape)
        layers: list[nn.Module] = []
        for in_dim in (noise_dim, hidden_dim):
            linear = nn.Linear(in_dim, hidden_dim, bias=False)  # BN's shift is the bias
            nn.init.xavier_uniform_(linear.weight)  # Lasagne's default GlorotUniform
            if norm == "batch":
                # improved-gan nn.batch_norm(g=None): eps 1e-6, running averages with momentum 0.1, no scale
                layers += [linear, nn.BatchNorm1d(hidden_dim, eps=1e-6, affine=False), Bias(hidden_dim), Softplus()]
            else:
                layers += [linear, VirtualBatchNorm1d(hidden_dim, ref_size=ref_batch_size, eps=1e-6), Softplus()]
        self.hidden = nn.Sequential(*layers)
        if norm == "virtual_batch":
            self.register_buffer("ref_noise", self.sample_noise(ref_batch_size))  # [B_ref, noise_dim], fixed
        self.out = weight_norm_linear(hidden_dim, out_dim, train_scale=True)  # reference: nn.l2normalize(Dense 784)
        nn.init.xavier_uniform_(self.out.parametrizations.weight.original1)

    def sample_noise(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """Draw z ~ U(0, 1)^noise_dim, as the reference code does."""
        return torch.rand(batch_size, self.noise_dim, device=device)

    def forward(self, z: Tensor) -> Tensor:
        if self.norm == "virtual_batch":
            # the reference rows go first through every layer (Linear and Softplus are row-wise, so this is exact);
            # each VBN layer normalises them with their own statistics and the examples with the combined ones
            n_ref = len(self.ref_noise)
            h = self.hidden(torch.cat([self.ref_noise, z]))[n_ref:]  # [B, hidden_dim]
        else:
            h = self.hidden(z)  # [B, hidden_dim]
        x = torch.sigmoid(self.out(h))  # [B, C*H*W]
        return x.view(-1, *self.image_shape)  # [B, C, H, W]


@register_net("mnist_discriminator")
class MNISTDiscriminator(nn.Module):
    """The paper's MNIST discriminator: a weight-normalised MLP with Gaussian noise before every layer.

    It outputs the logits of the K real classes; the fake class has its logit fixed at 0 (see
    :func:`lightning_gan.losses.ssl_discriminator_loss`). Run :func:`lightning_gan.layers.data_dependent_init`
    on a batch of real images before training.

    Args:
        num_classes: K, the number of real classes.
        image_shape: shape of one input image (C, H, W); flattened inputs are accepted too.
        hidden_dims: widths of the hidden layers; the last one is the feature-matching layer.
        input_noise: std of the Gaussian noise on the input.
        hidden_noise: std of the Gaussian noise on every hidden layer's output.
        weight_std: std of the initial direction vectors v.
        minibatch_kernels: B of :class:`~lightning_gan.layers.MinibatchDiscrimination` inserted after the last
            hidden layer (0: none, the paper's feature-matching MNIST discriminator). With it the network sets
            ``batch_dependent = True``; ``features`` stays the last hidden layer, before the minibatch features.
        minibatch_kernel_dim: C, the dimension of each minibatch kernel.

    Example:
        >>> d = MNISTDiscriminator()
        >>> logits, features = d.forward_with_features(torch.rand(4, 1, 28, 28))
        >>> logits.shape, features.shape
        (torch.Size([4, 10]), torch.Size([4, 250]))
    """

    def __init__(
        self,
        num_classes: int = 10,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        hidden_dims: tuple[int, ...] = (1000, 500, 250, 250, 250),  # reference MNIST D
        input_noise: float = 0.3,  # reference: GaussianNoiseLayer(sigma=0.3) on the input
        hidden_noise: float = 0.5,  # reference: sigma=0.5 after every hidden layer
        weight_std: float = 0.1,  # reference: theta ~ N(0, 0.1)
        minibatch_kernels: int = 0,  # reference minibatch-discrimination code: 100
        minibatch_kernel_dim: int = 5,  # reference: dim_per_kernel=5
    ) -> None:
        super().__init__()
        if minibatch_kernels < 0 or minibatch_kernel_dim < 1:
            raise ValueError(
                f"MNISTDiscriminator: need minibatch_kernels >= 0 and minibatch_kernel_dim >= 1, "
                f"got {minibatch_kernels} and {minibatch_kernel_dim}"
            )
        self.num_classes = num_classes
        self.batch_dependent = minibatch_kernels > 0  # each output depends on the rest of the batch
        self.image_shape = tuple(image_shape)
        dims = [math.prod(self.image_shape), *hidden_dims]
        blocks: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            noise = GaussianNoise(input_noise if i == 0 else hidden_noise)
            blocks.append(
                nn.Sequential(
                    noise, weight_norm_linear(d_in, d_out, weight_std=weight_std, train_scale=False), nn.ReLU()
                )
            )
        self.hidden = nn.Sequential(*blocks)  # output: the feature-matching features
        head: list[nn.Module] = []
        if minibatch_kernels:
            head.append(MinibatchDiscrimination(dims[-1], minibatch_kernels, minibatch_kernel_dim))  # [B, F + B_mbd]
        self.head = nn.Sequential(
            *head,
            GaussianNoise(hidden_noise),
            weight_norm_linear(  # only trainable g
                dims[-1] + minibatch_kernels, num_classes, weight_std=weight_std, train_scale=True
            ),
        )

    def features(self, x: Tensor) -> Tensor:
        """Output of the last hidden layer (after ReLU, before its noise): the feature-matching layer."""
        _check_images(x, self.image_shape, type(self).__name__)
        return self.hidden(x.flatten(1))  # [B, hidden_dims[-1]]

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits and features from a single forward pass."""
        features = self.features(x)
        return self.head(features), features  # [B, K], [B, F]

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # [B, K]
