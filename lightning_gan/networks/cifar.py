"""The convolutional CIFAR-10 / SVHN networks of Salimans et al. 2016, section 5.2 / 5.3.

As in openai/improved-gan ``mnist_svhn_cifar10/train_cifar_feature_matching.py`` (and
``train_svhn_feature_matching.py``, the same networks with a 64/128-channel discriminator):

Generator:     z ~ U(0,1)^100 -> Linear 4*4*512 -> BN (shift, no scale) -> ReLU -> reshape [512, 4, 4]
               -> deconv 5x5 /2 256@8x8 -> BN -> ReLU -> deconv 5x5 /2 128@16x16 -> BN -> ReLU
               -> weight-normalised deconv 5x5 /2 3@32x32 -> tanh (pixels in [-1, 1]; the reference scales the
               data as (x - 127.5) / 128).
Discriminator: dropout 0.2 -> 3 x WN conv3x3 96 (the third stride 2) -> dropout 0.5 -> 3 x WN conv3x3 192 (the
               third stride 2) -> dropout 0.5 -> WN conv3x3 192 (no padding) -> WN NIN 192 -> WN NIN 192
               -> global average pool -> WN Linear K (the logits of the K real classes); LeakyReLU(0.2) after
               every convolution. Feature matching (L1 in the reference) uses the pooled features
               (reference: ``disc_layers[-2]``, the ``GlobalPoolLayer``).

Weight norm: the reference's ``nn.weight_norm`` (``WeightNormLayer``) freezes the scale g (``train_g=False``) in
every layer except the last one of each network (``train_g=True``), and the data-dependent initialisation gives
those last layers pre-activations of std 0.1 (``init_stdv=0.1``) instead of 1. Both are reproduced here: the
frozen scales have ``requires_grad=False`` and the last layers carry ``init_scale = 0.1``, which
:func:`lightning_gan.layers.data_dependent_init` honours.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_gan.layers import Bias, weight_norm_conv2d, weight_norm_conv_transpose2d, weight_norm_linear
from lightning_gan.networks.registry import register_net
from lightning_gan.networks.vanilla import check_input_shape

__all__ = ["CIFARDiscriminator", "CIFARGenerator"]

LAST_LAYER_INIT_SCALE = 0.1  # reference: WeightNormLayer(..., train_g=True, init_stdv=0.1) on D's and G's last layer
WEIGHT_STD = 0.05  # reference: W=Normal(0.05) in every layer of both networks
BN_EPS = 1e-6  # reference nn.BatchNormLayer: sqrt(1e-6 + var)


def _conv_out(size: int, stride: int, padding: int, kernel: int = 3) -> int:
    return (size + 2 * padding - kernel) // stride + 1


@register_net("cifar_discriminator")
class CIFARDiscriminator(nn.Module):
    """The paper's CIFAR-10 / SVHN discriminator: a weight-normalised 9-layer CNN with dropout.

    It outputs the logits of the K real classes; the fake class has its logit fixed at 0 (see
    :func:`lightning_gan.losses.ssl_discriminator_loss`). Run :func:`lightning_gan.layers.data_dependent_init`
    on a batch of real images before training (``SemiSupervisedGAN`` does, with dropout on as the reference).

    Args:
        num_classes: K, the number of real classes.
        image_shape: shape of one input image (C, H, W).
        channels: widths of the two conv stages; the second is also the width of the last conv, the NIN layers
            and the feature-matching features. CIFAR-10: (96, 192); SVHN: (64, 128).
        input_dropout: dropout probability on the input.
        dropout: dropout probability after each of the two strided stages.

    Example:
        >>> d = CIFARDiscriminator(channels=(8, 16))
        >>> logits, features = d.forward_with_features(torch.rand(4, 3, 32, 32) * 2 - 1)
        >>> logits.shape, features.shape
        (torch.Size([4, 10]), torch.Size([4, 16]))
        >>> [p.requires_grad for n, p in d.named_parameters() if n.endswith("original0")][-2:]  # only the last g
        [False, True]
    """

    def __init__(
        self,
        num_classes: int = 10,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        channels: tuple[int, int] = (96, 192),  # reference CIFAR-10 D; SVHN: (64, 128)
        input_dropout: float = 0.2,  # reference: DropoutLayer(p=0.2) on the input
        dropout: float = 0.5,  # reference: DropoutLayer(p=0.5) after each strided stage
    ) -> None:
        super().__init__()
        if len(image_shape) != 3:
            raise ValueError(f"CIFARDiscriminator: image_shape must be (C, H, W), got {tuple(image_shape)}")
        if len(channels) != 2 or min(channels) < 1:
            raise ValueError(f"CIFARDiscriminator: channels must be two positive widths, got {tuple(channels)}")
        for name, p in (("input_dropout", input_dropout), ("dropout", dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"CIFARDiscriminator: {name} must be in [0, 1), got {p}")
        self.num_classes = num_classes
        self.image_shape = tuple(int(s) for s in image_shape)
        self.channels = tuple(int(c) for c in channels)
        self.batch_dependent = False  # dropout and every layer act per example
        in_ch, (h, w) = self.image_shape[0], self.image_shape[1:]
        for stride, padding in ((2, 1), (2, 1), (1, 0)):  # the two strided convs and the unpadded one
            h, w = _conv_out(h, stride, padding), _conv_out(w, stride, padding)
        if h < 1 or w < 1:
            raise ValueError(
                f"CIFARDiscriminator: images of shape {self.image_shape} are too small for two stride-2 convs and "
                "an unpadded 3x3 conv (need H, W >= 9)"
            )
        c1, c2 = self.channels

        def conv(c_in: int, c_out: int, *, stride: int = 1, padding: int = 1, kernel: int = 3) -> list[nn.Module]:
            # reference: nn.weight_norm(Conv2DDNNLayer(..., W=Normal(0.05), nonlinearity=nn.lrelu)), train_g=False
            layer = weight_norm_conv2d(
                c_in, c_out, kernel, stride=stride, padding=padding, weight_std=WEIGHT_STD, train_scale=False
            )
            return [layer, nn.LeakyReLU(0.2)]  # reference nn.lrelu: max(x, 0.2 x)

        self.hidden = nn.Sequential(
            nn.Dropout(input_dropout),
            *conv(in_ch, c1),
            *conv(c1, c1),
            *conv(c1, c1, stride=2),  # 32 -> 16
            nn.Dropout(dropout),
            *conv(c1, c2),
            *conv(c2, c2),
            *conv(c2, c2, stride=2),  # 16 -> 8
            nn.Dropout(dropout),
            *conv(c2, c2, padding=0),  # 8 -> 6
            *conv(c2, c2, padding=0, kernel=1),  # NIN: a 1x1 conv
            *conv(c2, c2, padding=0, kernel=1),
            nn.AdaptiveAvgPool2d(1),  # reference: GlobalPoolLayer (mean over positions)
            nn.Flatten(1),  # [B, c2]: the feature-matching features
        )
        # reference: nn.weight_norm(DenseLayer(num_units=10, W=Normal(0.05)), train_g=True, init_stdv=0.1)
        self.head = weight_norm_linear(
            c2, num_classes, weight_std=WEIGHT_STD, train_scale=True, init_scale=LAST_LAYER_INIT_SCALE
        )

    def features(self, x: Tensor) -> Tensor:
        """Globally average-pooled output of the last NIN layer: the feature-matching layer, [B, channels[1]]."""
        check_input_shape(x, self.image_shape, type(self).__name__)
        return self.hidden(x)  # [B, c2]

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits and features from a single forward pass."""
        features = self.features(x)
        return self.head(features), features  # [B, K], [B, c2]

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # [B, K]


