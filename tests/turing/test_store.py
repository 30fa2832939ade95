from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from lightning_gan.turing.store import AlreadyAnswered, PoolImage, TuringStore, UnknownId


def pool(n_real: int = 10, n_fake: int = 10) -> list[PoolImage]:
    real = [PoolImage("real", i % 3, bytes([i] * 4)) for i in range(n_real)]
    fake = [PoolImage("generated", i % 3, bytes([100 + i] * 4)) for i in range(n_fake)]
    return real + fake


@pytest.fixture
def store(tmp_path) -> TuringStore:
    s = TuringStore(tmp_path / "t.sqlite")
    s.add_pool({"image_shape": "1,2,2", "seed": "0"}, pool())
    return s


def truths(store: TuringStore) -> dict[bytes, str]:
    with sqlite3.connect(store.path) as db:
        return dict(db.execute("SELECT pixels, truth FROM images"))


def test_pool_images_get_random_ids_and_keep_truth_and_class(store):
    with sqlite3.connect(store.path) as db:
        rows = db.execute("SELECT id, truth, label FROM images").fetchall()
    assert len(rows) == 20 and len({r[0] for r in rows}) == 20
    assert all(len(r[0]) == 16 and int(r[0], 16) >= 0 for r in rows)
    assert sorted(r[1] for r in rows) == ["generated"] * 10 + ["real"] * 10
    assert store.meta() == {"image_shape": "1,2,2", "seed": "0"} and store.image_shape() == (1, 2, 2)


def test_a_pool_is_stored_once(store):
    with pytest.raises(RuntimeError, match="already holds an image pool"):
        store.add_pool({"image_shape": "1,2,2"}, pool())


def test_a_pool_needs_a_grid_of_each_kind_and_images_of_one_shape(tmp_path):
    with pytest.raises(ValueError, match="2 generated images, fewer than one grid of 4"):
        TuringStore(tmp_path / "a.sqlite", grid=4).add_pool({"image_shape": "1,2,2"}, pool(n_fake=2))
    with pytest.raises(ValueError, match="must have 4 bytes"):
        TuringStore(tmp_path / "b.sqlite").add_pool({"image_shape": "1,2,2"}, [*pool(), PoolImage("real", 0, b"x")])


def test_the_database_folder_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="create it or choose --db"):
        TuringStore(tmp_path / "missing" / "t.sqlite")


def test_each_trial_is_answered_once_and_the_first_answer_stands(store):
    session = store.new_session(target=3)
    trial = store.next_trial(session)
    assert store.answer(trial.token, "real", client_ms=512.5).answered == 1
    with pytest.raises(AlreadyAnswered):
        store.answer(trial.token, "generated")
    with sqlite3.connect(store.path) as db:
        rows = db.execute("SELECT token, answer, client_ms, server_ms, image_ids FROM judgements").fetchall()
    assert len(rows) == 1 and rows[0][:3] == (trial.token, "real", 512.5) and rows[0][3] >= 0
    assert json.loads(rows[0][4]) == list(trial.image_ids)


def test_asking_again_returns_the_open_trial_so_images_cannot_be_skipped(store):
    session = store.new_session(target=5)
    first = store.next_trial(session)
    assert store.next_trial(session).token == first.token
    store.answer(first.token, "generated")
    assert store.next_trial(session).token != first.token


def test_unknown_sessions_and_tokens(store):
    with pytest.raises(UnknownId):
        store.next_trial("0" * 16)
    with pytest.raises(UnknownId):
        store.answer("nope", "real")
    with pytest.raises(UnknownId):
        store.trial_pixels("nope")


def test_a_complete_session_gets_no_more_trials(store):
    session = store.new_session(target=2)
    for _ in range(2):
        store.answer(store.next_trial(session).token, "real")
    assert store.next_trial(session) is None and store.progress(session).done


def test_trials_draw_real_and_generated_evenly_and_show_unseen_images_first(store):
    counts = {"real": 0, "generated": 0}
    pixels_truth = truths(store)
    for _ in range(40):  # 40 sessions of 10: 400 draws
        session = store.new_session(target=10)
        seen = []
        for _ in range(10):
            trial = store.next_trial(session)
            (pixels,) = store.trial_pixels(trial.token)
            counts[pixels_truth[pixels]] += 1
            seen.append(trial.image_ids[0])
            store.answer(trial.token, "real")
        assert len(set(seen)) == 10  # 10 of each kind in the pool: never a repeat within 10 trials
    assert 150 <= counts["real"] <= 250  # Binomial(400, 1/2): outside with probability < 1e-6


@pytest.mark.parametrize("same_class", [True, False])
def test_a_grid_trial_is_all_real_or_all_generated_and_has_a_class_only_if_its_images_share_one(tmp_path, same_class):
    images = [PoolImage(im.truth, 5 if same_class else i, im.pixels) for i, im in enumerate(pool())]
    store = TuringStore(tmp_path / "g.sqlite", grid=4)
    store.add_pool({"image_shape": "1,2,2"}, images)
    pixels_truth = truths(store)
    session = store.new_session(target=20)
    for _ in range(20):
        trial = store.next_trial(session)
        assert len(trial.image_ids) == len(set(trial.image_ids)) == 4
        assert len({pixels_truth[p] for p in store.trial_pixels(trial.token)}) == 1
        store.answer(trial.token, "real")
    labels = {j.label for j in store.judgements()[0]}
    assert labels == ({5} if same_class else {None})


def test_only_complete_sessions_are_counted(store):
    done, busy = store.new_session(target=2), store.new_session(target=3)
    for session, n in ((done, 2), (busy, 1)):
        for _ in range(n):
            store.answer(store.next_trial(session).token, "real")
    judgements, sessions, pending = store.judgements()
    assert {j.session for j in judgements} == {done} and len(judgements) == 2 and (sessions, pending) == (1, 1)
    assert len(store.judgements(include_incomplete=True)[0]) == 3


def test_concurrent_answers_to_one_trial_store_one_judgement(store):
    session = store.new_session(target=2)
    token = store.next_trial(session).token
    outcomes: list[str] = []

    def answer() -> None:
        try:
            store.answer(token, "real")
            outcomes.append("stored")
        except AlreadyAnswered:
            outcomes.append("refused")

    threads = [threading.Thread(target=answer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused"] * 7 + ["stored"] and store.progress(session).answered == 1
