"""The benchmark report's smoke run: every benchmark runs, and BENCHMARKS.md shows exactly the numbers of its files."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.test_benchmarks import load


def tables_of(text: str, section: str) -> list[list[list[str]]]:
    """The tables of ``section`` (from its ``## `` heading to the next): each a list of rows of cells, no header."""
    body = text.split(section, 1)[1].split("\n## ", 1)[0]
    tables, current = [], []
    for line in [*body.splitlines(), ""]:
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif current:
            tables.append(current[2:])  # header and |---| separator
            current = []
    return tables


@pytest.fixture
def restored_env(monkeypatch):
    """The report points the library at its data through the environment: give the variables back afterwards."""
    for name in ("LIGHTNING_GAN_DATA", "OMP_NUM_THREADS"):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    yield


def test_quick_report_runs_every_benchmark_and_shows_the_numbers_of_its_files(tmp_path, one_thread, restored_env):
    text = load("report").main(["--quick", "--synthetic", "--out-dir", str(tmp_path), "--threads", "1"])
    report = (tmp_path / "BENCHMARKS.md").read_text()
    assert report == text
    results = tmp_path / "results"
    pngs = ("memory.png", "ablations.png", "diffaugment.png", "report_accuracy_mnist_ssl_quick.png")
    for png in (*pngs, "report_accuracy_mnist_ssl_quick_vs_time.png", "ssl_throughput.png"):
        assert (results / png).is_file(), png
        assert f"(results/{png})" in report, png

    speed = json.loads((results / "ssl_throughput.json").read_text())["runs"][-1]
    (row,), profile = tables_of(report, "## 1. Speed")
    assert row[3] == "fused"  # the fast path's Adam
    assert row[4] == f"{speed['variants']['fast']['ms_per_iteration_median']:.1f}"
    assert row[6] == "D's too"  # the straightforward G step back-propagates into D (more FLOPs than the fast one)
    assert row[7] == f"{speed['summary']['speedup']:.2f}x"
    plain_data = speed["variants"]["straightforward_torchvision_data"]
    assert row[8] == f"{plain_data['ms_per_iteration_median']:.1f}"
    assert row[9] == f"{speed['summary']['speedup_torchvision_data']:.2f}x"
    best = max(speed["summary"]["speedup"], speed["summary"]["speedup_torchvision_data"])
    assert row[-1] == load("report").goal_verdict(speed["variants"]["fast"]["fraction_of_peak"], best)
    assert [r[0] for r in profile] == list(speed["variants"])  # where the time goes, per variant
    for r in profile:  # the groups add up to the profiled total of the variant
        total = speed["variants"][r[0]]["profile_total_ms_per_iteration"]
        assert r[1] == f"{total:.1f}" and sum(map(float, r[2:])) == pytest.approx(total, abs=0.3)
        assert float(r[2]) > 0  # matrix products were seen

    memory = json.loads((results / "memory.json").read_text())
    training, metrics = tables_of(report, "## 2. Memory")
    assert [(r[0], r[4]) for r in training] == [
        (str(m["batch_size"]), f"{m['peak_rss_mib']:.0f}") for m in memory["training"]
    ]
    assert [(r[0], r[4]) for r in metrics] == [
        (str(m["num_samples"]), f"{m['first_peak_rss_mib']:.0f}") for m in memory["metrics"]
    ]
    assert memory["command"].startswith("python benchmarks/memory.py --quick") and memory["command"] in report
    assert memory["machine"]["torch"] in report and memory["machine"]["lightning"] in report

    (line,) = (results / "mnist_ssl_quick_n100_seed1.jsonl").read_text().splitlines()
    ((accuracy,),) = tables_of(report, "## 3. Accuracy")
    recorded = json.loads(line)
    assert accuracy[:4] == ["100", "`mnist_ssl_quick`", "1", "1"]
    assert accuracy[4:6] == [f"{recorded['wall_s'] / 3600:.1f}", str(recorded["test_errors_ema"])]
    assert accuracy[7] == "93 +- 6.5"

    ablations = json.loads((results / "ablations.json").read_text())
    (rows,) = tables_of(report, "## 4. Ablations")
    shown = {r[0].strip("`"): r for r in rows}
    assert set(shown) == {"full", "minus_mbf", "minus_ha", "minus_ls", "minus_vbn_plus_bn", "fm", "fm_minus_fm"}
    for run in ablations["runs"]:
        row = shown[run["variant"]]
        assert row[5] == str(run["test_errors_ema"]) and row[7] == f"{run['metrics/fid']:.2f}"
        assert re.fullmatch(rf"{run['metrics/is_mean']:.2f} \+- {run['metrics/is_std']:.2f}", row[8])

    diffaugment = json.loads((results / "diffaugment.json").read_text())
    (rows,) = tables_of(report, "## 5. DiffAugment")
    shown = {(r[0], r[2]): r for r in rows}
    assert len(shown) == len(diffaugment["runs"]) == 6
    for run in diffaugment["runs"]:
        row = shown[(f"{100 * run['fraction']:g} %", run["augment"])]
        assert row[5] == f"{run['metrics/fid']:.2f}" and row[3] == str(run["iterations"]) == "3"
    images = {run["fraction"]: run["train_images"] for run in diffaugment["runs"]}
    assert images[0.1] < images[0.2] < images[1.0]


def test_the_speed_goal_verdict_names_what_falls_short():
    verdict = load("report").goal_verdict
    assert verdict(0.53, 1.36) == "not met: 1.36x"
    assert verdict(0.37, 1.68) == "not met: 37 % of peak"
    assert verdict(0.49, 1.2) == "not met: 49 % of peak, 1.20x"
    assert verdict(0.5, 1.5) == "met"


def test_report_without_results_says_what_to_run(tmp_path):
    text = load("report").main(["--results", str(tmp_path), "--out", str(tmp_path / "B.md")])
    for section in ("## 1. Speed", "## 2. Memory", "## 3. Accuracy", "## 4. Ablations", "## 5. DiffAugment"):
        assert section in text
    assert text.count("yet") == 5
