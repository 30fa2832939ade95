from __future__ import annotations

import math
import sqlite3

import pytest
from fastapi.testclient import TestClient

from lightning_gan.turing.app import create_app
from lightning_gan.turing.store import PoolImage, TuringStore

SHAPE = "1,28,28"


@pytest.fixture
def store(tmp_path) -> TuringStore:
    """A pool whose real images are blank (they compress to nothing) and whose generated ones are noisy."""
    real = [PoolImage("real", i % 2, bytes(784)) for i in range(30)]
    fake = [PoolImage("generated", i % 2, bytes((i * 37 + j * 11) % 256 for j in range(784))) for i in range(30)]
    s = TuringStore(tmp_path / "t.sqlite")
    s.add_pool({"image_shape": SHAPE}, real + fake)
    return s


@pytest.fixture
def client(store) -> TestClient:
    return TestClient(create_app(store, trials_per_session=20))


def truth_of(store: TuringStore, token: str) -> str:
    with sqlite3.connect(store.path) as db:
        return db.execute("SELECT truth FROM trials WHERE token = ?", (token,)).fetchone()[0]


def new_session(client: TestClient) -> str:
    response = client.post("/api/sessions")
    assert response.status_code == 201 and response.json()["target"] == 20
    return response.json()["session"]


def next_trial(client: TestClient, session: str) -> dict:
    response = client.post(f"/api/sessions/{session}/next")
    assert response.status_code == 200
    return response.json()


def test_answers_are_stored_with_their_response_times(client, store):
    session = new_session(client)
    answers = ["real", "generated", "generated"]
    tokens = []
    for answer in answers:
        trial = next_trial(client, session)
        assert client.get(trial["image"]).status_code == 200
        r = client.post(f"/api/trials/{trial['token']}/answer", json={"answer": answer, "client_ms": 640.0})
        assert r.status_code == 200 and r.json() == {"answered": len(tokens) + 1, "target": 20, "done": False}
        tokens.append(trial["token"])
    with sqlite3.connect(store.path) as db:
        rows = db.execute("SELECT token, session, answer, client_ms, server_ms FROM judgements").fetchall()
    assert [r[:4] for r in rows] == [(t, session, a, 640.0) for t, a in zip(tokens, answers, strict=True)]
    assert all(r[4] >= 0 for r in rows)


def test_nothing_the_browser_gets_depends_on_the_truth(client, store):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    headers: dict[str, set] = {"real": set(), "generated": set()}
    seen_bodies = set()
    session = new_session(client)
    for _ in range(20):
        trial = next_trial(client, session)
        assert set(trial) == {"token", "image", "answered", "target", "done"}
        assert trial["image"] == f"/api/trials/{trial['token']}/image.png"  # the one-time token, no image id
        image = client.get(trial["image"])
        truth = truth_of(store, trial["token"])
        headers[truth].add(tuple(sorted(image.headers.items())))
        seen_bodies.add(truth)
        assert client.get("/").content == page.content  # the page is the same bytes for every trial
        client.post(f"/api/trials/{trial['token']}/answer", json={"answer": "real"})
    assert seen_bodies == {"real", "generated"}  # both kinds were shown (probability 1 - 2^-19)
    assert len(headers["real"]) == len(headers["generated"]) == 1 and headers["real"] == headers["generated"]
    (only,) = headers["real"]
    names = dict(only)
    assert names["content-type"] == "image/png" and names["cache-control"] == "no-store"
    assert "etag" not in names and "last-modified" not in names and "content-length" in names


def test_a_second_answer_is_refused_and_not_counted(client, store):
    session = new_session(client)
    trial = next_trial(client, session)
    url = f"/api/trials/{trial['token']}/answer"
    assert client.post(url, json={"answer": "real"}).status_code == 200
    replay = client.post(url, json={"answer": "generated"})
    assert replay.status_code == 409 and "first answer stands" in replay.json()["detail"]
    assert store.progress(session).answered == 1
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT answer FROM judgements").fetchall() == [("real",)]


@pytest.mark.parametrize(
    "path, status",
    [
        ("/api/trials/AAAAAAAAAAAAAAAAAAAAAA/answer", 404),  # well formed, unknown
        ("/api/trials/not-a-token/answer", 422),
    ],
)
def test_unknown_and_malformed_tokens(client, path, status):
    assert client.post(path, json={"answer": "real"}).status_code == status
    assert client.get(path.replace("answer", "image.png")).status_code == status


