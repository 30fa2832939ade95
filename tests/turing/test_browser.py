"""End to end in a real headless browser: the CLI's server, the page, ten answers on the keyboard, the results.

Set ``LIGHTNING_GAN_UPDATE_SCREENSHOT=1`` to rewrite ``docs/turing_screenshot.png`` (the README's picture).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from lightning_gan.turing.cli import build_parser, make_server

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # the dev extra is not installed
    sync_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "turing_screenshot.png"
KEYS = {"r": "real", "g": "generated", "ArrowLeft": "real", "ArrowRight": "generated"}

pytestmark = pytest.mark.skipif(
    sync_playwright is None or not CHROMIUM.is_file(),
    reason="no headless browser: needs Debian's chromium at /usr/bin/chromium (apt-get install chromium "
    "chromium-driver) and playwright (pip install -e '.[dev]')",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(gan_ckpt, data_dir, tmp_path):
    """``python -m lightning_gan turing`` as the CLI builds it, served from a thread on a free port."""
    db, port = tmp_path / "turing.sqlite", free_port()
    args = build_parser().parse_args(
        ["--ckpt", str(gan_ckpt), "--real-data", str(data_dir), "--db", str(db), "--port", str(port),
         "--trials", "10", "--pool-real", "40", "--pool-fake", "40"]
    )  # fmt: skip
    uvicorn_server = make_server(args, log_level="warning")
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uvicorn_server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/", db
    uvicorn_server.should_exit = True
    thread.join(timeout=5)


def test_ten_images_judged_on_the_keyboard_then_the_results_page(server):
    url, db = server
    keys = list(KEYS) * 3  # r, g, left, right, r, ...
    image_headers = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 720, "height": 600})
            page.on("response", lambda r: image_headers.append(r.all_headers()) if r.url.endswith(".png") else None)
            page.goto(url)
            assert page.title() == "Real or generated?"
            for i in range(10):
                page.wait_for_selector("body[data-state=ready]", timeout=5000)
                assert page.inner_text("#progress") == f"Image {i + 1} of 10"
                if i == 3 and os.environ.get("LIGHTNING_GAN_UPDATE_SCREENSHOT") == "1":
                    page.screenshot(path=str(SCREENSHOT))
                page.keyboard.press(keys[i])
            page.wait_for_selector("body[data-state=done]", timeout=5000)
            assert page.inner_text("#summary") == "Done: you judged 10 of 10. Thank you!"
            page.click("#results")
            page.wait_for_selector("#error-rate", timeout=5000)
            shown_rate = page.inner_text("#error-rate")
            results = page.inner_text("body")
        finally:
            browser.close()
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT truth, answer, client_ms, server_ms FROM judgements ORDER BY answered_at"
        ).fetchall()
    assert [answer for _, answer, _, _ in rows] == [KEYS[k] for k in keys[:10]]
    assert all(client_ms is not None and client_ms > 0 and server_ms > 0 for _, _, client_ms, server_ms in rows)
    wrong = sum(truth != answer for truth, answer, _, _ in rows)
    assert shown_rate == f"{wrong / 10:.3f}" and f"({wrong} wrong of 10)" in results
    assert len(image_headers) == 10 and all(h == image_headers[0] for h in image_headers)  # real and fake alike
    assert image_headers[0]["content-type"] == "image/png" and "etag" not in image_headers[0]
