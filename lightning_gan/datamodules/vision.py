"""Torchvision classification datasets read whole into memory, from one registry.

GAN training indexes the same images over and over, so every dataset is read once through its torchvision
class (which keeps its own format and integrity checks) and converted in bulk from the dataset's arrays to
``float32 [N, C, H, W]`` in [0, 1]; no per-item ``__getitem__`` or PIL round trip. A dataset is one
:class:`VisionDatasetSpec` entry of :data:`VISION_DATASETS`; what differs between torchvision classes (how a split
is named, how the arrays are laid out) is a small callable of the spec, so adding one is adding an entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchvision.datasets import CIFAR10, MNIST, SVHN, FashionMNIST, VisionDataset

__all__ = [
    "VISION_DATASETS",
    "VisionDatasetSpec",
    "check_files",
    "download_vision_dataset",
    "get_spec",
    "load_vision_dataset",
    "missing_files",
]


def train_flag(train: bool) -> dict[str, Any]:
    """Constructor arguments of a split for classes taking ``train=bool`` (MNIST, CIFAR)."""
    return {"train": train}


def grayscale_arrays(ds: Any) -> tuple[Tensor, Tensor]:
    """``.data`` uint8 ``[N, H, W]`` tensor and ``.targets`` (MNIST family) as ``[N, 1, H, W]`` and ``[N]`` long."""
    return torch.as_tensor(ds.data).unsqueeze(1), torch.as_tensor(ds.targets, dtype=torch.long)


def channels_last_arrays(ds: Any) -> tuple[Tensor, Tensor]:
    """``.data`` uint8 numpy ``[N, H, W, C]`` and a ``.targets`` list (CIFAR) as ``[N, C, H, W]`` and ``[N]`` long."""
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return images, torch.as_tensor(ds.targets, dtype=torch.long)


def split_name(train: bool) -> dict[str, Any]:
    """Constructor arguments of a split for classes taking ``split="train"/"test"`` (SVHN)."""
    return {"split": "train" if train else "test"}


def channels_first_arrays(ds: Any) -> tuple[Tensor, Tensor]:
    """``.data`` uint8 numpy ``[N, C, H, W]`` and ``.labels`` (SVHN, digit 0 already mapped from 10) as tensors."""
    return torch.from_numpy(ds.data).contiguous(), torch.as_tensor(ds.labels, dtype=torch.long)  # .data is a view


@dataclass(frozen=True)
class VisionDatasetSpec:
    """How to find, download and read one torchvision classification dataset.

    Args:
        dataset_class: the torchvision class; it is constructed as
            ``dataset_class(data_dir, download=..., **split_kwargs(train))``.
        files: the files (relative to ``data_dir``) that must exist for both splits to be read offline.
        num_classes: number of classes.
        image_shape: ``(C, H, W)`` of one image.
        arrays: the dataset object to ``(uint8 images [N, C, H, W], long targets [N])``, in bulk.
        split_kwargs: ``train`` to the constructor's split arguments.

    Example:
        SVHN names its splits with ``split=`` and keeps ``[N, C, H, W]`` numpy arrays in ``.data`` / ``.labels``:

        >>> import torch
        >>> from torchvision.datasets import SVHN
        >>> svhn = VisionDatasetSpec(
        ...     SVHN, files=("train_32x32.mat", "test_32x32.mat"), num_classes=10, image_shape=(3, 32, 32),
        ...     arrays=lambda ds: (torch.from_numpy(ds.data), torch.from_numpy(ds.labels).long()),
        ...     split_kwargs=lambda train: {"split": "train" if train else "test"},
        ... )
        >>> svhn.split_kwargs(False)
        {'split': 'test'}
    """

    dataset_class: type[VisionDataset]
    files: tuple[str, ...]
    num_classes: int
    image_shape: tuple[int, int, int]
    arrays: Callable[[Any], tuple[Tensor, Tensor]]
    split_kwargs: Callable[[bool], dict[str, Any]] = train_flag


_MNIST_RAW = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")

VISION_DATASETS: dict[str, VisionDatasetSpec] = {
    "mnist": VisionDatasetSpec(
        dataset_class=MNIST,
        files=tuple(f"MNIST/raw/{f}" for f in _MNIST_RAW),
        num_classes=10,
        image_shape=(1, 28, 28),
        arrays=grayscale_arrays,
    ),
    "fashion_mnist": VisionDatasetSpec(
        dataset_class=FashionMNIST,
        files=tuple(f"FashionMNIST/raw/{f}" for f in _MNIST_RAW),
        num_classes=10,
        image_shape=(1, 28, 28),
        arrays=grayscale_arrays,
    ),
    "cifar10": VisionDatasetSpec(
        dataset_class=CIFAR10,
        files=tuple(f"cifar-10-batches-py/{f}" for f in _CIFAR10_FILES),
        num_classes=10,
        image_shape=(3, 32, 32),
        arrays=channels_last_arrays,
    ),
    "svhn": VisionDatasetSpec(  # the "train" split (73,257 digits) as in the paper; "extra" is not used
        dataset_class=SVHN,
        files=("train_32x32.mat", "test_32x32.mat"),  # directly in data_dir, as torchvision keeps them (needs scipy)
        num_classes=10,
        image_shape=(3, 32, 32),
        arrays=channels_first_arrays,
        split_kwargs=split_name,
    ),
}
"""The datasets :func:`load_vision_dataset` and :class:`~lightning_gan.datamodules.ImageDataModule` know, by name.

