"""The command line: ``python -m lightning_gan {fit,validate,test,predict} --config configs/....yaml``.

A ``LightningCLI``: constructor signatures are the config schema, so every YAML key is an ``__init__``
argument of the model, the data module or the Trainer, and unknown keys are rejected by jsonargparse.
"""

from __future__ import annotations

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import lightning_gan.callbacks  # noqa: F401  (imported so that class_path lookups find them)
import lightning_gan.datamodules  # noqa: F401
import lightning_gan.models  # noqa: F401
import lightning_gan.networks  # noqa: F401

__all__ = ["LightningGANCLI", "build_cli", "main"]


class LightningGANCLI(LightningCLI):
    """LightningCLI with the project's defaults: CSV logs under ``runs/``, rich console, test after fit.

    Every run's checkpoints are written atomically and carry the RNG states (the default callbacks, and those of every
    config in ``configs/``), so ``fit --ckpt_path .../last.ckpt`` resumes exactly where the run stopped.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="after `fit`, run `test` with the best checkpoint (or the last weights) and print the test metrics",
        )
        parser.set_defaults(
            {
                "trainer.logger": {
                    "class_path": "lightning.pytorch.loggers.CSVLogger",
                    "init_args": {"save_dir": "runs", "name": "lightning_gan"},
                },
                "trainer.callbacks": [
                    {"class_path": "lightning.pytorch.callbacks.RichProgressBar"},
                    {"class_path": "lightning.pytorch.callbacks.RichModelSummary"},
                    {"class_path": "lightning_gan.callbacks.GlobalRNGState"},  # resumed runs draw the same numbers
                    {  # instead of Lightning's default ModelCheckpoint, whose last.ckpt a crash mid-write can truncate
                        "class_path": "lightning_gan.callbacks.AtomicModelCheckpoint",
                        "init_args": {"save_last": True},
                    },
                ],
            }
        )

    def after_fit(self) -> None:
        if not self.config[self.subcommand].get("test_after_fit"):
            return
        has_best = self.trainer.checkpoint_callback is not None and self.trainer.checkpoint_callback.best_model_path
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if has_best else None)


def build_cli(args: list[str] | None = None, run: bool = True) -> LightningGANCLI:
    """Build (and with ``run=True`` run) the CLI; ``args`` as on the command line, default ``sys.argv[1:]``.

    With ``run=False`` there is no subcommand: the config is parsed and the model, data module and
    trainer are built, for scripts and tests that drive the trainer themselves.
    """
    return LightningGANCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,  # each model builds its own two optimizers from optimizer_d/optimizer_g
        args=args,
        run=run,
    )


def main() -> None:
    """Entry point of ``python -m lightning_gan`` and the ``lightning-gan`` script.

    ``turing`` is not a LightningCLI subcommand: it serves a visual Turing test (:mod:`lightning_gan.turing`).
    """
    import sys

    if len(sys.argv) > 1 and sys.argv[1] == "turing":
        from lightning_gan.turing.cli import main as turing_main

        turing_main(sys.argv[2:])
        return
    build_cli()
