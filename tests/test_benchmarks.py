from __future__ import annotations

import importlib.util
import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ssl_throughput_smoke_prints_rss_and_images_per_second_last(capsys):
    result = load("ssl_throughput").main(["--iters", "3", "--warmup", "1", "--synthetic"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"peak_rss_mb=\d+\.\d+", lines[-2])
    assert re.fullmatch(r"images_per_s=\d+\.\d+", lines[-1])
    assert result["images_per_s"] > 0 and result["peak_rss_mb"] > 100


def test_reproduction_plot_summarises_jsonl(tmp_path):
    rows = [
        {
            "seed": s,
            "epoch": e,
            "wall_s": 60.0 * (e + 1),
            "test_errors_raw": 900 - 100 * e - s,
            "test_errors_ema": 800 - 100 * e - s,
        }
        for s in (1, 2)
        for e in range(3)
    ]
    import json

    for s in (1, 2):
        (tmp_path / f"mnist_ssl_100_n100_seed{s}.jsonl").write_text(
            "\n".join(json.dumps(r) for r in rows if r["seed"] == s) + "\n"
        )
    summary = load("plot_reproduction").main(["--results", str(tmp_path), "--stem", "mnist_ssl_100_n100"])
    assert (tmp_path / "mnist_ssl_100_n100_error_vs_epoch.png").is_file()
    assert (tmp_path / "mnist_ssl_100_n100_error_vs_time.png").is_file()
    assert summary["final_ema_errors"] == {1: 599, 2: 598}
    assert summary["mean"] == 598.5
