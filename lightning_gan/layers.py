"""Small layers the paper's networks need and torch does not ship.

- :class:`GaussianNoise`: additive noise in the discriminator (openai/improved-gan ``GaussianNoiseLayer``).
- :class:`Bias`: a learned shift, for batch norm with a shift but no scale (the MNIST and CIFAR generators).
- :class:`Softplus`: ``nn.Softplus()`` with a forward that is about twice as fast on the CPU, where torch's ``log1p``
  is not vectorised (the MNIST generator).
- :func:`weight_normalize`: any linear / conv / transposed-conv layer under
  ``torch.nn.utils.parametrizations.weight_norm`` (Salimans & Kingma 2016), initialised as in the reference code;
  :func:`weight_norm_linear`, :func:`weight_norm_conv2d` and :func:`weight_norm_conv_transpose2d` build and wrap one.
- :func:`data_dependent_init`: the data-dependent initialisation of weight-normalised layers
  (Salimans & Kingma 2016, section 3): each layer's pre-activations on an init batch get mean 0
  and standard deviation 1 per unit (or a layer's own ``init_scale``). Hand-written: torch has weight norm but
  not this init.
- :class:`MinibatchDiscrimination`: minibatch features (Salimans et al. 2016, section 3.2).
- :class:`VirtualBatchNorm1d` / :class:`VirtualBatchNorm2d`: virtual batch normalisation (section 3.5).
- :func:`spectral_normalize`: ``torch.nn.utils.parametrizations.spectral_norm`` on every linear and
  convolution layer of a network (Miyato et al. 2018).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

__all__ = [
    "Bias",
    "GaussianNoise",
    "MinibatchDiscrimination",
    "Softplus",
    "VirtualBatchNorm1d",
    "VirtualBatchNorm2d",
    "data_dependent_init",
    "is_weight_normed",
    "spectral_normalize",
    "weight_norm_conv2d",
    "weight_norm_conv_transpose2d",
    "weight_norm_linear",
    "weight_normalize",
]


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
        # x + sigma * randn_like(x) bit for bit, in one allocation and two passes instead of three
        return torch.empty_like(x).normal_(0.0, self.sigma).add_(x)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class Bias(nn.Module):
    """A learned shift per feature (dim 1, as batch norm), initialised at zero.

    Works on ``[N, C]`` and on ``[N, C, H, W]`` inputs alike: the shift of channel c is added at every position.

    Example:
        >>> Bias(3)(torch.zeros(2, 3)).shape
        torch.Size([2, 3])
        >>> b = Bias(2)
        >>> b.bias.data = torch.tensor([1.0, -1.0])
        >>> b(torch.zeros(1, 2, 3, 3))[0, :, 0, 0].tolist()
        [1.0, -1.0]
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bias.view(-1, *([1] * (x.dim() - 2)))  # [C] -> [C, 1, ...]: broadcast over positions


class _CPUSoftplus(torch.autograd.Function):
    """softplus(x) = max(x, 0) + log1p(exp(-|x|)), with log1p from the vectorised ``log`` (Kahan's trick).

    Hand-written for speed only: torch's CPU ``softplus`` (and ``log1p``, ``logaddexp``, ``logsigmoid``) runs about
    10 ns per element, scalar code, against 1-2 ns for ``exp`` and ``log``. ``log1p(e) = log(u) * e / (u - 1)`` with
    ``u = 1 + e`` (and ``e`` where ``u`` rounds to 1) is accurate to a few ulp (Goldberg 1991, theorem 4). The
    backward is torch's own ``softplus_backward``, so gradients are torch's.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        e = torch.exp(-x.abs())  # in (0, 1]
        u = e + 1
        log1p = torch.log(u).mul_(e).div_(u - 1)  # NaN where u == 1, replaced below
        out = torch.where(u == 1, e, log1p).add_(x.clamp_min(0))
        return torch.where(x > 20, x, out)  # torch's threshold: x itself above 20

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return torch.ops.aten.softplus_backward(grad, x, 1.0, 20.0)


class Softplus(nn.Module):
    """``nn.Softplus()`` (beta 1, threshold 20), faster on the CPU; elsewhere it is ``F.softplus``.

    Agrees with ``F.softplus`` to a few float ulp (for ``x > 20`` both return ``x``), and its gradient is torch's.

    Example:
        >>> x = torch.linspace(-30, 30, 13)
        >>> torch.allclose(Softplus()(x), nn.functional.softplus(x), rtol=1e-6, atol=0)
        True
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):  # bf16 autocast, say
            return nn.functional.softplus(x)
        return _CPUSoftplus.apply(x)


