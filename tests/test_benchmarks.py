from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ssl_throughput_smoke_prints_rss_and_images_per_second_last(capsys, tmp_path, one_thread):
    out = tmp_path / "throughput.json"
    argv = ["--iters", "3", "--warmup", "1", "--synthetic", "--json", str(out), "--peak-repeats", "3"]
    result = load("ssl_throughput").main(argv)
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"peak_rss_mb=\d+\.\d+", lines[-2])
    assert re.fullmatch(r"images_per_s=\d+\.\d+", lines[-1])
    assert result["images_per_s"] > 0 and result["peak_rss_mb"] > 100
    assert any(re.match(r"speedup=\d+\.\d+ \(fast vs straightforward\)", line) for line in lines)
    assert any(re.match(r"speedup_torchvision_data=\d+\.\d+ ", line) for line in lines)
    (run,) = json.loads(out.read_text())["runs"]
    assert set(run["variants"]) == {
        "fast",
        "fast_foreach_adam",
        "straightforward",
        "straightforward_foreach_adam",
        "straightforward_torchvision_data",
    }
    assert run["variants"]["straightforward_torchvision_data"]["data"] == "torchvision"
    assert run["summary"]["speedup_torchvision_data"] > 0 and run["summary"]["speedup_fused_adam"] > 0
    assert run["variants"]["fast"]["optimizer"] == "fused_paper_adam"
    softplus = {name: v["generator_softplus"] for name, v in run["variants"].items()}
    assert softplus["fast"] == "lightning_gan" and softplus["straightforward_torchvision_data"] == "torch"
    flops = {name: v["flops_per_iteration"] for name, v in run["variants"].items()}
    # the paper networks' products: D step 3 x 100 images forward + backward, G step 2 x 100 through D, G 3 x 100
    assert flops["fast"] == flops["fast_foreach_adam"] == 3_759_300_000
    # the straightforward G step also computes D's weight gradients through both feature forwards (5 layers,
    # 1,534,000 weights) and the real images' activation gradients past the first layer (750,000 weights)
    straightforward = 3_759_300_000 + 2 * (2 * 100 * 1_534_000) + 2 * 100 * 750_000
    assert {flops[name] for name in flops if name.startswith("straightforward")} == {straightforward}
    fast = run["variants"]["fast"]
    assert fast["timed_iterations"] == 3 and 0 < fast["fraction_of_peak"] < 1.5
    assert run["summary"]["peak_gflops_per_s"] > 0 and run["settings"]["threads"] == 1
    load("ssl_throughput").main([*argv, "--iters", "1"])  # a second run is appended
    assert len(json.loads(out.read_text())["runs"]) == 2


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
    for s in (1, 2):
        (tmp_path / f"mnist_ssl_100_n100_seed{s}.jsonl").write_text(
            "\n".join(json.dumps(r) for r in rows if r["seed"] == s) + "\n"
        )
    summary = load("plot_reproduction").main(["--results", str(tmp_path), "--stem", "mnist_ssl_100_n100"])
    assert (tmp_path / "mnist_ssl_100_n100_error_vs_epoch.png").is_file()
    assert (tmp_path / "mnist_ssl_100_n100_error_vs_time.png").is_file()
    assert summary["final_ema_errors"] == {1: 599, 2: 598}
    assert summary["mean"] == 598.5


