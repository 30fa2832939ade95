"""Plot and summarise the per-epoch test errors written by ``mnist_ssl_reproduction.py``.

    python benchmarks/plot_reproduction.py [--results benchmarks/results] [--stem mnist_ssl_100_n100]
    python benchmarks/plot_reproduction.py --labels 20 50 100 200 [--prefix mnist_ssl_100]

Writes ``<stem>_error_vs_epoch.png``, ``<stem>_error_vs_time.png`` and ``<stem>_summary.md`` next to the
JSON lines, and prints the summary table (last-epoch EMA test errors of 10,000 per seed, mean +- std).
With ``--controls NAME STEM [STEM ...]``: one row per run of the given stems (short controlled runs, e.g. the
few-label collapse runs of ``docs/reproduction.md``) with D's real-image accuracy and the feature-matching loss of
every epoch, the CollapseMonitor verdict and the last EMA test errors, in ``NAME_summary.md``.

With ``--labels``: one row per label count (files ``<prefix>_n<labels>_seed*.jsonl``) next to the paper's numbers,
with the epoch at which :class:`~lightning_gan.callbacks.CollapseMonitor` would have fired, in
``<prefix>_labels_summary.md``, and the EMA curves of every label count against epochs and wall-clock time in
``<prefix>_labels_error_vs_epoch.png`` and ``<prefix>_labels_error_vs_time.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

LINE_STYLES = ("-", "--", ":", "-.")  # one per seed; one colour per label count
PAPER = {20: "1677 +- 452", 50: "221 +- 136", 100: "93 +- 6.5", 200: "90 +- 4.2"}


def read(results: Path, stem: str) -> dict[int, list[dict]]:
    runs = {}
    for path in sorted(results.glob(f"{stem}_seed*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if rows:
            runs[rows[0]["seed"]] = rows
    if not runs:
        raise FileNotFoundError(
            f"no {stem}_seed*.jsonl files in {results}; run benchmarks/mnist_ssl_reproduction.py first"
        )
    return runs


def x_values(rows: list[dict], x_key: str) -> list[float]:
    """The x axis of a curve: epochs, or wall-clock hours for ``x_key="wall_s"``."""
    return [r[x_key] / (3600 if x_key == "wall_s" else 1) for r in rows]


def save_log_plot(fig: Any, ax: Any, xlabel: str, ylabel: str, path: Path) -> None:
    """Log-scale error axes, legend and grid, written to ``path``."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    ax.set_yscale("log")
    plain = FuncFormatter(lambda y, _: f"{y:g}")  # 20, not 2 x 10^1
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def collapse_epoch(rows: list[dict]) -> int | None:
    """The epoch at which CollapseMonitor (default settings) fires on these recorded epochs, if it does."""
    from lightning_gan.callbacks import CollapseMonitor

    monitor = CollapseMonitor()
    return next((row["epoch"] for row in rows if monitor.update(row)), None)


def labels_table(results: Path, prefix: str, labels: list[int]) -> dict[int, dict]:
    """Last-epoch EMA errors per label count and seed, next to the paper, with collapses; plus one plot."""
    import matplotlib.pyplot as plt

    table, lines = (
        {},
        [
            "| labels | seeds | epochs run | wall-clock hours per run | EMA test errors (last epoch, of 10,000) "
            "| mean +- std | paper (10 seeds) | collapse |",
            "|---|---|---|---|---|---|---|---|",
        ],
    )
    figures = {x_key: plt.subplots(figsize=(7, 4)) for x_key in ("epoch", "wall_s")}
    for colour, n in enumerate(labels):
        try:
            runs = read(results, f"{prefix}_n{n}")
        except FileNotFoundError:
            continue
        final = {seed: rows[-1]["test_errors_ema"] for seed, rows in runs.items()}
        collapses = {seed: collapse_epoch(rows) for seed, rows in runs.items()}
        values = list(final.values())
        mean, std = statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0
        epochs = sorted({rows[-1]["epoch"] + 1 for rows in runs.values()})
        hours = {seed: rows[-1]["wall_s"] / 3600 for seed, rows in runs.items()}
        table[n] = {
            "final": final,
            "mean": mean,
            "std": std,
            "epochs": epochs,
            "hours": hours,
            "collapse_epoch": collapses,
        }
        fired = [f"seed {s}: epoch {e}" for s, e in sorted(collapses.items()) if e is not None]
        lines.append(
            f"| {n} | {', '.join(map(str, sorted(final)))} | {'-'.join(map(str, sorted({epochs[0], epochs[-1]})))} "
            f"| {', '.join(f'{hours[s]:.1f}' for s in sorted(hours))} "
            f"| {', '.join(str(final[s]) for s in sorted(final))} | {mean:.0f} +- {std:.0f} | {PAPER.get(n, '')} "
            f"| {'; '.join(fired) if fired else 'none'} |"
        )
        for style, (seed, rows) in enumerate(sorted(runs.items())):
            errors = [r["test_errors_ema"] / 100 for r in rows]
            for x_key, (_, ax) in figures.items():
                xs = x_values(rows, x_key)
                line = LINE_STYLES[style % len(LINE_STYLES)]
                ax.plot(xs, errors, color=f"C{colour}", ls=line, label=f"{n} labels, seed {seed}")
    for x_key, (fig, ax) in figures.items():
        xlabel, suffix = ("epoch", "epoch") if x_key == "epoch" else ("wall-clock hours (one CPU core per run)", "time")
        ylabel = "MNIST test error of the EMA discriminator (%)"
        save_log_plot(fig, ax, xlabel, ylabel, results / f"{prefix}_labels_error_vs_{suffix}.png")
    text = "\n".join(lines)
    (results / f"{prefix}_labels_summary.md").write_text(text + "\n")
    print(text)
    return table