def weight_normalize(
    layer: nn.Module,
    *,
    weight_std: float = 0.05,  # openai/improved-gan WeightNormLayer / nn.DenseLayer: v ~ N(0, 0.05)
    train_scale: bool = True,
    init_scale: float | None = None,
) -> nn.Module:
    """Put ``layer`` (``nn.Linear``, ``nn.Conv*d`` or ``nn.ConvTranspose*d``) under weight norm, initialised.

    W = g v / ||v|| per output unit: ``dim=0`` for linear and conv weights ``[out, in, ...]``, ``dim=1`` for
    transposed convs, whose weights are ``[in, out, ...]`` (openai/improved-gan ``WeightNormLayer`` sums over axes
    (0, 2, 3) of its ``Deconv2DLayer`` weights for the same reason). ``v ~ N(0, weight_std^2)``, ``g = 1``, bias 0;
    :func:`data_dependent_init` then sets g and bias.

    Args:
        layer: the layer to normalise, in place; returned.
        weight_std: std of the initial directions v.
        train_scale: whether g is trained. A frozen scale stays a parameter with ``requires_grad=False``, so it is
            checkpointed and averaged like the others, but no optimizer sees it (the reference's ``train_g=False``).
        init_scale: this layer's target std of its pre-activations in :func:`data_dependent_init` (the reference's
            ``init_stdv``), stored as ``layer.init_scale``; ``None``: the scale passed to that function.

    Example:
        >>> deconv = weight_normalize(nn.ConvTranspose2d(4, 3, 5), init_scale=0.1)
        >>> deconv.parametrizations.weight.original0.shape, deconv.init_scale   # one g per output channel
        (torch.Size([1, 3, 1, 1]), 0.1)
        >>> torch.allclose(deconv.weight.square().sum(dim=(0, 2, 3)), torch.ones(3))
        True
    """
    if not isinstance(layer, (nn.Linear, nn.modules.conv._ConvNd)):
        raise TypeError(f"weight_normalize: expected a linear or convolution layer, got {type(layer).__name__}")
    dim = 1 if isinstance(layer, nn.modules.conv._ConvTransposeNd) else 0  # the output-unit axis of the weight
    nn.init.normal_(layer.weight, std=weight_std)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    weight_norm(layer, name="weight", dim=dim)
    g = layer.parametrizations.weight.original0
    with torch.no_grad():
        g.fill_(1.0)
    g.requires_grad_(train_scale)
    if init_scale is not None:
        if init_scale <= 0:
            raise ValueError(f"weight_normalize: init_scale must be positive, got {init_scale}")
        layer.init_scale = float(init_scale)
    return layer


def weight_norm_linear(
    in_features: int,
    out_features: int,
    *,
    weight_std: float = 0.05,  # openai/improved-gan nn.DenseLayer: theta ~ N(0, 0.05); the MNIST D passes 0.1
    train_scale: bool = True,  # the reference freezes the scale g in all MNIST D layers but the last
    init_scale: float | None = None,
) -> nn.Linear:
    """A weight-normalised linear layer, W = g v / ||v|| row-wise, with the reference initialisation.

    ``v ~ N(0, weight_std^2)``, ``g = 1``, bias 0; :func:`data_dependent_init` then sets g and bias.
    A frozen scale stays a parameter with ``requires_grad=False`` so it is checkpointed and
    averaged like the others, but no optimizer sees it. See :func:`weight_normalize` for ``init_scale``.

    Example:
        >>> layer = weight_norm_linear(4, 3, train_scale=False)
        >>> layer.parametrizations.weight.original0.requires_grad
        False
        >>> torch.allclose(layer.weight.norm(dim=1), torch.ones(3))
        True
    """
    return weight_normalize(
        nn.Linear(in_features, out_features), weight_std=weight_std, train_scale=train_scale, init_scale=init_scale
    )