def test_plot_reproduction_labels_table_marks_collapsed_runs(tmp_path):
    def row(seed, epoch, ema, wins):
        acc = 1.0 if wins else 0.8
        return {"seed": seed, "epoch": epoch, "wall_s": 60.0 * (epoch + 1), "test_errors_raw": ema + 10,
                "test_errors_ema": ema, "train/d_real_acc_epoch": acc, "train/d_fake_acc_epoch": acc}  # fmt: skip

    runs = {
        ("n50", 1): [row(1, 0, 3000, False), row(1, 1, 2900, True), row(1, 2, 3100, True), row(1, 3, 3200, True)],
        ("n200", 1): [row(1, e, 500 - 100 * e, False) for e in range(4)],
        ("n200", 2): [row(2, e, 520 - 100 * e, False) for e in range(3)],
    }
    for (stem, seed), rows in runs.items():
        (tmp_path / f"mnist_ssl_100_{stem}_seed{seed}.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    table = load("plot_reproduction").main(["--results", str(tmp_path), "--labels", "20", "50", "200"])
    assert sorted(table) == [50, 200]  # no 20-label files: no row
    assert table[50]["collapse_epoch"] == {1: 2} and table[200]["collapse_epoch"] == {1: None, 2: None}
    assert table[200]["final"] == {1: 200, 2: 320} and table[200]["epochs"] == [3, 4]
    text = (tmp_path / "mnist_ssl_100_labels_summary.md").read_text()
    assert "| 50 | 1 | 4 | 0.1 | 3200 | 3200 +- 0 | 221 +- 136 | seed 1: epoch 2 |" in text  # 240 s: 0.07 h
    assert "| 200 | 1, 2 | 3-4 | 0.1, 0.1 | 200, 320 | 260 +- 85 | 90 +- 4.2 | none |" in text
    assert table[200]["hours"] == {1: pytest.approx(240 / 3600), 2: pytest.approx(180 / 3600)}
    assert (tmp_path / "mnist_ssl_100_labels_error_vs_epoch.png").is_file()
    assert (tmp_path / "mnist_ssl_100_labels_error_vs_time.png").is_file()


def test_torchvision_baseline_reads_the_same_batches_as_the_in_memory_module(tmp_path):
    from lightning.pytorch import seed_everything

    from lightning_gan.datamodules import SemiSupervisedMNIST
    from tests.fake_datasets import write_mnist_like

    write_mnist_like(tmp_path, n_train=300, n_test=10)
    baseline = load("ssl_throughput").TorchvisionMNIST
    batches = []
    for module in (SemiSupervisedMNIST, baseline):
        dm = module(data_dir=str(tmp_path), num_labelled=20, val_size=0, batch_size=50)
        dm.setup("fit")
        seed_everything(3)
        batches.append(next(iter(dm.train_dataloader()))[0])
    ours, theirs = batches
    assert torch.equal(ours["labelled"][0], theirs["labelled"][0])
    assert torch.equal(ours["labelled"][1], theirs["labelled"][1])
    assert torch.equal(ours["unlabelled"], theirs["unlabelled"])
    assert torch.equal(ours["unlabelled_g"], theirs["unlabelled_g"])


def test_feature_probe_scores_a_checkpoint(tmp_path, monkeypatch):
    from lightning.pytorch import Trainer, seed_everything

    from lightning_gan.datamodules import SemiSupervisedMNIST
    from lightning_gan.models import SemiSupervisedGAN
    from lightning_gan.networks import MNISTDiscriminator, MNISTGenerator
    from tests.fake_datasets import write_mnist_like

    write_mnist_like(tmp_path, n_train=300, n_test=40)
    monkeypatch.setenv("LIGHTNING_GAN_DATA", str(tmp_path))  # --data-dir sets it too: restored after the test
    seed_everything(0)
    dm = SemiSupervisedMNIST(data_dir=str(tmp_path), num_labelled=20, label_seed=2, val_size=50, batch_size=20)
    model = SemiSupervisedGAN(MNISTGenerator(noise_dim=8), MNISTDiscriminator())
    trainer = Trainer(max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, datamodule=dm)
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    argv = [str(tmp_path / "run.ckpt"), "--num-labelled", "20", "--label-seed", "2", "--val-size", "50"]
    result = load("feature_probe").main([*argv, "--probe-size", "100", "--data-dir", str(tmp_path)])
    assert result["test_total"] == 40 and result["epoch"] == trainer.current_epoch
    for key in (
        "test_errors",
        "nearest_labelled_feature_errors",
        "nearest_labelled_pixel_errors",
        "linear_probe_errors",
    ):
        assert 0 <= result[key] <= 40
    # the run's own classifier is what the model's EMA discriminator predicts
    images, labels = dm.load_images(train=False)
    assert result["test_errors"] == int((model.eval()(images).argmax(1) != labels).sum())


def test_linear_probe_separates_separable_features():
    probe_module = load("feature_probe")
    torch.manual_seed(0)
    labels = torch.arange(3).repeat(50)
    features = torch.randn(150, 4) * 0.1 + 5.0 * torch.nn.functional.one_hot(labels, 4).float()  # 3 clusters
    probe = probe_module.linear_probe(features, labels, num_classes=3)
    assert torch.equal(probe(features).argmax(1), labels)
    keys, key_labels = features[:3], labels[:3]
    assert torch.equal(probe_module.nearest_labels(features, keys, key_labels), labels)


def test_diffaugment_update_adds_runs_and_keeps_the_others(tmp_path, monkeypatch, one_thread):
    from tests.fake_datasets import write_mnist_like

    write_mnist_like(tmp_path, n_train=1300, n_test=120)
    monkeypatch.setenv("LIGHTNING_GAN_DATA", str(tmp_path))  # --data-dir sets it too: restored after the test
    out = tmp_path / "diffaugment.json"
    common = ["--quick", "--augment", "none", "--data-dir", str(tmp_path), "--json", str(out)]
    first = load("diffaugment").main([*common, "--fractions", "0.2"])
    second = load("diffaugment").main([*common, "--fractions", "0.1", "--update"])
    assert [(r["fraction"], r["augment"]) for r in second["runs"]] == [(0.1, "none"), (0.2, "none")]
    assert second["runs"][1] == first["runs"][0]  # kept as measured, with the command that measured it
    assert "--fractions 0.2" in second["runs"][1]["command"] and "--update" in second["runs"][0]["command"]
    text = "\n".join(load("report").diffaugment_section(second, tmp_path, tmp_path))
    assert "Commands (a later one measured or re-measured some runs with `--update`):" in text
    assert "`10 % none`" in text and "`20 % none`" in text
    with pytest.raises(SystemExit, match="other settings \\(threads\\)"):  # runs of other settings do not mix
        load("diffaugment").main([*common, "--fractions", "0.1", "--update", "--threads", "2"])


def test_ablations_update_replaces_only_the_variants_it_runs(tmp_path, monkeypatch, one_thread):
    from tests.fake_datasets import write_mnist_like

    write_mnist_like(tmp_path, n_train=1300, n_test=120)
    monkeypatch.setenv("LIGHTNING_GAN_DATA", str(tmp_path))  # --data-dir sets it too: restored after the test
    out = tmp_path / "ablations.json"
    common = ["--quick", "--data-dir", str(tmp_path), "--json", str(out)]
    first = load("ablations").main([*common, "--variants", "fm_minus_fm", "fm"])
    second = load("ablations").main([*common, "--variants", "fm", "--update"])
    assert [r["variant"] for r in second["runs"]] == ["fm", "fm_minus_fm"]  # in the order of VARIANTS
    assert second["runs"][1] == {**first["runs"][0], "command": first["command"]}  # kept as measured
    assert "--update" in second["runs"][0]["command"]