def controls_table(results: Path, name: str, stems: list[str]) -> dict[str, dict]:
    """Per run of ``stems``: epoch-by-epoch D real accuracy / feature-matching loss, collapse epoch, last EMA errors."""
    table, lines = (
        {},
        [
            "| run | seed | epochs | D real-image accuracy / feature-matching loss, epoch by epoch | collapse "
            "| EMA test errors (last epoch) |",
            "|---|---|---|---|---|---|",
        ],
    )
    for stem in stems:
        for seed, rows in sorted(read(results, stem).items()):
            curve = ", ".join(f"{r['train/d_real_acc_epoch']:.3f} / {r['train/g_loss_fm_epoch']:.1f}" for r in rows)
            fired = collapse_epoch(rows)
            table[f"{stem}_seed{seed}"] = {"collapse_epoch": fired, "final": rows[-1]["test_errors_ema"]}
            lines.append(
                f"| {stem} | {seed} | {len(rows)} | {curve} | {'none' if fired is None else f'epoch {fired}'} "
                f"| {rows[-1]['test_errors_ema']} |"
            )
    text = "\n".join(lines)
    (results / f"{name}_summary.md").write_text(text + "\n")
    print(text)
    return table


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--stem", default="mnist_ssl_100_n100")
    parser.add_argument("--labels", type=int, nargs="*", help="a table over these label counts instead")
    parser.add_argument("--prefix", default="mnist_ssl_100", help="with --labels: files <prefix>_n<labels>_seed*")
    parser.add_argument("--controls", nargs="+", metavar=("NAME", "STEM"), help="a table of the runs of these stems")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = Path(args.results)
    if args.controls:
        if len(args.controls) < 2:
            parser.error("--controls needs a NAME and at least one STEM")
        return controls_table(results, args.controls[0], args.controls[1:])
    if args.labels:
        return labels_table(results, args.prefix, args.labels)
    runs = read(results, args.stem)
    for x_key, xlabel, suffix in (("epoch", "epoch", "epoch"), ("wall_s", "wall-clock hours", "time")):
        fig, ax = plt.subplots(figsize=(7, 4))
        for seed, rows in runs.items():
            xs = x_values(rows, x_key)
            ax.plot(xs, [r["test_errors_ema"] / 100 for r in rows], label=f"seed {seed} EMA")
            ax.plot(xs, [r["test_errors_raw"] / 100 for r in rows], ls=":", alpha=0.6, label=f"seed {seed} raw")
        ax.axhline(0.93, color="k", ls="--", lw=1, label="paper 0.93 %")
        save_log_plot(fig, ax, xlabel, "MNIST test error (%)", results / f"{args.stem}_error_vs_{suffix}.png")
    final = {seed: rows[-1]["test_errors_ema"] for seed, rows in runs.items()}
    best = {seed: min(r["test_errors_ema"] for r in rows) for seed, rows in runs.items()}
    values = list(final.values())
    summary = {
        "final_ema_errors": final,
        "best_ema_errors": best,
        "epochs": {seed: rows[-1]["epoch"] + 1 for seed, rows in runs.items()},
        "seconds_per_epoch": {
            seed: round(rows[-1]["wall_s"] / (rows[-1]["epoch"] + 1), 1) for seed, rows in runs.items()
        },
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }
    lines = [
        "| seed | epochs | s/epoch | EMA test errors (last epoch, of 10,000) | lowest EMA errors seen |",
        "|---|---|---|---|---|",
        *(
            f"| {s} | {summary['epochs'][s]} | {summary['seconds_per_epoch'][s]} | {final[s]} | {best[s]} |"
            for s in sorted(final)
        ),
        f"| mean +- std | | | {summary['mean']:.0f} +- {summary['std']:.0f} | |",
    ]
    text = "\n".join(lines)
    (results / f"{args.stem}_summary.md").write_text(text + "\n")
    print(text)
    return summary


if __name__ == "__main__":
    main()