def weight_norm_conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int = 0,
    weight_std: float = 0.05,  # openai/improved-gan CIFAR/SVHN D: W=Normal(0.05)
    train_scale: bool = True,
    init_scale: float | None = None,
) -> nn.Conv2d:
    """A weight-normalised ``nn.Conv2d`` (one g per output channel), see :func:`weight_normalize`.

    Example:
        >>> conv = weight_norm_conv2d(3, 8, 3, padding=1, train_scale=False)
        >>> conv(torch.zeros(2, 3, 5, 5)).shape, conv.parametrizations.weight.original0.shape
        (torch.Size([2, 8, 5, 5]), torch.Size([8, 1, 1, 1]))
    """
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
    return weight_normalize(conv, weight_std=weight_std, train_scale=train_scale, init_scale=init_scale)


def weight_norm_conv_transpose2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    weight_std: float = 0.05,  # openai/improved-gan CIFAR/SVHN G: W=Normal(0.05)
    train_scale: bool = True,
    init_scale: float | None = None,
) -> nn.ConvTranspose2d:
    """A weight-normalised ``nn.ConvTranspose2d`` (weight ``[in, out, k, k]``, so ``dim=1``: one g per output channel).

    Example:
        >>> deconv = weight_norm_conv_transpose2d(8, 3, 5, stride=2, padding=2, output_padding=1)
        >>> deconv(torch.zeros(2, 8, 16, 16)).shape
        torch.Size([2, 3, 32, 32])
    """
    deconv = nn.ConvTranspose2d(
        in_channels, out_channels, kernel_size, stride=stride, padding=padding, output_padding=output_padding
    )
    return weight_normalize(deconv, weight_std=weight_std, train_scale=train_scale, init_scale=init_scale)


def is_weight_normed(module: nn.Module) -> bool:
    """Whether ``module`` carries a ``weight_norm`` parametrization of its ``weight``."""
    return parametrize.is_parametrized(module, "weight") and hasattr(module.parametrizations.weight, "original0")


@torch.no_grad()
def data_dependent_init(network: nn.Module, x: Tensor, init_scale: float = 1.0) -> None:
    """Initialise every weight-normalised layer of ``network`` from the data batch ``x``.

    Layers are visited in forward order: each layer's pre-activation ``t = W x`` (bias excluded)
    is measured on the batch, then ``g <- g * s / std(t)`` and ``b <- -mean(t) * s / std(t)``
    (per output unit, population std), and the normalised output is passed on, so later layers are
    initialised on the already-initialised earlier ones. The network is run in whatever mode it is in;
    openai/improved-gan runs this pass with its noise layers on. Works for linear, conv and transposed-conv
    layers (statistics per output channel, over the batch and all positions).

    ``s`` is ``init_scale`` unless the layer has its own ``init_scale`` attribute (set by :func:`weight_normalize`),
    as openai/improved-gan's ``WeightNormLayer(init_stdv=...)``: its CIFAR-10 / SVHN code gives the last layers
    of D and G ``init_stdv=0.1`` and all others 1.

    Example:
        >>> net = nn.Sequential(weight_norm_linear(5, 4), nn.ReLU(), weight_norm_linear(4, 2))
        >>> x = torch.randn(64, 5)
        >>> data_dependent_init(net, x)
        >>> pre = net[0](x)
        >>> std = pre.std(0, unbiased=False)
        >>> torch.allclose(pre.mean(0), torch.zeros(4), atol=1e-5), torch.allclose(std, torch.ones(4))
        (True, True)
        >>> net[2].init_scale = 0.1   # a per-layer override, as weight_normalize(..., init_scale=0.1) sets
        >>> data_dependent_init(net, x)
        >>> round(float(net(x).std(0, unbiased=False).mean()), 4)
        0.1
    """

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        reduce_dims = [d for d in range(output.dim()) if d != 1]  # all but the channel/unit dim
        shape = [1, -1] + [1] * (output.dim() - 2)
        pre = output - module.bias.view(shape) if module.bias is not None else output  # t = W x
        mean = pre.mean(dim=reduce_dims)
        scale = getattr(module, "init_scale", init_scale)  # the layer's own target std, else the default
        inv_std = scale / pre.std(dim=reduce_dims, unbiased=False).clamp_min(1e-8)
        g = module.parametrizations.weight.original0  # [out, 1, ...]; [1, out, 1, ...] for transposed convs
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


