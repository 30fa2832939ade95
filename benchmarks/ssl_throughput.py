"""Throughput of the semi-supervised MNIST training iteration (D step + G step), through the real Trainer.

    python benchmarks/ssl_throughput.py --iters 100 --threads 1     # real MNIST from $LIGHTNING_GAN_DATA
    python benchmarks/ssl_throughput.py --iters 50 --synthetic      # generated MNIST-format files, no data needed
    python benchmarks/ssl_throughput.py --iters 100 --threads 1 --json benchmarks/results/ssl_throughput.json

One iteration = one D step on 100 labelled + 100 unlabelled + 100 generated images and one G step (feature
matching on 100 generated + 100 unlabelled), with the paper's MNIST networks. Five variants of
:class:`~lightning_gan.models.SemiSupervisedGAN` are timed in the same process on the same batches (:data:`VARIANTS`):

- ``fast``: ``step_impl="fast"`` (the default) with ``paper_adam(fused=True)`` (the reference's Adam,
  ``ReferenceAdam``, its update compiled by ``torch.compile`` into one pass per parameter; from run 8 on, before
  that the foreach update of ``fast_foreach_adam``);
- ``fast_foreach_adam``: ``step_impl="fast"`` with :func:`~lightning_gan.models.paper_adam` (one set of foreach
  kernels for all parameters, seven passes over each), which isolates the fused update;
- ``straightforward``: ``step_impl="straightforward"`` with the same Adam written plainly (``ReferenceAdam(foreach=
  False)``, a loop over parameters) and torch's ``nn.Softplus`` in the generator (the library's
  :class:`~lightning_gan.layers.Softplus` computes the same function faster on the CPU): what a plain transcription
  runs. From run 12 on, that step freezes nothing, as Lightning's manual-optimization GAN example and the usual
  PyTorch port of the reference: its G step back-propagates into D's weights and drops those gradients (runs 1-11
  froze D there, as the fast step does);
- ``straightforward_foreach_adam``: ``step_impl="straightforward"`` (and ``nn.Softplus``) with ``paper_adam``;
  against ``fast_foreach_adam`` it isolates the step;
- ``straightforward_torchvision_data``: ``straightforward`` reading its batches the way the PyTorch MNIST example does,
  ``torchvision.datasets.MNIST`` with ``transforms.ToTensor()`` (one PIL image per item, collated by the DataLoader;
  :class:`TorchvisionMNIST`), where the others index images held in memory as one tensor. Same split, same images.

All but the last share one input pipeline, so ``speedup`` (straightforward / fast) is the speed-up of the training
step alone; ``speedup_torchvision_data`` (straightforward_torchvision_data / fast) is that of the whole iteration
against a plain implementation, input pipeline included.

All five compute the same numbers (up to float rounding; the noise of D is drawn in another order by the
straightforward step). They are interleaved: ``--rounds`` rounds, each training every variant in turn for
``--warmup`` untimed plus ``iters / rounds`` timed iterations (a fresh ``Trainer.fit`` each, seeded alike, so all
see the same batches). An iteration's time runs from the end of one training batch to the end of the next, so it
includes data loading and Lightning's loop. Medians are reported.

Also measured in the same run, on the same number of threads:

- the FLOPs of one iteration as executed (forward and backward of the D and the G step: the matrix products, counted
  by ``torch.utils.flop_counter.FlopCounterMode``), hence each variant's achieved GFLOP/s;
- the machine's fp32 matrix-multiplication peak: the best of repeated square ``torch.mm`` before and after the
  timing, and the ratio achieved / peak.

The last two lines printed are ``peak_rss_mb=<float>`` and ``images_per_s=<float>`` (unlabelled images/s of the fast
variant); ``--json PATH`` writes every number to a file.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import Dataset, Subset
from torch.utils.flop_counter import FlopCounterMode
from torchvision import datasets, transforms

from lightning_gan.datamodules import SemiSupervisedMNIST
from lightning_gan.layers import Softplus
from lightning_gan.models import SemiSupervisedGAN, paper_adam
from lightning_gan.networks import MNISTDiscriminator, MNISTGenerator
from lightning_gan.optim import ReferenceAdam


def plain_adam(params) -> torch.optim.Optimizer:
    """``paper_adam`` updating one parameter at a time (``foreach=False``): the same numbers, a plain loop."""
    return ReferenceAdam(params, lr=0.003, betas=(0.5, 0.999), eps=1e-8, foreach=False)


class ImagesOnly(Dataset):
    """The images of ``dataset[indices]`` without their labels (the unlabelled batches)."""

    def __init__(self, dataset: Dataset, indices: list[int]) -> None:
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.dataset[self.indices[i]][0]


class TorchvisionMNIST(SemiSupervisedMNIST):
    """:class:`SemiSupervisedMNIST`'s split and loaders over ``torchvision.datasets.MNIST`` + ``ToTensor()``.

    The input pipeline of a plain implementation: each item is decoded to a PIL image and converted back to a tensor,
    and the DataLoader stacks 100 of them per batch. The pixels are the same (``ToTensor`` divides by 255).
    """

    def train_dataloader(self) -> CombinedLoader:
        self._require_train()
        mnist = datasets.MNIST(self.data_dir, train=True, transform=transforms.ToTensor())
        labelled = Subset(mnist, self.labelled_indices.tolist())
        pool = ImagesOnly(mnist, self.unlabelled_indices.tolist())
        loaders = {
            "labelled": self._train_loader(labelled, min(self.batch_size, len(labelled)), seed_offset=0),
            "unlabelled": self._train_loader(pool, self.batch_size, seed_offset=1),
            "unlabelled_g": self._train_loader(pool, self.batch_size, seed_offset=2),
        }
        return CombinedLoader(loaders, mode="max_size_cycle")


class Variant(NamedTuple):
    step_impl: str
    optimizer: Callable[..., torch.optim.Optimizer]  # of both players
    precision: str = "32-true"  # Trainer precision
    data: str = "in_memory"  # or "torchvision": TorchvisionMNIST


def fused_paper_adam(params) -> torch.optim.Optimizer:
    """``paper_adam`` with the compiled one-pass update (``ReferenceAdam(fused=True)``)."""
    return paper_adam(params, fused=True)


VARIANTS = {
    "fast": Variant("fast", fused_paper_adam),
    "fast_foreach_adam": Variant("fast", paper_adam),  # isolates the fused Adam
    "straightforward": Variant("straightforward", plain_adam),
    "straightforward_foreach_adam": Variant("straightforward", paper_adam),  # vs fast_foreach_adam: isolates step_impl
    "straightforward_torchvision_data": Variant("straightforward", plain_adam, data="torchvision"),
}
BF16 = {"fast_bf16_mixed": Variant("fast", paper_adam, "bf16-mixed")}  # --bf16: other numerics


def minor_page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class IterationTimer(Callback):
    """Wall-clock time (and minor page faults) between consecutive training-batch ends, after ``warmup`` iterations."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.times: list[float] = []
        self.page_faults: list[int] = []
        self._last, self._faults = 0.0, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now, faults = time.perf_counter(), minor_page_faults()
        if batch_idx >= max(self.warmup, 1):  # _last was set by this fit's previous batch
            self.times.append(now - self._last)
            self.page_faults.append(faults - self._faults)
        self._last, self._faults = now, faults


