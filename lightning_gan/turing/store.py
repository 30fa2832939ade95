"""The SQLite database of a visual Turing test: the image pool, sessions, served trials and judgements.

Everything the web app remembers lives in one file (stdlib ``sqlite3``), so an experiment survives restarts and
the app writes nowhere else. Images, sessions and trials are known to the outside only by random ids
(``secrets``); which images are real exists only in the ``images`` table and never leaves the server.

A trial is one presentation: one image (or a grid of ``grid`` images of the same truth), drawn real or generated
with probability 1/2, answered at most once. Its random token is a one-time ticket: the first answer is stored,
any further one is refused (:class:`AlreadyAnswered`), and a session asking for its next trial gets its open
trial again rather than a fresh draw, so reloading the page cannot skip a hard image.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from random import SystemRandom

from lightning_gan.turing.report import ANSWERS, Judgement

__all__ = ["AlreadyAnswered", "PoolImage", "Progress", "Trial", "TuringStore", "UnknownId"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    truth TEXT NOT NULL CHECK (truth IN ('real', 'generated')),
    label INTEGER,                     -- real: true class; generated: the averaged D's predicted class (K+1)
    pixels BLOB NOT NULL               -- uint8 [C, H, W], C-contiguous; the shape is meta 'image_shape'
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    target INTEGER NOT NULL,           -- trials to answer
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    token TEXT PRIMARY KEY,
    session TEXT NOT NULL REFERENCES sessions (id),
    truth TEXT NOT NULL,
    label INTEGER,                     -- the images' common class, NULL if unknown or mixed
    image_ids TEXT NOT NULL,           -- JSON list
    served_at REAL NOT NULL,
    shown_at REAL,                     -- first time its image was fetched
    answered_at REAL
);
CREATE TABLE IF NOT EXISTS judgements (
    token TEXT PRIMARY KEY REFERENCES trials (token),   -- one judgement per trial, enforced twice
    session TEXT NOT NULL,
    image_ids TEXT NOT NULL,
    truth TEXT NOT NULL,
    label INTEGER,
    answer TEXT NOT NULL CHECK (answer IN ('real', 'generated')),
    client_ms REAL,                    -- image load to key press, measured by the page
    server_ms REAL NOT NULL,           -- image fetch (else trial served) to answer received
    answered_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS trials_by_session ON trials (session);
"""


class UnknownId(KeyError):
    """A session id or trial token that the database does not hold."""


class AlreadyAnswered(Exception):
    """A second answer to a trial: the first one stands."""


@dataclass(frozen=True)
class PoolImage:
    """One image of the pool: its truth, class (or ``None``) and uint8 ``[C, H, W]`` pixels as bytes."""

    truth: str
    label: int | None
    pixels: bytes


@dataclass(frozen=True)
class Trial:
    """A served trial; only ``token`` and the counts are ever shown to the participant."""

    token: str
    session: str
    image_ids: tuple[str, ...]
    answered: int
    target: int


@dataclass(frozen=True)
class Progress:
    """How far a session has got."""

    answered: int
    target: int

    @property
    def done(self) -> bool:
        return self.answered >= self.target