class MinibatchDiscrimination(nn.Module):
    """Minibatch features (Salimans et al. 2016, section 3.2), concatenated to the input features.

    For features f(x_i) in R^A and a learned tensor T in R^{A x B x C}: M_i = f(x_i) T in R^{B x C},
    c_b(x_i, x_j) = exp(-||M_{i,b} - M_{j,b}||_1), and o(x_i)_b = sum_{j != i} c_b(x_i, x_j) + bias_b.
    The self term c_b(x_i, x_i) = exp(0) = 1 is excluded (openai/improved-gan ``nn.MinibatchLayer`` masks the
    diagonal), so a batch of one gets o = bias. The output is ``cat([f(x), o(x)])``, of width A + B.

    The output of each example depends on the rest of the batch: a network containing this layer sets
    ``batch_dependent = True`` so that training loops run real and fake batches through it separately.

    Args:
        in_features: A, the width of the input features.
        num_kernels: B, the number of minibatch features (reference: 100).
        kernel_dim: C, the dimension of each kernel's projection (reference: 5).

    Example:
        >>> mbd = MinibatchDiscrimination(4, num_kernels=3, kernel_dim=2)
        >>> mbd(torch.zeros(5, 4))[0]   # identical examples: c = 1 for the 4 others, plus bias -1
        tensor([0., 0., 0., 0., 3., 3., 3.], grad_fn=<SelectBackward0>)
    """

    def __init__(self, in_features: int, num_kernels: int = 100, kernel_dim: int = 5) -> None:
        super().__init__()
        self.in_features, self.num_kernels, self.kernel_dim = in_features, num_kernels, kernel_dim
        # openai/improved-gan nn.MinibatchLayer: theta ~ N(0, 0.05), b = -1
        self.T = nn.Parameter(torch.randn(in_features, num_kernels, kernel_dim) * 0.05)  # [A, B, C]
        self.bias = nn.Parameter(torch.full((num_kernels,), -1.0))  # [B]

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)  # [N, A]
        m = torch.einsum("na,abc->nbc", x, self.T)  # [N, B, C]
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(-1)  # [N, N, B]: ||M_i,b - M_j,b||_1
        o = torch.exp(-l1).sum(1) - 1.0 + self.bias  # [N, B]: sum over j != i (self term exp(0) = 1 removed)
        return torch.cat([x, o], dim=1)  # [N, A + B]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_kernels={self.num_kernels}, kernel_dim={self.kernel_dim}"