class FlopCounter(Callback):
    """Matrix-multiplication FLOPs of one training iteration (batch ``batch_idx`` of a fit), as executed."""

    def __init__(self, batch_idx: int) -> None:
        self.batch_idx, self.flops, self._mode = batch_idx, 0, None
        self.by_op: dict[str, int] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.batch_idx:
            self._mode = FlopCounterMode(display=False)
            self._mode.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self.flops = self._mode.get_total_flops()
            self.by_op = {str(op): int(n) for op, n in self._mode.get_flop_counts()["Global"].items()}
            self._mode = None


class Profile(Callback):
    """``torch.profiler`` over the training batches of a fit after ``skip``; ``table()`` is ms per iteration by op."""

    def __init__(self, skip: int) -> None:
        self.skip, self.iterations, self._prof = skip, 0, None
        self.ms_by_op: dict[str, float] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.skip:
            self._prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self._prof.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._prof is not None:
            self.iterations += 1

    def on_train_end(self, trainer, pl_module) -> None:
        if self._prof is None:
            return
        self._prof.__exit__(None, None, None)
        events = self._prof.key_averages()
        n = max(self.iterations, 1)
        ops = sorted((e for e in events if e.key.startswith("aten::")), key=lambda e: -e.self_cpu_time_total)
        self.ms_by_op = {e.key: e.self_cpu_time_total / 1000 / n for e in ops if e.self_cpu_time_total > 0}
        self.total_ms = sum(e.self_cpu_time_total for e in events) / 1000 / n
        self._prof = None

    def table(self, rows: int) -> str:
        mm = sum(v for k, v in self.ms_by_op.items() if k in ("aten::mm", "aten::addmm"))
        lines = [f"  {self.total_ms:.1f} ms/iteration under the profiler, matrix products {mm:.1f} ms (self time):"]
        lines += [f"  {ms:8.2f} ms  {op}" for op, ms in list(self.ms_by_op.items())[:rows]]
        return "\n".join(lines)


