"""DiffAugment on limited data: FID of an unsupervised MNIST GAN trained on 10 %, 20 % and 100 % of the images.

    python benchmarks/diffaugment.py --iterations 4000 --threads 1 --json benchmarks/results/diffaugment.json
    python benchmarks/diffaugment.py --quick --json /tmp/diffaugment.json [--data-dir DIR]   # smoke run
    python benchmarks/diffaugment.py --fractions 0.01 --update --json benchmarks/results/diffaugment.json  # add 1 %
    python benchmarks/diffaugment.py --fractions 0.01 0.1 --augment translation translation_1px --update --json ...

Six runs by default: ``configs/mnist_dcgan.yaml`` (no augmentation) and ``configs/mnist_dcgan_diffaugment.yaml``
(DiffAugment, Zhao et al. 2020, policy ``color,translation,cutout`` on every D input of both steps), each with
``data.init_args.fraction`` 0.1, 0.2 and 1.0 of the 55,000 non-validation training images (a class-balanced subset
chosen by ``fraction_seed`` 0, so the 10 % images are the same with and without augmentation). ``--augment
translation`` adds the second config with the translation policy alone, ``translation_1px`` the same with shifts of at
most one pixel (``augment_translation_ratio`` 1/28); ``--update`` adds runs to an existing JSON.

Budget: every run makes the same number of generator steps, ``--iterations`` (``trainer.max_steps`` is twice that:
``global_step`` counts the D and the G step), so limited data means more epochs over fewer images, not less
training. The DCGAN of the configs (``base_channels`` 64) is ~5 times slower than ``--base-channels 16`` (the default
here; a bare training loop at batch 64 on one core: ~160 against ~30 ms per iteration); at the configs' batch size of
128 and 16 channels, six runs of 4,000 iterations take 30-45 minutes on one core (each run's ``fit_seconds`` is in the
JSON). Validation is off during training (``limit_val_batches 0``).

After training, :class:`~lightning_gan.callbacks.ImageQualityMetrics` with the shipped MNIST domain classifier scores
``--num-samples`` generated images against as many MNIST test images (``real_split="test"``: the same reference for
every fraction, none of it seen in training): ``metrics/fid``, ``metrics/is_mean``, ``metrics/mode_score``. Also
recorded: the share of training images and of held-out real images the final D calls real (logit > 0), the overfitting
that DiffAugment is meant to prevent (a D that memorised its training images accepts them and rejects new ones).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config_run import lean_cli  # noqa: E402
from machine import RESULTS, ROOT, command_line, machine_spec, merge_runs, use_data_dir, write_json  # noqa: E402

from lightning_gan.augment import TRANSLATION_RATIO  # noqa: E402
from lightning_gan.callbacks import ImageQualityMetrics  # noqa: E402

CONFIGS = {  # --augment choice: (config, its overrides)
    "none": (ROOT / "configs" / "mnist_dcgan.yaml", []),
    "diffaugment": (ROOT / "configs" / "mnist_dcgan_diffaugment.yaml", []),
    # the translation policy alone (no colour change, no cutout), which the 20-label semi-supervised fix uses
    "translation": (ROOT / "configs" / "mnist_dcgan_diffaugment.yaml", ["--model.init_args.augment", "translation"]),
    # the same with shifts of at most one pixel (ratio 1/28) instead of DiffAugment's four (1/8)
    "translation_1px": (
        ROOT / "configs" / "mnist_dcgan_diffaugment.yaml",
        ["--model.init_args.augment", "translation", "--model.init_args.augment_translation_ratio", str(1 / 28)],
    ),
}
DEFAULT_AUGMENT = ["none", "diffaugment"]


def augment_label(model: torch.nn.Module) -> str:
    """The policy, and the translation ratio where it is not DiffAugment's 1/8: ``"translation, ratio 0.0357"``."""
    if not model.augment.enabled:
        return "none"
    ratio = model.augment.translation_ratio
    translates = "translation" in model.augment.policy.split(",")
    return model.augment.policy + (f", ratio {ratio:.3g}" if translates and ratio != TRANSLATION_RATIO else "")


