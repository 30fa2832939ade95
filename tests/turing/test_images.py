from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_gan.models import GAN
from lightning_gan.networks import VanillaDiscriminator, VanillaGenerator
from lightning_gan.turing.images import build_pool, encode_png, grid_png, tile, to_uint8


def chunks(png: bytes) -> list[bytes]:
    kinds, at = [], 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kinds.append(png[at + 4 : at + 8])
        at += 12 + length
    return kinds


@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB")])
def test_png_round_trips_through_pillow_with_only_the_critical_chunks(channels, mode):
    pixels = np.random.default_rng(0).integers(0, 256, (channels, 5, 7), dtype=np.uint8)
    png = encode_png(pixels)
    decoded = Image.open(io.BytesIO(png))
    assert decoded.mode == mode and decoded.size == (7, 5) and decoded.info == {}
    assert np.array_equal(np.asarray(decoded).reshape(5, 7, channels).transpose(2, 0, 1), pixels)
    assert chunks(png) == [b"IHDR", b"IDAT", b"IEND"]


def test_png_size_depends_on_the_shape_alone():
    """An empty background and noise give files of one length: the size cannot tell real from generated."""
    blank, noise = np.zeros((1, 28, 28), np.uint8), np.random.default_rng(1).integers(0, 256, (1, 28, 28), np.uint8)
    assert len(encode_png(blank)) == len(encode_png(noise))
    assert len(encode_png(blank)) != len(encode_png(np.zeros((1, 28, 27), np.uint8)))


def test_png_refuses_what_it_cannot_encode():
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((1, 4, 4), np.float32))
    with pytest.raises(ValueError, match="C in"):
        encode_png(np.zeros((2, 4, 4), np.uint8))


def test_to_uint8_maps_both_generator_ranges():
    x = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3)
    assert to_uint8(x, (0.0, 1.0)).flatten().tolist() == [0, 128, 255]
    assert to_uint8(2 * x - 1, (-1.0, 1.0)).flatten().tolist() == [0, 128, 255]


def test_a_grid_tiles_its_images_in_order():
    images = [np.full((1, 2, 3), v, np.uint8) for v in (10, 20, 30)]  # 3 images: 2 columns, 2 rows
    grid = tile(images, pad=1, pad_value=0)
    assert grid.shape == (1, 5, 7)
    assert grid[0, 0, 0] == 10 and grid[0, 0, 4] == 20 and grid[0, 3, 0] == 30 and grid[0, 3, 4] == 0
    png = grid_png([im.tobytes() for im in images], (1, 2, 3))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png)))[None], tile(images))


def tiny_gan() -> GAN:
    return GAN(VanillaGenerator(noise_dim=4, hidden_dims=(8,)), VanillaDiscriminator(hidden_dims=(8,)))


def test_pool_is_seeded_and_leaves_the_global_rng_alone():
    real = torch.arange(30.0).div(255).view(30, 1, 1, 1).expand(30, 1, 28, 28)  # image i: every pixel is byte i
    labels = torch.arange(30) % 10
    model = tiny_gan()
    state = torch.get_rng_state()
    a = build_pool(model, real, labels, n_real=5, n_fake=7, seed=3)
    assert torch.equal(torch.get_rng_state(), state) and model.training
    b = build_pool(model, real, labels, n_real=5, n_fake=7, seed=3)
    c = build_pool(model, real, labels, n_real=5, n_fake=7, seed=4)
    assert [im.pixels for im in a] == [im.pixels for im in b]
    assert [im.pixels for im in a[:5]] != [im.pixels for im in c[:5]] and a[5].pixels != c[5].pixels
    assert [im.truth for im in a] == ["real"] * 5 + ["generated"] * 7
    assert all(len(im.pixels) == 28 * 28 for im in a)
    assert len({im.pixels for im in a[:5]}) == 5  # five different test images
    assert all(im.label == im.pixels[0] % 10 for im in a[:5])  # each real image keeps its true label
    assert all(im.label is None for im in a[5:])  # an unconditional GAN has no class for its samples


def test_pool_refuses_more_real_images_than_there_are_and_other_shapes():
    model = tiny_gan()
    with pytest.raises(ValueError, match="asked for 11 real images but the test split has 10; lower --pool-real"):
        build_pool(model, torch.rand(10, 1, 28, 28), torch.zeros(10), n_real=11, n_fake=1)
    with pytest.raises(ValueError, match=r"shape \[1, 28, 28\] but the real images are \[3, 32, 32\]"):
        build_pool(model, torch.rand(10, 3, 32, 32), torch.zeros(10), n_real=1, n_fake=1)
