"""The run's data manifest as a Weights & Biases artifact: which images carried labels (or were trained on).

A W&B run shows the hyperparameters, but two runs with the same ``label_seed`` and ``num_labelled`` only share a
split if the data also agree; the manifest (indices plus a SHA-256 of the targets) settles it. Logged as an
artifact, identical splits become one artifact version shared by their runs, and a changed split a new version.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from typing_extensions import override

from lightning_gan.callbacks.samples import run_directory

__all__ = ["MANIFESTS", "LogLabelSplitArtifact"]

MANIFESTS = {  # data-module method that writes a manifest into a folder -> artifact type
    "save_label_split": "label_split",  # SemiSupervisedDataModule: label_split.json
    "save_subset": "data_subset",  # ImageDataModule: data_subset.json
}


class LogLabelSplitArtifact(Callback):
    """At fit start, log the data module's manifest as a W&B artifact of each ``WandbLogger`` (rank 0).

    ``label_split.json`` for semi-supervised data modules, ``data_subset.json`` for ``ImageDataModule``, written
    afresh from the data module into the run directory (:func:`~lightning_gan.callbacks.samples.run_directory`, which
    is per run under W&B: the data module's own copy lands in the ``save_dir`` that all W&B runs share). The artifact
    is named ``<type>-<dataset>``; its metadata are the manifest's fields without the index lists. Without a
    ``WandbLogger`` or a manifest it does nothing. Works offline: ``wandb sync`` uploads it later.

    Example:
        >>> from lightning.pytorch import Trainer
        >>> trainer = Trainer(callbacks=[LogLabelSplitArtifact()], logger=False, enable_progress_bar=False)
    """

    def __init__(self) -> None:
        self.logged: list[Path] = []  # manifests logged by this run (rank 0)

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not loggers:
            return
        directory = run_directory(trainer)  # on every rank: trainer.log_dir broadcasts
        if not trainer.is_global_zero:
            return
        import wandb  # only when there is a WandbLogger: importing wandb takes a second

        for method, artifact_type in MANIFESTS.items():
            save = getattr(trainer.datamodule, method, None)
            if not callable(save):
                continue
            path = Path(save(directory))
            manifest = json.loads(path.read_text())
            dataset = re.sub(r"[^\w.-]", "_", str(manifest.get("dataset", "data")))
            metadata = {k: v for k, v in manifest.items() if not k.endswith("indices")}
            for logger in loggers:
                artifact = wandb.Artifact(f"{artifact_type}-{dataset}", type=artifact_type, metadata=metadata)
                artifact.add_file(str(path), name=path.name)
                logger.experiment.log_artifact(artifact)
            self.logged.append(path)