def matmul_peak_gflops(size: int, repeats: int, dtype: torch.dtype = torch.float32) -> float:
    """Best ``torch.mm`` rate of ``repeats`` products of two ``size`` x ``size`` matrices, in GFLOP/s."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    out = torch.empty(size, size, dtype=dtype)
    torch.mm(a, b, out=out)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory instead of returning it to the OS (no mmap for blocks up to 32 MiB,
    no trimming of the heap).

    By default each iteration gets fresh pages for its large temporaries (D's normalised 1000 x 784 weight, its
    gradients, Adam's temporaries, the 300-image activations) and pays a minor page fault per 4 KiB, about 3000 per
    iteration. Process-wide, so it applies to every variant alike. Returns whether glibc accepted it.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


def build_model(variant: Variant, seed: int) -> SemiSupervisedGAN:
    """The model of a :class:`Variant`, with the initial weights of ``seed``."""
    seed_everything(seed, verbose=False)  # the same initial weights for every variant
    opt = variant.optimizer
    generator = MNISTGenerator()
    if variant.step_impl == "straightforward":  # a plain transcription's activation, as in runs 1-7 of the report
        for name, module in list(generator.hidden.named_children()):
            if isinstance(module, Softplus):
                generator.hidden.register_module(name, torch.nn.Softplus())
    return SemiSupervisedGAN(
        generator, MNISTDiscriminator(), optimizer_d=opt, optimizer_g=opt, step_impl=variant.step_impl
    )


def fit(
    model: SemiSupervisedGAN, dm, iterations: int, seed: int, callbacks: list[Callback], precision: str = "32-true"
) -> None:
    seed_everything(seed, verbose=False)  # the same batches and generator noise for every variant
    trainer = Trainer(
        precision=precision,
        max_steps=2 * iterations,  # global_step counts the D and the G optimizer step
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )
    trainer.fit(model, datamodule=dm)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=100, help="timed iterations per variant")
    parser.add_argument("--warmup", type=int, default=10, help="untimed iterations at the start of every fit")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (every variant in turn)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--synthetic", action="store_true", help="random tensors instead of MNIST")
    parser.add_argument("--data-dir", default=None, help="folder holding MNIST/raw (default $LIGHTNING_GAN_DATA)")
    parser.add_argument("--peak-size", type=int, default=1024, help="side of the square matrices of the peak")
    parser.add_argument("--peak-repeats", type=int, default=20, help="products per peak measurement (best counts)")
    parser.add_argument(
        "--keep-freed-memory", action="store_true", help="glibc mallopt: no mmap/trim (see keep_freed_memory)"
    )
    parser.add_argument(
        "--bf16", action="store_true", help="also time fast_bf16_mixed (Trainer precision='bf16-mixed': other numerics)"
    )
    parser.add_argument(
        "--profile", type=int, default=0, help="also profile this many iterations of each variant (torch.profiler)"
    )
    parser.add_argument("--note", default="", help="free text stored in the JSON (e.g. the machine's load)")
    parser.add_argument(
        "--json", type=Path, default=None, help='append this run\'s numbers to the "runs" of this JSON file'
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    malloc_tuned = keep_freed_memory() if args.keep_freed_memory else False
    load_before = os.getloadavg()

    rounds = max(1, min(args.rounds, args.iters))
    per_round = [args.iters // rounds + (r < args.iters % rounds) for r in range(rounds)]
    longest = args.warmup + max(per_round)
    data_dir = args.data_dir
    if args.synthetic:  # MNIST-format files, so that torchvision's reader has something to read
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from machine import write_synthetic_mnist

        synthetic_dir = tempfile.TemporaryDirectory()  # removed when main returns
        data_dir = str(write_synthetic_mnist(synthetic_dir.name, n_train=args.batch_size * (longest + 2), n_test=10))
    modules = {"in_memory": SemiSupervisedMNIST, "torchvision": TorchvisionMNIST}
    dms = {
        key: module(data_dir=data_dir, num_labelled=100, val_size=0, batch_size=args.batch_size)
        for key, module in modules.items()
    }

    variants = {**VARIANTS, **(BF16 if args.bf16 else {})}
    peaks = [matmul_peak_gflops(args.peak_size, args.peak_repeats)]
    models = {name: build_model(variant, seed=0) for name, variant in variants.items()}
    timers = {name: IterationTimer(args.warmup) for name in variants}
    for r, timed in enumerate(per_round):
        for name, variant in variants.items():  # interleaved: A, B, C, A, B, C, ...
            fit(models[name], dms[variant.data], args.warmup + timed, 1000 + r, [timers[name]], variant.precision)
    peaks.append(matmul_peak_gflops(args.peak_size, args.peak_repeats))
    bf16_peak = matmul_peak_gflops(args.peak_size, args.peak_repeats, torch.bfloat16) if args.bf16 else None
    flop_counters = {name: FlopCounter(batch_idx=0) for name in variants}
    for name, variant in variants.items():  # after the timing: counting slows the counted iteration down
        fit(models[name], dms[variant.data], 1, 999, [flop_counters[name]], variant.precision)
    profiles = {}
    if args.profile > 0:
        for name, variant in variants.items():
            profiles[name] = Profile(skip=args.warmup)
            fit(models[name], dms[variant.data], args.warmup + args.profile, 998, [profiles[name]], variant.precision)

    peak = max(peaks)
    results: dict[str, dict[str, float]] = {}
    for variant, spec in variants.items():
        times = timers[variant].times
        ms = 1000 * statistics.median(times)
        flops = flop_counters[variant].flops
        variant_peak = bf16_peak if spec.precision.startswith("bf16") else peak
        results[variant] = {
            "ms_per_iteration_median": ms,
            "ms_per_iteration_mean": 1000 * statistics.fmean(times),
            "ms_per_iteration_min": 1000 * min(times),
            "timed_iterations": len(times),
            "minor_page_faults_per_iteration_median": statistics.median(timers[variant].page_faults),
            "flops_per_iteration": flops,
            "flops_by_op": flop_counters[variant].by_op,
            "gflops_per_s": flops / ms / 1e6,
            "fraction_of_peak": flops / ms / 1e6 / variant_peak,  # of the bf16 peak for bf16
            "profile_ms_per_iteration_by_op": dict(list(profiles[variant].ms_by_op.items())[:25])
            if variant in profiles
            else {},
            "profile_total_ms_per_iteration": profiles[variant].total_ms if variant in profiles else None,
            "step_impl": spec.step_impl,
            "generator_softplus": type(models[variant].generator.hidden[3]).__module__.split(".")[0],  # torch or ours
            "optimizer": spec.optimizer.__name__,
            "precision": spec.precision,
            "data": spec.data,
        }
    fast = results["fast"]
    speedup = results["straightforward"]["ms_per_iteration_median"] / fast["ms_per_iteration_median"]
    fast_foreach = results["fast_foreach_adam"]["ms_per_iteration_median"]
    speedup_step = results["straightforward_foreach_adam"]["ms_per_iteration_median"] / fast_foreach
    speedup_fused = fast_foreach / fast["ms_per_iteration_median"]
    speedup_data = (
        results["straightforward_torchvision_data"]["ms_per_iteration_median"] / fast["ms_per_iteration_median"]
    )
    images_per_s = 1000 * args.batch_size / fast["ms_per_iteration_median"]
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    iters_per_epoch = 55000 // args.batch_size  # the default 5,000-image validation hold-out

    summary = {
        "peak_rss_mb": peak_rss_mb,
        "images_per_s": images_per_s,
        "ms_per_iteration": fast["ms_per_iteration_median"],
        "speedup": speedup,
        "speedup_same_optimizer": speedup_step,  # straightforward_foreach_adam / fast_foreach_adam
        "speedup_fused_adam": speedup_fused,  # fast_foreach_adam / fast
        "speedup_torchvision_data": speedup_data,
        "peak_gflops_per_s": peak,
    }
    if bf16_peak is not None:
        summary["bf16_peak_gflops_per_s"] = bf16_peak
        summary["speedup_bf16_mixed"] = (
            results["straightforward"]["ms_per_iteration_median"]
            / results["fast_bf16_mixed"]["ms_per_iteration_median"]
        )
    data = "synthetic" if args.synthetic else "MNIST"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, data: {data}, malloc tuned: {malloc_tuned}")
    print(f"matmul peak (fp32 {args.peak_size}x{args.peak_size} mm, best of {args.peak_repeats}): {peak:.1f} GFLOP/s")
    if bf16_peak is not None:
        print(f"bf16 matmul peak: {bf16_peak:.1f} GFLOP/s (the reference of fast_bf16_mixed's % of peak)")
    for variant in variants:
        res = results[variant]
        print(
            f"{variant:>28}: {res['ms_per_iteration_median']:.1f} ms/iteration (median of {res['timed_iterations']}), "
            f"{res['flops_per_iteration'] / 1e9:.3f} GFLOP/iteration, {res['gflops_per_s']:.1f} GFLOP/s, "
            f"{100 * res['fraction_of_peak']:.0f}% of peak, "
            f"{res['minor_page_faults_per_iteration_median']:.0f} page faults/iteration"
        )
    for variant, profile in profiles.items():
        print(f"{variant} profile, top ops by self time:\n{profile.table(rows=15)}")
    print(f"speedup={speedup:.2f} (fast vs straightforward), {speedup_step:.2f} with the same foreach Adam")
    print(f"speedup_fused_adam={speedup_fused:.2f} (fast vs fast_foreach_adam)")
    print(f"speedup_torchvision_data={speedup_data:.2f} (fast vs straightforward reading torchvision's MNIST)")
    if bf16_peak is not None:
        print(f"speedup of fast_bf16_mixed vs straightforward (fp32): {summary['speedup_bf16_mixed']:.2f}")
    print(f"seconds_per_epoch={fast['ms_per_iteration_median'] * iters_per_epoch / 1000:.1f} ({iters_per_epoch} it)")
    print(f"peak_rss_mb={peak_rss_mb:.1f}")
    print(f"images_per_s={images_per_s:.1f}")
    sys.stdout.flush()

    if args.json is not None:
        record = {
            "summary": summary,
            "variants": results,
            "peak_gflops_per_s_measurements": peaks,
            "settings": {
                "iters": args.iters,
                "warmup": args.warmup,
                "rounds": rounds,
                "batch_size": args.batch_size,
                "threads": torch.get_num_threads(),
                "data": data,
                "peak_size": args.peak_size,
                "profile": args.profile,
                "malloc_tuned": malloc_tuned,
            },
            "machine": {
                "torch": torch.__version__,
                "python": platform.python_version(),
                "processor": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(),
                "load_average_1_5_15_min_before": load_before,
                "load_average_1_5_15_min_after": os.getloadavg(),
            },
            "note": args.note,
        }
        runs = json.loads(args.json.read_text())["runs"] if args.json.is_file() else []
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": [*runs, record]}, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