@register_net("cifar_generator")
class CIFARGenerator(nn.Module):
    """The paper's CIFAR-10 / SVHN generator: uniform noise, a BN+ReLU projection, three 5x5 stride-2 deconvs, tanh.

    Batch norm has a learned shift and no scale (reference ``nn.batch_norm(..., g=None)``); the last deconv is
    weight-normalised with a trained scale and ``init_scale = 0.1``. The reference also runs the data-dependent
    initialisation on G (on one noise batch, BN with batch statistics): call
    ``data_dependent_init(generator, generator.sample_noise(100))`` to do the same.

    Args:
        noise_dim: size of z, drawn from U(0, 1) by :meth:`sample_noise`.
        image_shape: shape of one generated image (C, H, W); H and W must be multiples of 8 (the projection is
            H/8 x W/8, doubled three times).
        channels: widths of the projection and the two hidden deconvs (reference: 512, 256, 128).

    Example:
        >>> g = CIFARGenerator(channels=(32, 16, 8))
        >>> x = g(g.sample_noise(4))
        >>> x.shape, g.value_range, bool(x.abs().max() < 1)
        (torch.Size([4, 3, 32, 32]), (-1.0, 1.0), True)
    """

    def __init__(
        self,
        noise_dim: int = 100,  # reference: z in R^100
        image_shape: tuple[int, int, int] = (3, 32, 32),
        channels: tuple[int, int, int] = (512, 256, 128),  # reference: 4*4*512 -> 256@8x8 -> 128@16x16
    ) -> None:
        super().__init__()
        if len(image_shape) != 3 or image_shape[1] % 8 or image_shape[2] % 8 or min(image_shape) < 1:
            raise ValueError(
                f"CIFARGenerator: image_shape must be (C, H, W) with H and W positive multiples of 8, "
                f"got {tuple(image_shape)}"
            )
        if len(channels) != 3 or min(channels) < 1:
            raise ValueError(f"CIFARGenerator: channels must be three positive widths, got {tuple(channels)}")
        self.noise_dim = noise_dim
        self.image_shape = tuple(int(s) for s in image_shape)
        self.value_range = (-1.0, 1.0)  # tanh output
        self.channels = tuple(int(c) for c in channels)
        c0, c1, c2 = self.channels
        self._base = (c0, self.image_shape[1] // 8, self.image_shape[2] // 8)  # [512, 4, 4]
        units = c0 * self._base[1] * self._base[2]

        linear = nn.Linear(noise_dim, units, bias=False)  # BN's shift is the bias
        nn.init.normal_(linear.weight, std=WEIGHT_STD)  # reference: DenseLayer(W=Normal(0.05))
        # reference nn.batch_norm on the dense output: statistics per unit (all 4*4*512), before the reshape
        self.project = nn.Sequential(linear, nn.BatchNorm1d(units, eps=BN_EPS, affine=False), Bias(units), nn.ReLU())

        def deconv(c_in: int, c_out: int) -> list[nn.Module]:
            # reference: nn.batch_norm(Deconv2DLayer(..., (5,5), stride 2, W=Normal(0.05), nonlinearity=relu), g=None);
            # Theano's border_mode='half' transposed conv doubles the size: torch's padding 2, output_padding 1
            layer = nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1, bias=False)
            nn.init.normal_(layer.weight, std=WEIGHT_STD)
            return [layer, nn.BatchNorm2d(c_out, eps=BN_EPS, affine=False), Bias(c_out), nn.ReLU()]

        self.hidden = nn.Sequential(*deconv(c0, c1), *deconv(c1, c2))  # 4 -> 8 -> 16
        # reference: nn.weight_norm(Deconv2DLayer(..., 3@32x32, nonlinearity=tanh), train_g=True, init_stdv=0.1)
        self.out = weight_norm_conv_transpose2d(
            c2,
            self.image_shape[0],
            5,
            stride=2,
            padding=2,
            output_padding=1,
            weight_std=WEIGHT_STD,
            train_scale=True,
            init_scale=LAST_LAYER_INIT_SCALE,
        )

    def sample_noise(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """Draw z ~ U(0, 1)^noise_dim, as the reference code does."""
        return torch.rand(batch_size, self.noise_dim, device=device)

    def forward(self, z: Tensor) -> Tensor:
        h = self.project(z).view(-1, *self._base)  # [B, 512, 4, 4]
        return torch.tanh(self.out(self.hidden(h)))  # [B, C, H, W], in (-1, 1)
