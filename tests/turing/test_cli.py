from __future__ import annotations

import json
import sqlite3
import sys

import pytest
import torch

import lightning_gan.cli
from lightning_gan.datamodules import load_vision_dataset
from lightning_gan.turing.checkpoint import load_model
from lightning_gan.turing.cli import build_parser, main, open_store
from lightning_gan.turing.images import to_uint8


def serve_args(ckpt, data_dir, db, *extra: str):
    return build_parser().parse_args(
        ["--ckpt", str(ckpt), "--real-data", str(data_dir), "--db", str(db), "--pool-real", "40", "--pool-fake", "30",
         *extra]
    )  # fmt: skip


def rows(db, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_k_plus_1_pool_real_images_carry_true_labels_and_generated_ones_the_averaged_d_class(
    ssl_ckpt, data_dir, tmp_path
):
    db = tmp_path / "t.sqlite"
    store = open_store(serve_args(ssl_ckpt, data_dir, db, "--seed", "5"))
    meta = store.meta()
    assert (meta["model"], meta["dataset"], meta["image_shape"], meta["seed"]) == (
        "SemiSupervisedGAN",
        "mnist",
        "1,28,28",
        "5",
    )
    images, labels = load_vision_dataset("mnist", data_dir, train=False)
    by_pixels = {to_uint8(x[None], (0, 1)).numpy().tobytes(): int(y) for x, y in zip(images, labels, strict=True)}
    real = rows(db, "SELECT pixels, label FROM images WHERE truth = 'real'")
    assert len(real) == 40 and all(by_pixels[p] == label for p, label in real)
    model = load_model(ssl_ckpt)
    torch.manual_seed(5)
    expected = model(model.sample(30)).argmax(1).tolist()
    assert [
        label for (label,) in rows(db, "SELECT label FROM images WHERE truth = 'generated' ORDER BY rowid")
    ] == expected


def test_a_restart_reuses_the_pool_and_another_setting_is_refused(gan_ckpt, data_dir, tmp_path):
    db = tmp_path / "t.sqlite"
    open_store(serve_args(gan_ckpt, data_dir, db)).close()
    ids = rows(db, "SELECT id FROM images")
    open_store(serve_args(gan_ckpt, tmp_path / "no-data-needed", db)).close()
    assert rows(db, "SELECT id FROM images") == ids and len(ids) == 70
    assert {label for (label,) in rows(db, "SELECT label FROM images WHERE truth = 'generated'")} == {None}
    with pytest.raises(ValueError, match=r"holds the image pool of another setting \(seed: 0 there, 1 now\)"):
        open_store(serve_args(gan_ckpt, data_dir, db, "--seed", "1"))


def test_errors_exit_2_with_the_problem_and_the_fix(gan_ckpt, tmp_path, capsys):
    for argv, message in [
        (["--ckpt", str(tmp_path / "missing.ckpt")], "checkpoint not found"),
        (["--ckpt", str(gan_ckpt), "--real-data", str(tmp_path), "--db", str(tmp_path / "a.sqlite")],
         "Pass --real-data DIR"),
        (["--ckpt", str(gan_ckpt), "--db", str(tmp_path / "none" / "a.sqlite")], "create it or choose --db"),
        (["report", "--db", str(tmp_path / "missing.sqlite")], "no Turing-test database"),
    ]:  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_python_m_lightning_gan_turing_report_dispatches_to_the_turing_cli(tmp_path, monkeypatch, capsys):
    from lightning_gan.turing.store import PoolImage, TuringStore

    db = tmp_path / "t.sqlite"
    store = TuringStore(db)
    store.add_pool({"image_shape": "1,1,1"}, [PoolImage("real", None, b"\0"), PoolImage("generated", None, b"\1")])
    session = store.new_session(target=4)
    for _ in range(4):
        store.answer(store.next_trial(session).token, "real")
    store.close()
    monkeypatch.setattr(sys, "argv", ["lightning-gan", "turing", "report", "--db", str(db)])
    lightning_gan.cli.main()
    text = capsys.readouterr().out
    wrong = rows(db, "SELECT COUNT(*) FROM judgements WHERE truth = 'generated'")[0][0]
    assert f"human error rate: {wrong / 4:.3f} ({wrong}/4)" in text and session in text
    main(["report", "--db", str(db), "--json"])
    assert json.loads(capsys.readouterr().out)["overall"]["wrong"] == wrong
