"""Semi-supervised MNIST: the paper's first benchmark (Salimans et al. 2016, section 5.1).

Reads the torchvision on-disk layout ``<data_dir>/MNIST/raw/*-ubyte`` through ``torchvision.datasets.MNIST``;
pixels are scaled to [0, 1] as in openai/improved-gan (the generator ends in a sigmoid).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor
from torchvision.datasets import MNIST

from lightning_gan.datamodules.semi_supervised import SemiSupervisedDataModule, default_data_dir

__all__ = ["SemiSupervisedMNIST"]

MNIST_RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class SemiSupervisedMNIST(SemiSupervisedDataModule):
    """MNIST with ``num_labelled`` labelled training images and the rest as the unlabelled pool.

    Args:
        data_dir: folder that holds ``MNIST/raw/`` (default ``$LIGHTNING_GAN_DATA``, else ``./data``).
        download: download the files with torchvision if they are missing.
        num_labelled: labelled images, a multiple of 10 (the paper uses 20, 50, 100 and 200).
        label_seed: the only seed the labelled subset depends on.
        batch_size: images per batch (the paper: 100 labelled + 100 unlabelled + 100 generated).
        **kwargs: the other arguments of :class:`~lightning_gan.datamodules.SemiSupervisedDataModule`
            (``val_size``, ``val_seed``, ``label_split``, ``num_workers``, ``init_size``).

    Example:
        >>> import os
        >>> dm = SemiSupervisedMNIST(num_labelled=100, label_seed=1)
        >>> if os.path.isdir(os.path.join(dm.data_dir, "MNIST", "raw")):
        ...     dm.setup("fit")
        ...     assert dm.labelled_indices.numel() == 100
    """

    dataset_name = "MNIST"
    num_classes = 10
    image_shape = (1, 28, 28)
    value_range = (0.0, 1.0)  # pixels / 255, as openai/improved-gan

    def __init__(
        self,
        data_dir: str | None = None,
        download: bool = False,
        num_labelled: int = 100,
        label_seed: int = 1,
        batch_size: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_labelled=num_labelled, label_seed=label_seed, batch_size=batch_size, **kwargs)
        self.data_dir = str(data_dir if data_dir is not None else default_data_dir())
        self.download = download

    def _missing_files(self) -> list[Path]:
        raw = Path(self.data_dir) / "MNIST" / "raw"
        return [raw / name for name in MNIST_RAW_FILES if not (raw / name).is_file()]

    def prepare_data(self) -> None:
        """Download MNIST if asked to; otherwise only check that the files are there."""
        if self._missing_files() and self.download:
            MNIST(self.data_dir, train=True, download=True)
            MNIST(self.data_dir, train=False, download=True)
        self._check_files()

    def _check_files(self) -> None:
        missing = self._missing_files()
        if missing:
            raise FileNotFoundError(
                f"MNIST files not found: {', '.join(str(p) for p in missing)}. Put the four idx files in "
                f"{Path(self.data_dir) / 'MNIST' / 'raw'}, point data_dir (or $LIGHTNING_GAN_DATA) at the folder that "
                "holds MNIST/raw/, or set download=True (--data.init_args.download true) to fetch them"
            )

    def load_images(self, train: bool) -> tuple[Tensor, Tensor]:
        self._check_files()
        ds = MNIST(self.data_dir, train=train, download=False)
        return ds.data.unsqueeze(1).float().div_(255.0), ds.targets.long()  # [N, 1, 28, 28] in [0, 1], [N]