@torch.no_grad()
def accepted_share(model: torch.nn.Module, images: torch.Tensor, batch_size: int) -> float:
    """Share of ``images`` the discriminator calls real (logit > 0), in batches of real images as in training.

    D runs in training mode (batch norm on each batch's statistics, as it saw real batches while training; its
    running statistics change, which nothing reads afterwards) and without augmentation.
    """
    was_training = model.discriminator.training
    model.discriminator.train()
    accepted = sum(
        int((model.discriminator(images[i : i + batch_size].to(model.device)).reshape(-1) > 0).sum())
        for i in range(0, len(images) - batch_size + 1, batch_size)  # whole batches only
    )
    model.discriminator.train(was_training)
    return accepted / max(len(images) // batch_size * batch_size, 1)


def run(
    augment: str, fraction: float, overrides: list[str], metrics: ImageQualityMetrics, root: Path
) -> dict[str, Any]:
    """Train one (augmentation, fraction) run; its FID, IS, mode score, time and D's acceptance of real images."""
    config, policy = CONFIGS[augment]
    args = ["--data.init_args.fraction", str(fraction), *overrides, *policy]
    cli = lean_cli(config, args, root / f"{augment}_{fraction}")
    started = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    scores = metrics.evaluate(cli.model, cli.datamodule)
    dm = cli.datamodule
    check = min(1024, len(dm.train_indices))
    return {
        "augment": augment_label(cli.model),
        "config": str(config.relative_to(ROOT)),
        "config_overrides": policy,
        "fraction": fraction,
        "train_images": len(dm.train_indices),
        "iterations": cli.trainer.global_step // 2,  # generator steps; "epochs": passes over the kept images
        "epochs": round(cli.trainer.global_step // 2 * dm.batch_size / len(dm.train_indices), 1),
        "fit_seconds": round(fit_seconds, 1),
        "ms_per_iteration": round(1000 * fit_seconds / max(cli.trainer.global_step // 2, 1), 1),
        **{key: round(value, 4) for key, value in scores.items()},
        "metrics_seconds": round(time.perf_counter() - started, 1),
        "d_accepts_train": round(accepted_share(cli.model, dm.real_images(check, "train"), dm.batch_size), 4),
        "d_accepts_heldout": round(accepted_share(cli.model, dm.real_images(check, "val"), dm.batch_size), 4),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.2, 1.0])
    parser.add_argument("--augment", nargs="+", default=DEFAULT_AUGMENT, choices=list(CONFIGS))
    parser.add_argument("--iterations", type=int, default=4000, help="generator steps of every run")
    parser.add_argument("--base-channels", type=int, default=16, help="DCGAN width of G and D (configs: 64)")
    parser.add_argument("--num-samples", type=int, default=10_000, help="generated (and real test) images for FID")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 iterations, 100 samples")
    parser.add_argument("--data-dir", default=None, help="folder holding MNIST/raw (default $LIGHTNING_GAN_DATA)")
    parser.add_argument("--json", default=str(RESULTS / "diffaugment.json"))
    parser.add_argument(
        "--update",
        action="store_true",
        help="replace only these (fraction, augment) runs in an existing --json measured with the same settings",
    )
    args = parser.parse_args(argv)
    use_data_dir(args.data_dir)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.iterations, args.num_samples, args.base_channels = 3, 100, 8
    overrides = [
        "--trainer.max_steps", str(2 * args.iterations),  # global_step: one D and one G step per iteration
        "--trainer.max_epochs", "-1",
        "--trainer.limit_val_batches", "0",
        "--model.init_args.generator.init_args.base_channels", str(args.base_channels),
        "--model.init_args.discriminator.init_args.base_channels", str(args.base_channels),
    ]  # fmt: skip
    if args.quick:
        overrides += ["--data.init_args.val_size", "100", "--data.init_args.batch_size", "16"]  # 10 % of 1,100 images
    metrics = ImageQualityMetrics(
        every_n_epochs=0,
        num_samples=args.num_samples,
        num_real=args.num_samples,
        real_split="test",
        cache_dir=None,
        progress=False,
    )
    settings = {
        "iterations": args.iterations,
        "base_channels": args.base_channels,
        "num_samples": args.num_samples,
        "real_split": "test",
        "threads": args.threads,
        "overrides": overrides,
    }  # and "extractor", known once the metrics have run
    previous = json.loads(Path(args.json).read_text()) if args.update and Path(args.json).is_file() else None
    changed = sorted(k for k in settings if previous and previous["settings"].get(k) != settings[k])
    if changed:
        raise SystemExit(
            f"diffaugment.py --update: {args.json} was measured with other settings ({', '.join(changed)}); "
            "rerun every run without --update, or pass the same --iterations/--base-channels/--num-samples/--threads"
        )
    command = command_line(argv, "diffaugment.py")
    runs = []
    with tempfile.TemporaryDirectory() as root:
        for fraction in args.fractions:
            for augment in args.augment:
                runs.append({**run(augment, fraction, overrides, metrics, Path(root)), "command": command})
                print(json.dumps(runs[-1]), flush=True)
    runs = sorted(
        merge_runs(previous, runs, key=lambda r: (r["augment"], r["fraction"])),
        key=lambda r: (r["fraction"], r["augment"]),
    )
    settings["extractor"] = metrics.quality.extractor.name if metrics.quality else previous["settings"]["extractor"]
    if previous is not None and previous["settings"]["extractor"] != settings["extractor"]:
        raise SystemExit(f"diffaugment.py --update: {args.json} was scored by another extractor; rerun every run")
    result = {
        "benchmark": "diffaugment",
        "command": command,
        "quick": args.quick,
        "settings": settings,
        "machine": machine_spec(),
        "runs": runs,
    }
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
