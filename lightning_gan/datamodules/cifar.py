"""Semi-supervised CIFAR-10 and SVHN: the paper's colour benchmarks (Salimans et al. 2016, sections 5.2 and 5.3).

Thin configurations of :class:`~lightning_gan.datamodules.SemiSupervisedDataModule`, reading torchvision's on-disk
formats (``<data_dir>/cifar-10-batches-py/`` pickles; ``<data_dir>/{train,test}_32x32.mat`` for SVHN). Pixels are
scaled to [-1, 1] for the tanh generator (the reference: ``(x - 127.5) / 128``), with no augmentation, as in
openai/improved-gan.
"""

from __future__ import annotations

from typing import Any

from lightning_gan.datamodules.semi_supervised import SemiSupervisedDataModule

__all__ = ["SemiSupervisedCIFAR10", "SemiSupervisedSVHN"]


class SemiSupervisedCIFAR10(SemiSupervisedDataModule):
    """CIFAR-10 with ``num_labelled`` labelled training images (the paper: 1000, 2000, 4000, 8000).

    Args:
        data_dir: folder that holds ``cifar-10-batches-py/`` (default ``$LIGHTNING_GAN_DATA``, else ``./data``).
        download: download the archive with torchvision if files are missing.
        num_labelled: labelled images, a multiple of 10 (default 4000: 400 per class, the paper's main setting).
        label_seed: the only seed the labelled subset depends on.
        batch_size: images per batch and process (the reference: 100).
        **kwargs: the other arguments of :class:`~lightning_gan.datamodules.SemiSupervisedDataModule`
            (``val_size``, ``val_seed``, ``label_split``, ``num_workers``, ``init_size``, ``value_range``,
            ``tile_labelled``).

    Example:
        >>> dm = SemiSupervisedCIFAR10()
        >>> dm.num_labelled, dm.image_shape, dm.value_range
        (4000, (3, 32, 32), (-1.0, 1.0))
    """

    def __init__(
        self,
        data_dir: str | None = None,
        download: bool = False,
        num_labelled: int = 4000,  # the paper's Table 2 headline setting (18.63 +- 2.32 % error)
        label_seed: int = 1,
        batch_size: int = 100,  # reference: 100
        **kwargs: Any,
    ) -> None:
        super().__init__(
            "cifar10",
            data_dir,
            download,
            num_labelled=num_labelled,
            label_seed=label_seed,
            batch_size=batch_size,
            **kwargs,
        )


class SemiSupervisedSVHN(SemiSupervisedDataModule):
    """SVHN (the 73,257-digit ``train`` split) with ``num_labelled`` labelled images (the paper: 1000).

    Args:
        data_dir: folder that holds ``train_32x32.mat`` and ``test_32x32.mat`` (default ``$LIGHTNING_GAN_DATA``,
            else ``./data``); reading them needs scipy.
        download: download the files with torchvision if they are missing.
        num_labelled: labelled images, a multiple of 10 (default 1000: 100 per class, as in the paper).
        label_seed: the only seed the labelled subset depends on.
        batch_size: images per batch and process (the reference: 100).
        **kwargs: the other arguments of :class:`~lightning_gan.datamodules.SemiSupervisedDataModule`.

    Example:
        >>> dm = SemiSupervisedSVHN()
        >>> dm.num_labelled, dm.dataset_name, dm.value_range
        (1000, 'svhn', (-1.0, 1.0))
    """

    def __init__(
        self,
        data_dir: str | None = None,
        download: bool = False,
        num_labelled: int = 1000,  # the paper's SVHN setting (8.11 +- 1.3 % error)
        label_seed: int = 1,
        batch_size: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            "svhn",
            data_dir,
            download,
            num_labelled=num_labelled,
            label_seed=label_seed,
            batch_size=batch_size,
            **kwargs,
        )
