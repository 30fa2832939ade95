"""A config of ``configs/`` built through the LightningCLI, as a short measured run: the recipe, without the extras.

``ablations.py`` and ``diffaugment.py`` train the shipped configs (plus command-line overrides) through
:func:`lightning_gan.cli.build_cli` exactly as ``python -m lightning_gan fit --config ...`` would build them, then
drop what only displays or stores things (progress bars, model summary, sample grids, checkpoints, the per-epoch
image-quality callback, the CSV logger): the scripts measure the scores themselves once training ends, on the same
number of samples for every run. Every callback that changes training (historical averaging, RNG state, collapse
monitor, epoch time) stays.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import Checkpoint, ModelSummary, ProgressBar

from lightning_gan.callbacks import ImageQualityMetrics, SampleGrid
from lightning_gan.cli import LightningGANCLI, build_cli

DROPPED = (ProgressBar, ModelSummary, Checkpoint, SampleGrid, ImageQualityMetrics)


def lean_cli(config: str | Path, overrides: list[str], root: str | Path) -> LightningGANCLI:
    """Parse ``config`` with ``overrides`` (LightningCLI arguments), without logger or display/storage callbacks."""
    args = ["--config", str(config), "--trainer.logger", "false", "--trainer.default_root_dir", str(root), *overrides]
    cli = build_cli(args, run=False)
    cli.trainer.callbacks[:] = [c for c in cli.trainer.callbacks if not isinstance(c, DROPPED)]
    return cli
