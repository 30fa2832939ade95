"""``python -m lightning_gan turing``: serve a visual Turing test of a checkpoint, or print its report.

::

    python -m lightning_gan turing --ckpt runs/.../last.ckpt [--real-data DIR] [--db turing.sqlite]
        [--host 127.0.0.1] [--port 8000] [--grid 1] [--trials 20] [--pool-real 200] [--pool-fake 200] [--seed 0]
    python -m lightning_gan turing report --db turing.sqlite [--json] [--include-incomplete]

The first start draws the image pool (seeded) into the database; later starts on the same database reuse it, and
refuse a different checkpoint or pool setting, so all judgements in one database are about the same images.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from lightning_gan.datamodules import VISION_DATASETS, default_data_dir
from lightning_gan.turing import checkpoint as ckpt
from lightning_gan.turing.app import create_app
from lightning_gan.turing.images import build_pool
from lightning_gan.turing.report import summarize
from lightning_gan.turing.store import TuringStore

__all__ = ["build_parser", "build_report_parser", "main", "make_server", "open_store"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``turing`` (serving); ``turing report`` has its own (:func:`build_report_parser`)."""
    parser = argparse.ArgumentParser(
        prog="python -m lightning_gan turing",
        description="Serve a local web page where people judge real vs generated images (a visual Turing test).",
        epilog="Results: open /results in the browser, or run `python -m lightning_gan turing report --db DB`.",
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint of a lightning_gan GAN or SemiSupervisedGAN run")
    parser.add_argument(
        "--real-data", default=None, help=f"folder holding the real data set (default: {default_data_dir()})"
    )
    parser.add_argument(
        "--dataset", choices=sorted(VISION_DATASETS), help="the real data set (default: the one the checkpoint names)"
    )
    parser.add_argument("--db", default="turing.sqlite", help="SQLite file of the pool and judgements")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument("--grid", type=_positive, default=1, help="images per trial, all real or all generated")
    parser.add_argument("--trials", type=_positive, default=20, help="trials per session")
    parser.add_argument("--pool-real", type=_positive, default=200, help="real test images in the pool")
    parser.add_argument("--pool-fake", type=_positive, default=200, help="generated images in the pool")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pool (real-image choice, generator noise)")
    return parser


def build_report_parser() -> argparse.ArgumentParser:
    """The parser of ``turing report``."""
    parser = argparse.ArgumentParser(
        prog="python -m lightning_gan turing report",
        description="Print the human error rates of a Turing-test database (95% Wilson score intervals).",
    )
    parser.add_argument("--db", default="turing.sqlite", help="SQLite file written by `turing`")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--include-incomplete", action="store_true", help="count sessions that are not complete")
    return parser


def open_store(args: argparse.Namespace) -> TuringStore:
    """The database of ``args.db``, with the pool of ``args.ckpt`` drawn into it on the first start."""
    checkpoint = ckpt.read_checkpoint(args.ckpt)  # a clear error for a missing or foreign file comes first
    ckpt.model_class(checkpoint, args.ckpt)
    dataset = args.dataset or ckpt.infer_dataset(checkpoint)
    if dataset is None:
        raise ValueError(f"{args.ckpt} does not record its data set; pass --dataset")
    wanted = {
        "checkpoint_sha256": ckpt.file_sha256(args.ckpt),
        "dataset": dataset,
        "grid": str(args.grid),
        "pool_real": str(args.pool_real),
        "pool_fake": str(args.pool_fake),
        "seed": str(args.seed),
    }
    store = TuringStore(args.db, grid=args.grid)
    have = store.meta()
    if have:
        changed = {k: (have.get(k), v) for k, v in wanted.items() if have.get(k) != v}
        if changed:
            store.close()
            raise ValueError(
                f"{args.db} holds the image pool of another setting ("
                + ", ".join(f"{k}: {old} there, {new} now" for k, (old, new) in changed.items())
                + "); its judgements are about those images. Pass another --db, or delete the file to start over"
            )
        return store
    model = ckpt.load_model(args.ckpt)
    images, labels = ckpt.load_real_images(dataset, args.real_data or default_data_dir())
    pool = build_pool(model, images, labels, args.pool_real, args.pool_fake, args.seed, ckpt.is_classifier(model))
    shape = ",".join(str(v) for v in images.shape[1:])
    store.add_pool({**wanted, "image_shape": shape, "model": type(model).__name__, "checkpoint": str(args.ckpt)}, pool)
    return store


def make_server(args: argparse.Namespace, log_level: str = "info") -> uvicorn.Server:
    """The uvicorn server of ``turing`` (not started): the app on the database of :func:`open_store`."""
    store = open_store(args)
    hosts = list(LOOPBACK) if args.host in LOOPBACK else None  # a loopback server answers to loopback names only
    app = create_app(store, trials_per_session=args.trials, allowed_hosts=hosts)
    config = uvicorn.Config(
        app, host=args.host, port=args.port, server_header=False, date_header=False, log_level=log_level
    )  # no Server or Date header: nothing in a response varies but the body
    return uvicorn.Server(config)


def serve(args: argparse.Namespace) -> None:
    server = make_server(args)
    if args.host not in LOOPBACK:
        print(f"warning: --host {args.host} makes the page (and its results) reachable from other machines")
    print(f"Turing test of {args.ckpt} on http://{args.host}:{args.port}/ (results: /results, database: {args.db})")
    server.run()


def report(args: argparse.Namespace) -> None:
    if not Path(args.db).is_file():
        raise FileNotFoundError(f"no Turing-test database at {args.db}; pass --db, the file `turing --db` wrote")
    store = TuringStore(args.db)
    try:
        judgements, sessions, pending = store.judgements(include_incomplete=args.include_incomplete)
    finally:
        store.close()
    if args.include_incomplete:  # nothing is left out
        sessions = pending = 0
    result = summarize(judgements, sessions_in_progress=sessions, judgements_in_progress=pending)
    print(json.dumps(result.as_dict(), indent=2) if args.json else result.format())


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``turing`` (serve) or ``turing report`` with ``argv`` (default ``sys.argv[1:]``); errors exit with 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    is_report = bool(argv) and argv[0] == "report"
    parser = build_report_parser() if is_report else build_parser()
    args = parser.parse_args(argv[1:] if is_report else argv)
    try:
        if is_report:
            report(args)
        else:
            serve(args)
    except (OSError, ValueError) as err:  # CheckpointError is a ValueError; missing files are OSErrors
        parser.exit(2, f"{parser.prog}: error: {err}\n")
