"""The web app of the visual Turing test (FastAPI): a judging page, a small JSON API and a results page.

==========================================  ===============================================================
``GET /``                                   the judging page (the same bytes for everyone), ``/app.js``, ``/style.css``
``POST /api/sessions``                      open a session: ``{"session": id, "target": trials}``
``POST /api/sessions/{id}/next``            the open trial, else a new one: ``{"token", "image", "answered",
                                            "target", "done": false}``; ``{"done": true, ...}`` when complete
``GET /api/trials/{token}/image.png``       the trial's image (or grid)
``POST /api/trials/{token}/answer``         ``{"answer": "real" | "generated", "client_ms": float}``, once
``GET /results``, ``GET /api/report``       error rates of the completed sessions (HTML, JSON)
==========================================  ===============================================================

Nothing that reaches the browser depends on the truth: ids and tokens are random, every image is a PNG of the same
size and mode with no metadata (:func:`~lightning_gan.turing.images.encode_png`), and every response carries the
same headers (``Cache-Control: no-store``, no ETag or Last-Modified). Malformed ids and bodies get 422, unknown ones
404, a second answer to a trial 409 (and is not stored). Only the database is ever written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware

from lightning_gan.turing.images import grid_png
from lightning_gan.turing.pages import INDEX_HTML, SCRIPT_JS, STYLE_CSS, results_html
from lightning_gan.turing.report import summarize
from lightning_gan.turing.store import AlreadyAnswered, Trial, TuringStore, UnknownId

__all__ = ["Answer", "create_app"]

SessionId = PathParam(pattern=r"^[0-9a-f]{16}$")  # secrets.token_hex(8)
Token = PathParam(pattern=r"^[A-Za-z0-9_-]{22}$")  # secrets.token_urlsafe(16)
SAME_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
}


class Answer(BaseModel):
    """The body of an answer; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    answer: Literal["real", "generated"]
    client_ms: float | None = Field(default=None, ge=0.0, le=3_600_000.0, allow_inf_nan=False)


def _trial_json(trial: Trial) -> dict[str, Any]:
    return {
        "token": trial.token,
        "image": f"/api/trials/{trial.token}/image.png",
        "answered": trial.answered,
        "target": trial.target,
        "done": False,
    }


def create_app(store: TuringStore, trials_per_session: int = 20, allowed_hosts: Sequence[str] | None = None) -> FastAPI:
    """The app serving ``store``'s pool.

    Args:
        store: the database (with its image pool).
        trials_per_session: trials each session answers.
        allowed_hosts: accepted ``Host`` headers (e.g. ``["127.0.0.1", "localhost"]``, against DNS rebinding);
            ``None`` accepts any.

    Example:
        >>> from fastapi.testclient import TestClient
        >>> from lightning_gan.turing.store import PoolImage
        >>> store = TuringStore(":memory:")
        >>> pool = [PoolImage("real", 0, bytes(4)), PoolImage("generated", 0, bytes(4))]
        >>> store.add_pool({"image_shape": "1,2,2"}, pool)
        >>> client = TestClient(create_app(store, trials_per_session=1))
        >>> session = client.post("/api/sessions").json()["session"]
        >>> trial = client.post(f"/api/sessions/{session}/next").json()
        >>> client.get(trial["image"]).headers["content-type"]
        'image/png'
        >>> client.post(f"/api/trials/{trial['token']}/answer", json={"answer": "real"}).json()
        {'answered': 1, 'target': 1, 'done': True}
    """
    if trials_per_session < 1:
        raise ValueError(f"trials_per_session must be >= 1, got {trials_per_session}")
    if "image_shape" not in store.meta():
        raise ValueError(f"{store.path} holds no image pool yet; `python -m lightning_gan turing --ckpt ...` draws one")
    shape = store.image_shape()
    app = FastAPI(title="lightning_gan visual Turing test", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def same_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.update(SAME_HEADERS)
        return response

    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))  # outermost: checked first

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return INDEX_HTML

    @app.get("/app.js")
    def script() -> Response:
        return Response(SCRIPT_JS, media_type="text/javascript")

    @app.get("/style.css")
    def style() -> Response:
        return Response(STYLE_CSS, media_type="text/css")

    @app.post("/api/sessions", status_code=201)
    def new_session() -> dict[str, Any]:
        return {"session": store.new_session(trials_per_session), "target": trials_per_session}

    @app.post("/api/sessions/{session}/next")
    def next_trial(session: str = SessionId) -> dict[str, Any]:
        try:
            trial = store.next_trial(session)
            if trial is None:
                progress = store.progress(session)
                return {"done": True, "answered": progress.answered, "target": progress.target}
        except UnknownId:
            raise HTTPException(404, "unknown session") from None
        return _trial_json(trial)

    @app.get("/api/trials/{token}/image.png")
    def image(token: str = Token) -> Response:
        try:
            pixels = store.trial_pixels(token)
        except UnknownId:
            raise HTTPException(404, "unknown trial") from None
        return Response(grid_png(pixels, shape), media_type="image/png")

    @app.post("/api/trials/{token}/answer")
    def answer(body: Answer, token: str = Token) -> dict[str, Any]:
        try:
            progress = store.answer(token, body.answer, body.client_ms)
        except UnknownId:
            raise HTTPException(404, "unknown trial") from None
        except AlreadyAnswered:
            raise HTTPException(409, "this trial has been answered already; the first answer stands") from None
        return {"answered": progress.answered, "target": progress.target, "done": progress.done}

    def report() -> Any:
        judgements, sessions, pending = store.judgements()
        return summarize(judgements, sessions_in_progress=sessions, judgements_in_progress=pending)

    @app.get("/results", response_class=HTMLResponse)
    def results() -> str:
        return results_html(report())

    @app.get("/api/report")
    def report_json() -> dict[str, Any]:
        return report().as_dict()

    return app
