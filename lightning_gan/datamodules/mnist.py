"""Semi-supervised MNIST and FashionMNIST: the paper's first benchmark (Salimans et al. 2016, section 5.1).

Thin configurations of :class:`~lightning_gan.datamodules.SemiSupervisedDataModule`. They read torchvision's on-disk
layout ``<data_dir>/MNIST/raw/*-ubyte`` (``FashionMNIST/raw/``); pixels are scaled to [0, 1] as in
openai/improved-gan (the generator ends in a sigmoid).
"""

from __future__ import annotations

from typing import Any

from lightning_gan.datamodules.semi_supervised import SemiSupervisedDataModule

__all__ = ["SemiSupervisedFashionMNIST", "SemiSupervisedMNIST"]


class SemiSupervisedMNIST(SemiSupervisedDataModule):
    """MNIST with ``num_labelled`` labelled training images and the rest as the unlabelled pool.

    Args:
        data_dir: folder that holds ``MNIST/raw/`` (default ``$LIGHTNING_GAN_DATA``, else ``./data``).
        download: download the files with torchvision if they are missing.
        num_labelled: labelled images, a multiple of 10 (the paper uses 20, 50, 100 and 200).
        label_seed: the only seed the labelled subset depends on.
        batch_size: images per batch (the paper: 100 labelled + 100 unlabelled + 100 generated).
        **kwargs: the other arguments of :class:`~lightning_gan.datamodules.SemiSupervisedDataModule`
            (``val_size``, ``val_seed``, ``label_split``, ``num_workers``, ``init_size``, ``value_range``,
            ``tile_labelled``).

    Example:
        >>> import os
        >>> dm = SemiSupervisedMNIST(num_labelled=100, label_seed=1)
        >>> if os.path.isdir(os.path.join(dm.data_dir, "MNIST", "raw")):
        ...     dm.setup("fit")
        ...     assert dm.labelled_indices.numel() == 100
    """

    def __init__(
        self,
        data_dir: str | None = None,
        download: bool = False,
        num_labelled: int = 100,  # the paper's main MNIST setting
        label_seed: int = 1,
        batch_size: int = 100,  # reference: 100 labelled + 100 unlabelled + 100 generated
        **kwargs: Any,
    ) -> None:
        super().__init__(
            "mnist",
            data_dir,
            download,
            num_labelled=num_labelled,
            label_seed=label_seed,
            batch_size=batch_size,
            **kwargs,
        )
        self.dataset_name = "MNIST"  # the name in label manifests written before the dataset registry existed


class SemiSupervisedFashionMNIST(SemiSupervisedDataModule):
    """FashionMNIST (the same 28x28 format, ten clothing classes) as a semi-supervised benchmark.

    Args:
        data_dir: folder that holds ``FashionMNIST/raw/`` (default ``$LIGHTNING_GAN_DATA``, else ``./data``).
        download: download the files with torchvision if they are missing.
        num_labelled: labelled images, a multiple of 10.
        label_seed: the only seed the labelled subset depends on.
        batch_size: images per batch.
        **kwargs: the other arguments of :class:`~lightning_gan.datamodules.SemiSupervisedDataModule`.

    Example:
        >>> dm = SemiSupervisedFashionMNIST(num_labelled=100)
        >>> dm.dataset_name, dm.image_shape, dm.value_range
        ('fashion_mnist', (1, 28, 28), (0.0, 1.0))
    """

    def __init__(
        self,
        data_dir: str | None = None,
        download: bool = False,
        num_labelled: int = 100,
        label_seed: int = 1,
        batch_size: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            "fashion_mnist",
            data_dir,
            download,
            num_labelled=num_labelled,
            label_seed=label_seed,
            batch_size=batch_size,
            **kwargs,
        )
