"""The image pool of a visual Turing test, and PNGs that say nothing about where an image came from.

Real and generated images must be indistinguishable except by their pixels. Both are turned into uint8 arrays of
the same shape and mode, and encoded by :func:`encode_png` with the deflate data *stored* (compression level 0): the
file then holds only IHDR, IDAT and IEND chunks, and its size depends on the image shape alone. A compressed PNG
would betray its source by its length (real MNIST digits have exact-zero backgrounds that compress far better than
a generator's near-zero ones), and so would any text, time or colour-profile chunk.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from lightning_gan.turing.store import PoolImage

__all__ = ["build_pool", "encode_png", "grid_png", "tile", "to_uint8"]

_COLOUR_TYPES = {1: 0, 3: 2}  # channels -> PNG colour type: greyscale, truecolour


def to_uint8(images: Tensor, value_range: tuple[float, float]) -> Tensor:
    """Map ``images`` ([B, C, H, W], pixels in ``value_range``) linearly to uint8 [0, 255], clamping, rounding.

    Example:
        >>> to_uint8(torch.tensor([[[[-1.0, 0.0, 1.0, 3.0]]]]), (-1.0, 1.0)).tolist()
        [[[[0, 128, 255, 255]]]]
    """
    low, high = (float(v) for v in value_range)
    scaled = (images.detach().float().cpu() - low) / (high - low)
    return scaled.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(pixels: np.ndarray) -> bytes:
    r"""A PNG of uint8 ``pixels`` [C, H, W] (C = 1 or 3) with no ancillary chunks and stored (uncompressed) data.

    Example:
        >>> a = encode_png(np.zeros((1, 28, 28), np.uint8))
        >>> b = encode_png(np.random.default_rng(0).integers(0, 256, (1, 28, 28), dtype=np.uint8))
        >>> a[:8] == b"\x89PNG\r\n\x1a\n", len(a) == len(b)   # same size whatever the content
        (True, True)
    """
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[0] not in _COLOUR_TYPES:
        raise ValueError(f"encode_png needs uint8 [C, H, W] with C in (1, 3), got {pixels.dtype} {list(pixels.shape)}")
    c, h, w = pixels.shape
    rows = np.ascontiguousarray(pixels.transpose(1, 2, 0)).reshape(h, w * c)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()  # filter type 0 (none) per row
    header = struct.pack(">IIBBBBB", w, h, 8, _COLOUR_TYPES[c], 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, level=0))
        + _chunk(b"IEND", b"")
    )


def tile(images: Sequence[np.ndarray], pad: int = 2, pad_value: int = 128) -> np.ndarray:
    """Lay out uint8 ``images`` [C, H, W] in a near-square grid separated by ``pad`` grey pixels; one stays as is.

    Example:
        >>> tile([np.zeros((1, 2, 2), np.uint8)] * 4, pad=1).shape   # 2 x 2 images of 2 x 2 with 1-pixel gaps
        (1, 5, 5)
    """
    if len(images) == 1:
        return images[0]
    c, h, w = images[0].shape
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    out = np.full((c, rows * (h + pad) - pad, cols * (w + pad) - pad), pad_value, np.uint8)
    for i, image in enumerate(images):
        r, k = divmod(i, cols)
        out[:, r * (h + pad) : r * (h + pad) + h, k * (w + pad) : k * (w + pad) + w] = image
    return out


def grid_png(pixels: Sequence[bytes], shape: tuple[int, int, int]) -> bytes:
    """The PNG of one trial: its images' raw uint8 bytes of ``shape``, tiled."""
    return encode_png(tile([np.frombuffer(p, np.uint8).reshape(shape) for p in pixels]))


@torch.no_grad()
def build_pool(
    model: torch.nn.Module,
    real_images: Tensor,
    real_labels: Tensor,
    n_real: int,
    n_fake: int,
    seed: int = 0,
    classify: bool = False,
) -> list[PoolImage]:
    """``n_real`` test images chosen with ``seed`` and ``n_fake`` samples of ``model.sample`` drawn with ``seed``.

    Args:
        model: a :class:`~lightning_gan.models.AdversarialModule` (``.sample(n)``, ``.generator.value_range``).
        real_images: real images [N, C, H, W] in [0, 1].
        real_labels: their classes [N].
        n_real: real images in the pool.
        n_fake: generated images in the pool.
        seed: seeds the choice of real images and the generator noise (the global RNG is left as it was).
        classify: label generated images with ``model(x).argmax(1)`` (the K+1 model's averaged discriminator).
    """
    if n_real > len(real_images):
        raise ValueError(f"asked for {n_real} real images but the test split has {len(real_images)}; lower --pool-real")
    shape = tuple(getattr(model.generator, "image_shape", ()))
    if shape != tuple(real_images.shape[1:]):
        raise ValueError(
            f"the generator makes images of shape {list(shape)} but the real images are {list(real_images.shape[1:])}; "
            "pass the dataset the model was trained on (--dataset)"
        )
    chosen = torch.randperm(len(real_images), generator=torch.Generator().manual_seed(seed))[:n_real]
    real = to_uint8(real_images[chosen], (0.0, 1.0))
    pool = [PoolImage("real", int(y), x.numpy().tobytes()) for x, y in zip(real, real_labels[chosen], strict=True)]
    was_training = model.training
    model.eval()  # no discriminator noise, batch-norm running statistics
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            x = model.sample(n_fake)  # [n_fake, C, H, W] in the generator's value range, one batch: one noise draw
            labels = model(x).argmax(1).tolist() if classify else [None] * n_fake  # K+1: the averaged D's class
    finally:
        model.train(was_training)
    fake = to_uint8(x, model.generator.value_range)
    return pool + [PoolImage("generated", y, f.numpy().tobytes()) for f, y in zip(fake, labels, strict=True)]
