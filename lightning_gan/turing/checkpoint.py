"""Load what a Turing test needs from a training run: the model of a checkpoint and the real test images.

A checkpoint written under the CLI (``python -m lightning_gan fit``) names its model class in
``hyper_parameters["_class_path"]`` and its networks as ``class_path`` configs, so ``load_from_checkpoint`` rebuilds
it alone. The file is first read with ``weights_only=True`` (no code runs for an untrusted file), and only classes
of :mod:`lightning_gan.models` are imported. The dataset is read from the data module's state in the checkpoint
(``data_subset`` / ``label_split`` manifests name it) unless given.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lightning_gan.datamodules import VISION_DATASETS, load_vision_dataset, missing_files
from lightning_gan.datamodules.vision import get_spec
from lightning_gan.models import AdversarialModule, SemiSupervisedGAN

__all__ = ["CheckpointError", "file_sha256", "infer_dataset", "is_classifier", "load_model", "load_real_images"]

BUILT_IN_PYTHON = (
    "does not describe its model class and networks (the model was built in Python, where networks are not saved "
    "as hyperparameters); train it with `python -m lightning_gan fit`, whose checkpoints rebuild alone"
)
FIT_HINT = "pass --ckpt the .ckpt file of a `python -m lightning_gan fit` run (e.g. runs/.../checkpoints/last.ckpt)"


class CheckpointError(ValueError):
    """The file is missing, unreadable, or not a checkpoint of a lightning_gan model."""


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, to tell which checkpoint a database's image pool came from."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dictionary, read with ``weights_only=True``; clear errors for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; {FIT_HINT}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and weights_only errors alike: the file is not a checkpoint of ours
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({type(err).__name__}: {err}); {FIT_HINT}"
        ) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict); {FIT_HINT}")
    return checkpoint


def model_class(checkpoint: dict[str, Any], path: str | Path) -> type[AdversarialModule]:
    """The lightning_gan model class a checkpoint names; only ``lightning_gan.models`` classes are imported."""
    class_path = (checkpoint.get("hyper_parameters") or {}).get("_class_path")
    roles = {key.split(".", 1)[0] for key in checkpoint["state_dict"]}
    if class_path is None and {"generator", "discriminator"} <= roles:
        raise CheckpointError(f"{path} {BUILT_IN_PYTHON}")
    if not isinstance(class_path, str) or not class_path.startswith("lightning_gan.models."):
        raise CheckpointError(
            f"{path} is not a checkpoint of a lightning_gan model: its hyper_parameters name {class_path!r}, but the "
            f"Turing test needs lightning_gan.models.GAN or lightning_gan.models.SemiSupervisedGAN; {FIT_HINT}"
        )
    module, _, name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module), name, None)
    if not (isinstance(cls, type) and issubclass(cls, AdversarialModule)):
        raise CheckpointError(f"{path} names {class_path}, which is not a lightning_gan adversarial model")
    return cls


def load_model(path: str | Path) -> AdversarialModule:
    """The model of a checkpoint, on the CPU, in eval mode."""
    checkpoint = read_checkpoint(path)
    cls = model_class(checkpoint, path)
    hparams = checkpoint["hyper_parameters"]
    if not all(isinstance(hparams.get(role), dict) for role in ("generator", "discriminator")):
        raise CheckpointError(f"{path} {BUILT_IN_PYTHON}")
    model = cls.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    return model.eval()


def is_classifier(model: AdversarialModule) -> bool:
    """A K+1 model, whose averaged discriminator classifies generated images."""
    return isinstance(model, SemiSupervisedGAN)


def infer_dataset(checkpoint: dict[str, Any]) -> str | None:
    """The dataset name the data module's manifest in the checkpoint records (``mnist``, ...), or ``None``."""
    for state in checkpoint.values():
        if not isinstance(state, dict):
            continue
        for key in ("data_subset", "label_split"):
            manifest = state.get(key)
            if isinstance(manifest, str):
                name = str(json.loads(manifest).get("dataset", "")).lower()
                if name in VISION_DATASETS:
                    return name
    return None


def load_real_images(dataset: str, data_dir: str | Path) -> tuple[Tensor, Tensor]:
    """The test split of ``dataset`` as ``(float [N, C, H, W] in [0, 1], long [N])``; names the fix if missing."""
    missing = missing_files(dataset, data_dir)
    if missing:
        raise FileNotFoundError(
            f"no real {dataset} images for the Turing test: {', '.join(str(p) for p in missing)} not found. Pass "
            f"--real-data DIR, the folder that holds {Path(get_spec(dataset).files[0]).parts[0]}/ in torchvision's "
            "layout (or set $LIGHTNING_GAN_DATA); `python -m lightning_gan fit ... --data.init_args.download true` "
            "fetches it"
        )
    return load_vision_dataset(dataset, data_dir, train=False)