Example:
    >>> sorted(VISION_DATASETS)
    ['cifar10', 'fashion_mnist', 'mnist', 'svhn']
    >>> VISION_DATASETS["cifar10"].image_shape
    (3, 32, 32)
"""


def get_spec(name: str) -> VisionDatasetSpec:
    """The registry entry of ``name``.

    Raises:
        ValueError: for a name that is not in :data:`VISION_DATASETS`, listing the valid ones.
    """
    if name not in VISION_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(VISION_DATASETS))}")
    return VISION_DATASETS[name]


def missing_files(name: str, data_dir: str | Path) -> list[Path]:
    """The files of dataset ``name`` that are not under ``data_dir`` (empty: it can be read offline).

    Example:
        >>> [p.name for p in missing_files("mnist", "/nonexistent")][:2]
        ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte']
    """
    root = Path(data_dir)
    return [root / f for f in get_spec(name).files if not (root / f).is_file()]


def check_files(name: str, data_dir: str | Path) -> None:
    """Raise a ``FileNotFoundError`` that names every missing file of ``name`` and how to fix it."""
    missing = missing_files(name, data_dir)
    if missing:
        raise FileNotFoundError(
            f"{name} files not found: {', '.join(str(p) for p in missing)}. Put them there (torchvision's layout), "
            f"point data_dir (or $LIGHTNING_GAN_DATA) at the folder that holds them, or set download=True "
            "(--data.init_args.download true) to fetch them"
        )


def download_vision_dataset(name: str, data_dir: str | Path) -> None:
    """Fetch the files of both splits with torchvision if any is missing (files present are never fetched again)."""
    spec = get_spec(name)
    if missing_files(name, data_dir):
        for train in (True, False):
            spec.dataset_class(str(data_dir), download=True, **spec.split_kwargs(train))


def load_vision_dataset(name: str, data_dir: str | Path, train: bool, download: bool = False) -> tuple[Tensor, Tensor]:
    """Read one split of dataset ``name`` into memory.

    Args:
        name: a key of :data:`VISION_DATASETS`.
        data_dir: the folder torchvision reads from (``<data_dir>/MNIST/raw/``, ``<data_dir>/cifar-10-batches-py/``).
        train: the training split, else the test split.
        download: let torchvision fetch missing files; otherwise missing files are an error.

    Returns:
        ``(images, targets)``: ``float32 [N, C, H, W]`` in [0, 1] (the bytes / 255) and ``long [N]``.

    Raises:
        ValueError: unknown ``name``.
        FileNotFoundError: files missing and ``download`` is off; the message lists them and the fix.
        RuntimeError: torchvision rejected files that are there (e.g. a CIFAR-10 checksum mismatch).
    """
    spec = get_spec(name)
    if not download:
        check_files(name, data_dir)
    try:
        ds = spec.dataset_class(str(data_dir), download=download, **spec.split_kwargs(train))
    except RuntimeError as err:
        raise RuntimeError(
            f"torchvision could not read {name} from {data_dir} ({err}); the files are there but do not match "
            "what it expects (corrupted or partial, checksums differ): delete them and use download=True"
        ) from err
    images, targets = spec.arrays(ds)
    if tuple(images.shape[1:]) != spec.image_shape or images.dtype != torch.uint8 or len(targets) != len(images):
        raise ValueError(
            f"{name}: expected uint8 images [N, {', '.join(map(str, spec.image_shape))}] with one target each, got "
            f"{images.dtype} {list(images.shape)} and {len(targets)} targets; check the spec's arrays function"
        )
    return images.float().div_(255.0), targets.long()