class _VirtualBatchNorm(nn.Module):
    """Virtual batch normalisation (Salimans et al. 2016, section 3.5), shared code of the 1d and 2d layers.

    The input's first ``ref_size`` rows are the reference batch (propagated through the current parameters
    by the network on every forward), the other rows the examples. Per channel, with the reference
    statistics mu_ref = mean(x_ref) and s_ref = mean(x_ref^2) over the reference rows (and positions):

    - reference rows are normalised with mu_ref and var_ref = s_ref - mu_ref^2, as batch norm would;
    - an example x is normalised with mu = (B mu_ref + mean(x)) / (B + 1) and
      var = (B s_ref + mean(x^2)) / (B + 1) - mu^2, B = ``ref_size`` (mean over positions for 2d),

    then ``y = gamma (x - mu) / sqrt(var + eps) + beta``. No running statistics: training and evaluation
    compute the same function, and every example's output is independent of the other examples.
    """

    _data_dims: int  # spatial dimensions after [N, C]

    def __init__(self, num_features: int, ref_size: int, eps: float = 1e-5) -> None:
        super().__init__()
        if ref_size < 1:
            raise ValueError(f"{type(self).__name__}: ref_size must be >= 1, got {ref_size}")
        self.num_features, self.ref_size, self.eps = num_features, ref_size, eps
        self.weight = nn.Parameter(torch.ones(num_features))  # gamma, the learned scale
        self.bias = nn.Parameter(torch.zeros(num_features))  # beta, the learned shift

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 + self._data_dims:
            raise ValueError(f"{type(self).__name__} expects a {2 + self._data_dims}-d input, got {list(x.shape)}")
        if len(x) < self.ref_size:
            raise ValueError(
                f"{type(self).__name__}: the input must start with the {self.ref_size} reference rows, "
                f"got only {len(x)} rows"
            )
        shape = [1, -1] + [1] * self._data_dims  # broadcast a [C] vector over [N, C, ...]
        pos = tuple(range(2, x.dim()))  # spatial positions
        ref, ex = x[: self.ref_size], x[self.ref_size :]  # [B, C, ...], [N, C, ...]
        ref_mean = ref.mean(dim=(0, *pos))  # [C]
        ref_sq = ref.square().mean(dim=(0, *pos))  # [C]
        ref_out = (ref - ref_mean.view(shape)) * torch.rsqrt(ref_sq - ref_mean.square() + self.eps).view(shape)
        b = float(self.ref_size)
        ex_mean = ex.mean(dim=pos) if pos else ex  # [N, C]
        ex_sq = ex.square().mean(dim=pos) if pos else ex.square()  # [N, C]
        mu = (b * ref_mean + ex_mean) / (b + 1)  # [N, C]
        var = (b * ref_sq + ex_sq) / (b + 1) - mu.square()  # [N, C]
        ex_shape = [*mu.shape] + [1] * self._data_dims
        ex_out = (ex - mu.view(ex_shape)) * torch.rsqrt(var + self.eps).view(ex_shape)
        return torch.cat([ref_out, ex_out]) * self.weight.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, ref_size={self.ref_size}, eps={self.eps}"


class VirtualBatchNorm1d(_VirtualBatchNorm):
    """Virtual batch norm over ``[N, C]`` inputs whose first ``ref_size`` rows are the reference batch.

    Args:
        num_features: C.
        ref_size: B, the number of reference rows at the start of every input.
        eps: added to the variance.

    Example:
        >>> vbn = VirtualBatchNorm1d(1, ref_size=2)
        >>> x = torch.tensor([[-1.0], [1.0], [2.0]])   # reference [-1, 1]; example 2
        >>> out = vbn(x)   # mu = (0 + 2) / 3, E[x^2] = (1 + 1 + 4) / 3, var = 2 - 4/9
        >>> round(float(out[2]), 4) == round((2 - 2 / 3) / (2 - 4 / 9 + 1e-5) ** 0.5, 4)
        True
    """

    _data_dims = 0


class VirtualBatchNorm2d(_VirtualBatchNorm):
    """Virtual batch norm over ``[N, C, H, W]`` inputs whose first ``ref_size`` rows are the reference batch.

    Statistics are per channel, over positions (and over the reference examples for the reference part).

    Args:
        num_features: C.
        ref_size: B, the number of reference rows at the start of every input.
        eps: added to the variance.

    Example:
        >>> vbn = VirtualBatchNorm2d(3, ref_size=4)
        >>> vbn(torch.randn(6, 3, 5, 5)).shape
        torch.Size([6, 3, 5, 5])
    """

    _data_dims = 2


def spectral_normalize(network: nn.Module) -> nn.Module:
    """Put every ``nn.Linear`` and ``nn.Conv*`` weight of ``network`` under spectral normalisation, in place.

    Uses ``torch.nn.utils.parametrizations.spectral_norm`` (one power iteration per training forward, the
    estimate of the largest singular value kept in buffers, so it is checkpointed). Returns ``network``.

    Example:
        >>> net = spectral_normalize(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)))
        >>> [parametrize.is_parametrized(m, "weight") for m in net if isinstance(m, nn.Linear)]
        [True, True]
    """
    for module in list(network.modules()):
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
            spectral_norm(module)
    return network