def test_unknown_and_malformed_sessions(client):
    assert client.post(f"/api/sessions/{'0' * 16}/next").status_code == 404
    assert client.post("/api/sessions/XYZ/next").status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"answer": "fake"},
        {"answer": "Real"},
        {"answer": "real", "truth": "real"},
        {"answer": "real", "client_ms": -1},
        {"answer": "real", "client_ms": "soon"},
        [],
    ],
)
def test_bad_bodies_get_422_and_leave_the_trial_open(client, store, body):
    session = new_session(client)
    trial = next_trial(client, session)
    assert client.post(f"/api/trials/{trial['token']}/answer", json=body).status_code == 422
    assert store.progress(session).answered == 0 and next_trial(client, session)["token"] == trial["token"]


def test_a_form_or_text_body_is_not_an_answer(client):
    session = new_session(client)
    url = f"/api/trials/{next_trial(client, session)['token']}/answer"
    assert client.post(url, content='{"answer": "real"}', headers={"content-type": "text/plain"}).status_code == 422
    assert client.post(url, data={"answer": "real"}).status_code == 422
    assert client.post(url, content="{not json", headers={"content-type": "application/json"}).status_code == 422


def answer_session(client: TestClient, store: TuringStore, wrong: int, total: int = 20) -> str:
    """Answer a whole session, the first ``wrong`` trials wrongly."""
    session = new_session(client)
    for i in range(total):
        trial = next_trial(client, session)
        truth = truth_of(store, trial["token"])
        answer = truth if i >= wrong else {"real": "generated", "generated": "real"}[truth]
        assert client.post(f"/api/trials/{trial['token']}/answer", json={"answer": answer}).status_code == 200
    assert next_trial(client, session) == {"done": True, "answered": total, "target": total}
    return session


def test_report_arithmetic_7_wrong_of_20(client, store):
    session = answer_session(client, store, wrong=7)
    report = client.get("/api/report").json()
    z = 1.959963984540054  # 95 %
    p, n = 7 / 20, 20
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    overall = report["overall"]
    assert (overall["wrong"], overall["total"], overall["error_rate"]) == (7, 20, 0.35)
    assert overall["ci_low"] == pytest.approx(centre - half) and overall["ci_high"] == pytest.approx(centre + half)
    assert (round(overall["ci_low"], 3), round(overall["ci_high"], 3)) == (0.181, 0.567)
    assert overall["p_chance"] == pytest.approx(sum(math.comb(20, i) for i in range(8)) / 2**19)
    assert report["by_session"][session]["error_rate"] == 0.35
    assert report["method"] == "Wilson score interval, 95%"
    by_truth = report["by_truth"]
    assert by_truth["real"]["total"] + by_truth["generated"]["total"] == 20
    assert by_truth["real"]["wrong"] + by_truth["generated"]["wrong"] == 7
    page = client.get("/results").text
    assert "<strong id='error-rate'>0.350</strong> (7 wrong of 20)" in page and "[0.181, 0.567]" in page
    assert session in page


def test_report_by_class_and_session_counts_each_judgement_once(client, store):
    first, second = answer_session(client, store, wrong=3), answer_session(client, store, wrong=12)
    with sqlite3.connect(store.path) as db:
        expected = dict.fromkeys(("0", "1"), (0, 0))
        for label, wrong in db.execute("SELECT label, answer != truth FROM judgements"):
            w, t = expected[str(label)]
            expected[str(label)] = (w + wrong, t + 1)
    report = client.get("/api/report").json()
    assert {c: (e["wrong"], e["total"]) for c, e in report["by_class"].items()} == expected
    assert {s: (e["wrong"], e["total"]) for s, e in report["by_session"].items()} == {first: (3, 20), second: (12, 20)}
    assert (report["overall"]["wrong"], report["overall"]["total"]) == (15, 40)


def test_a_session_in_progress_is_not_reported_yet(client, store):
    session = new_session(client)
    trial = next_trial(client, session)
    client.post(f"/api/trials/{trial['token']}/answer", json={"answer": "real"})
    report = client.get("/api/report").json()
    assert report["overall"]["total"] == 0 and report["by_session"] == {}
    assert (report["sessions_in_progress"], report["judgements_in_progress"]) == (1, 1)
    assert "No completed session yet" in client.get("/results").text


def test_an_app_needs_a_pool(tmp_path):
    with pytest.raises(ValueError, match="holds no image pool yet"):
        create_app(TuringStore(tmp_path / "empty.sqlite"))


def test_a_loopback_server_refuses_other_host_names(store):
    client = TestClient(create_app(store, allowed_hosts=["127.0.0.1", "localhost"]), base_url="http://127.0.0.1")
    assert client.get("/").status_code == 200
    assert client.get("/", headers={"host": "attacker.example"}).status_code == 400