class TuringStore:
    """A Turing-test database at ``path`` (``":memory:"`` for a throwaway one); safe to share between threads.

    Args:
        path: the SQLite file; it is created with its tables if missing, its folder must exist.
        grid: images per trial.

    Example:
        >>> store = TuringStore(":memory:")
        >>> pool = [PoolImage("real", 3, bytes([0])), PoolImage("generated", 3, bytes([9]))]   # two 1 x 1 images
        >>> store.add_pool({"image_shape": "1,1,1"}, pool)
        >>> session = store.new_session(target=1)
        >>> trial = store.next_trial(session)
        >>> store.answer(trial.token, "real", client_ms=800.0)
        Progress(answered=1, target=1)
        >>> store.next_trial(session) is None   # the session is complete
        True
    """

    def __init__(self, path: str | Path, grid: int = 1) -> None:
        if grid < 1:
            raise ValueError(f"grid (images per trial) must be >= 1, got {grid}")
        if str(path) != ":memory:" and not Path(path).parent.is_dir():
            raise FileNotFoundError(f"the folder of the database {path} does not exist; create it or choose --db")
        self.path = str(path)
        self.grid = grid
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)  # explicit transactions
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.executescript(SCHEMA)
        self._random = SystemRandom()  # the 50/50 draws and image choices are not reproducible by participants

    def close(self) -> None:
        self._db.close()

    # ----- the pool ----------------------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        """What the pool was made from (checkpoint hash, seed, sizes, image shape); empty before :meth:`add_pool`."""
        with self._lock:
            return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def add_pool(self, meta: dict[str, str], images: Sequence[PoolImage]) -> None:
        """Store the pool once, each image under a fresh random id; ``meta`` must give ``image_shape`` ("C,H,W")."""
        shape = [int(v) for v in meta["image_shape"].split(",")]
        size = shape[0] * shape[1] * shape[2]
        for truth in ANSWERS:
            have = sum(im.truth == truth for im in images)
            if have < self.grid:
                raise ValueError(f"the pool has {have} {truth} images, fewer than one grid of {self.grid}")
        for im in images:
            if len(im.pixels) != size:
                raise ValueError(f"every pool image must have {size} bytes (shape {shape}), got {len(im.pixels)}")
        with self._lock, self._db:
            self._db.execute("BEGIN")
            if self._db.execute("SELECT COUNT(*) FROM images").fetchone()[0]:
                raise RuntimeError(f"{self.path} already holds an image pool")
            self._db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
            self._db.executemany(
                "INSERT INTO images VALUES (?, ?, ?, ?)",
                [(secrets.token_hex(8), im.truth, im.label, im.pixels) for im in images],
            )

    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = (int(v) for v in self.meta()["image_shape"].split(","))
        return c, h, w

    # ----- sessions and trials -----------------------------------------------------------------------------------
    def new_session(self, target: int) -> str:
        """Open a session of ``target`` trials and return its random id."""
        if target < 1:
            raise ValueError(f"a session needs at least one trial, got target={target}")
        session = secrets.token_hex(8)
        with self._lock, self._db:
            self._db.execute("INSERT INTO sessions VALUES (?, ?, ?)", (session, target, time.time()))
        return session

    def _progress(self, session: str) -> Progress:
        row = self._db.execute("SELECT target FROM sessions WHERE id = ?", (session,)).fetchone()
        if row is None:
            raise UnknownId(session)
        (answered,) = self._db.execute("SELECT COUNT(*) FROM judgements WHERE session = ?", (session,)).fetchone()
        return Progress(answered, row[0])

    def progress(self, session: str) -> Progress:
        with self._lock:
            return self._progress(session)

    def next_trial(self, session: str) -> Trial | None:
        """The session's open trial, else a new one drawn 50/50 real or generated; ``None`` once it is complete.

        A new trial shows images the session has not seen yet where the pool allows it.
        """
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            progress = self._progress(session)
            if progress.done:
                return None
            open_trial = self._db.execute(
                "SELECT token, image_ids FROM trials WHERE session = ? AND answered_at IS NULL", (session,)
            ).fetchone()
            if open_trial is not None:
                token, ids = open_trial[0], tuple(json.loads(open_trial[1]))
                return Trial(token, session, ids, progress.answered, progress.target)
            truth = self._random.choice(ANSWERS)
            seen = {
                i for (ids,) in self._db.execute("SELECT image_ids FROM trials WHERE session = ?", (session,))
                for i in json.loads(ids)
            }  # fmt: skip
            rows = self._db.execute("SELECT id, label FROM images WHERE truth = ?", (truth,)).fetchall()
            unseen = [r for r in rows if r[0] not in seen]
            chosen = self._random.sample(unseen if len(unseen) >= self.grid else rows, self.grid)
            labels = {label for _, label in chosen}
            label = labels.pop() if len(labels) == 1 else None
            token = secrets.token_urlsafe(16)
            ids = tuple(i for i, _ in chosen)
            self._db.execute(
                "INSERT INTO trials (token, session, truth, label, image_ids, served_at) VALUES (?, ?, ?, ?, ?, ?)",
                (token, session, truth, label, json.dumps(ids), time.time()),
            )
            return Trial(token, session, ids, progress.answered, progress.target)

    def trial_pixels(self, token: str) -> list[bytes]:
        """The pixels of a trial's images, in order; the first call records when the trial was shown."""
        with self._lock, self._db:
            row = self._db.execute("SELECT image_ids FROM trials WHERE token = ?", (token,)).fetchone()
            if row is None:
                raise UnknownId(token)
            now = time.time()
            self._db.execute("UPDATE trials SET shown_at = ? WHERE token = ? AND shown_at IS NULL", (now, token))
            ids = json.loads(row[0])
            pixels = dict(
                self._db.execute(f"SELECT id, pixels FROM images WHERE id IN ({', '.join('?' * len(ids))})", ids)
            )
        return [pixels[i] for i in ids]

    def answer(self, token: str, answer: str, client_ms: float | None = None) -> Progress:
        """Record the one answer of trial ``token``; another raises :class:`AlreadyAnswered` and changes nothing."""
        if answer not in ANSWERS:
            raise ValueError(f"answer must be one of {ANSWERS}, got {answer!r}")
        now = time.time()
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                "SELECT session, truth, label, image_ids, served_at, shown_at, answered_at FROM trials WHERE token = ?",
                (token,),
            ).fetchone()
            if row is None:
                raise UnknownId(token)
            session, truth, label, image_ids, served_at, shown_at, answered_at = row
            if answered_at is not None:
                raise AlreadyAnswered(token)
            self._db.execute("UPDATE trials SET answered_at = ? WHERE token = ?", (now, token))
            server_ms = 1000.0 * (now - (shown_at or served_at))
            self._db.execute(
                "INSERT INTO judgements VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (token, session, image_ids, truth, label, answer, client_ms, server_ms, now),
            )
            return self._progress(session)

    # ----- results -----------------------------------------------------------------------------------------------
    def judgements(self, include_incomplete: bool = False) -> tuple[list[Judgement], int, int]:
        """``(judgements, sessions in progress, their judgements)``; by default only completed sessions count.

        Counting a session only once it is complete keeps a participant from reading, off a live results page,
        whether each single answer was right.
        """
        with self._lock:
            rows = self._db.execute(
                """SELECT j.session, j.truth, j.answer, j.label,
                          (SELECT COUNT(*) FROM judgements k WHERE k.session = j.session) >= s.target
                   FROM judgements j JOIN sessions s ON s.id = j.session ORDER BY j.answered_at"""
            ).fetchall()
        counted = [Judgement(s, t, a, lab) for s, t, a, lab, complete in rows if complete or include_incomplete]
        in_progress = [s for s, _, _, _, complete in rows if not complete]
        return counted, len(set(in_progress)), len(in_progress)
