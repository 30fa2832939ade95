"""Lightning data modules with seeded, class-balanced labelled subsets and unlabelled pools."""

from lightning_gan.datamodules.mnist import SemiSupervisedMNIST
from lightning_gan.datamodules.semi_supervised import (
    InMemorySemiSupervised,
    LabelledImages,
    SemiSupervisedDataModule,
    UnlabelledImages,
    default_data_dir,
)
from lightning_gan.datamodules.splits import LabelSplit, select_labelled, select_validation, targets_hash

__all__ = [
    "InMemorySemiSupervised",
    "LabelSplit",
    "LabelledImages",
    "SemiSupervisedDataModule",
    "SemiSupervisedMNIST",
    "UnlabelledImages",
    "default_data_dir",
    "select_labelled",
    "select_validation",
    "targets_hash",
]
