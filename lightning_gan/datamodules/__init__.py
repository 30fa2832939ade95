"""Lightning data modules with seeded, class-balanced labelled subsets and unlabelled pools."""

from lightning_gan.datamodules.cifar import SemiSupervisedCIFAR10, SemiSupervisedSVHN
from lightning_gan.datamodules.images import DataSubset, ImageDataModule
from lightning_gan.datamodules.mnist import SemiSupervisedFashionMNIST, SemiSupervisedMNIST
from lightning_gan.datamodules.semi_supervised import (
    InMemorySemiSupervised,
    LabelledImages,
    ReshufflingDistributedSampler,
    SemiSupervisedDataModule,
    UnlabelledImages,
    collate_for,
    collate_gathered,
    default_data_dir,
)
from lightning_gan.datamodules.splits import LabelSplit, select_labelled, select_validation, targets_hash
from lightning_gan.datamodules.toy import GaussianMixtureDataModule, mode_coverage, ring_centers
from lightning_gan.datamodules.vision import VISION_DATASETS, VisionDatasetSpec, load_vision_dataset, missing_files

__all__ = [
    "VISION_DATASETS",
    "DataSubset",
    "GaussianMixtureDataModule",
    "ImageDataModule",
    "InMemorySemiSupervised",
    "LabelSplit",
    "LabelledImages",
    "ReshufflingDistributedSampler",
    "SemiSupervisedCIFAR10",
    "SemiSupervisedDataModule",
    "SemiSupervisedFashionMNIST",
    "SemiSupervisedMNIST",
    "SemiSupervisedSVHN",
    "UnlabelledImages",
    "VisionDatasetSpec",
    "collate_for",
    "collate_gathered",
    "default_data_dir",
    "load_vision_dataset",
    "missing_files",
    "mode_coverage",
    "ring_centers",
    "select_labelled",
    "select_validation",
    "targets_hash",
]
