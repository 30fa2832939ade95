"""The pages of the Turing test: one static judging page (HTML, script, style) and the rendered results page.

The judging page is the same bytes for every trial; it learns each trial's token and image URL from the JSON API
(:mod:`lightning_gan.turing.app`), neither of which says anything about the truth. Keys: R or the left arrow for
"real", G or the right arrow for "generated"; held-down keys and answers before the image has loaded are ignored.
"""

from __future__ import annotations

import html

from lightning_gan.turing.report import ErrorRate, Report

__all__ = ["INDEX_HTML", "SCRIPT_JS", "STYLE_CSS", "results_html"]

STYLE_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 44rem; color: #222; text-align: center; }
h1 { font-size: 1.5rem; margin-bottom: 0.25rem; }
#progress { color: #555; margin: 0.5rem 0 1rem; }
#frame { height: 288px; display: flex; align-items: center; justify-content: center; }
#stimulus { width: 280px; image-rendering: pixelated; border: 4px solid #ddd; visibility: hidden; }
body[data-state="ready"] #stimulus { visibility: visible; }
button { font-size: 1.1rem; margin: 1rem 0.5rem; padding: 0.6rem 1.4rem; border-radius: 0.4rem; border: 1px solid #888;
         background: #f4f4f4; cursor: pointer; }
button:disabled { opacity: 0.4; cursor: default; }
kbd { border: 1px solid #aaa; border-radius: 3px; padding: 0 0.3rem; background: #fafafa; font-size: 0.9em; }
.hint { color: #666; font-size: 0.9rem; }
#done, #error { display: none; }
body[data-state="done"] #done { display: block; }
body[data-state="done"] #judge { display: none; }
body[data-state="error"] #error { display: block; color: #a00; }
table { border-collapse: collapse; margin: 0.5rem auto 1.5rem; }
td, th { padding: 0.2rem 0.8rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
"""

INDEX_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Real or generated?</title>
<link rel="stylesheet" href="/style.css">
<script src="/app.js" defer></script>
</head>
<body data-state="loading">
<h1>Real or generated?</h1>
<div id="judge">
  <p id="progress">&nbsp;</p>
  <div id="frame"><img id="stimulus" alt="the image to judge"></div>
  <div>
    <button id="real" disabled>Real <kbd>R</kbd> <kbd>&larr;</kbd></button>
    <button id="generated" disabled>Generated <kbd>G</kbd> <kbd>&rarr;</kbd></button>
  </div>
  <p class="hint">Each image is either real (from the data set) or made by the generator, with even odds;
  a grid is all real or all generated. Answer with the keyboard: <kbd>R</kbd> / <kbd>&larr;</kbd> real,
  <kbd>G</kbd> / <kbd>&rarr;</kbd> generated.</p>
</div>
<div id="done">
  <p id="summary"></p>
  <p><a id="results" href="/results">See the results</a></p>
</div>
<p id="error"></p>
</body>
</html>
"""

SCRIPT_JS = """"use strict";
const KEYS = { r: "real", arrowleft: "real", g: "generated", arrowright: "generated" };
let session = sessionStorage.getItem("turing-session");
let trial = null;
let shownAt = null;

function setState(state) {
  document.body.dataset.state = state;
  for (const id of ["real", "generated"]) document.getElementById(id).disabled = state !== "ready";
}

function fail(message) {
  document.getElementById("error").textContent = message;
  setState("error");
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}),
  });
  if (!response.ok && response.status !== 409) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function newSession() {
  session = (await post("/api/sessions")).session;
  sessionStorage.setItem("turing-session", session);
}

function show(next) {
  if (next.done) {
    document.getElementById("summary").textContent = `Done: you judged ${next.answered} of ${next.target}. Thank you!`;
    setState("done");
    return;
  }
  trial = next;
  shownAt = null;
  setState("loading");
  document.getElementById("progress").textContent = `Image ${next.answered + 1} of ${next.target}`;
  const image = document.getElementById("stimulus");
  image.onload = () => { shownAt = performance.now(); setState("ready"); };
  image.onerror = () => fail("The image could not be loaded; reload the page.");
  image.src = next.image;
}

async function answer(choice) {
  if (document.body.dataset.state !== "ready" || trial === null || shownAt === null) return;
  const clientMs = performance.now() - shownAt;
  setState("loading");
  try {
    await post(`/api/trials/${trial.token}/answer`, { answer: choice, client_ms: clientMs });
    show(await post(`/api/sessions/${session}/next`));
  } catch (err) {
    fail(`Could not save the answer (${err.message}); reload the page.`);
  }
}

async function start() {
  try {
    if (session === null) await newSession();
    let next = await fetch(`/api/sessions/${session}/next`, { method: "POST" });
    if (next.status === 404) {  // the server was restarted on another database
      await newSession();
      next = await fetch(`/api/sessions/${session}/next`, { method: "POST" });
    }
    if (!next.ok) throw new Error(`HTTP ${next.status}`);
    show(await next.json());
  } catch (err) {
    fail(`The server did not answer (${err.message}).`);
  }
}

document.addEventListener("keydown", (event) => {
  if (event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
  const choice = KEYS[event.key.toLowerCase()];
  if (choice) { event.preventDefault(); answer(choice); }
});
document.getElementById("real").addEventListener("click", () => answer("real"));
document.getElementById("generated").addEventListener("click", () => answer("generated"));
start();
"""


def _row(name: str, e: ErrorRate) -> str:
    low, high = e.interval
    rate = "&ndash;" if e.total == 0 else f"{e.rate:.3f}"
    return (
        f"<tr><td>{html.escape(name)}</td><td>{e.total}</td><td>{e.wrong}</td><td>{rate}</td>"
        f"<td>[{low:.3f}, {high:.3f}]</td></tr>"
    )


def _table(title: str, rows: list[str]) -> str:
    head = "<tr><th></th><th>judgements</th><th>wrong</th><th>error rate</th><th>95% CI</th></tr>"
    return f"<h2>{html.escape(title)}</h2><table>{head}{''.join(rows)}</table>"


def results_html(report: Report) -> str:
    """The results page: the human error rate overall, by truth, by class and by session, with Wilson intervals.

    Example:
        >>> from lightning_gan.turing.report import Judgement, summarize
        >>> page = results_html(summarize([Judgement("s1", "real", "generated")]))
        >>> "1.000" in page and "s1" in page
        True
    """
    o = report.overall
    headline = (
        f"Human error rate: <strong id='error-rate'>{o.rate:.3f}</strong> ({o.wrong} wrong of {o.total}), "
        f"{report.confidence:.0%} Wilson score interval [{o.interval[0]:.3f}, {o.interval[1]:.3f}]; exact binomial "
        f"test against chance (0.5): p = {o.p_chance:.3g}."
        if o.total
        else "No completed session yet."
    )
    parts = [
        f"<p>{headline} An error rate of 0.5 means people cannot tell generated images from real ones.</p>",
        f"<p class='hint'>{report.sessions_in_progress} session(s) in progress ({report.judgements_in_progress} "
        "judgements) are not counted until they are complete.</p>",
        _table(
            "By truth",
            [
                _row("real images (called generated)", report.by_truth["real"]),
                _row("generated images (called real)", report.by_truth["generated"]),
            ],
        ),
    ]
    if report.by_class:
        parts.append(
            _table(
                "By class (real: true label; generated: the averaged discriminator's predicted class)",
                [_row(f"class {c}", e) for c, e in sorted(report.by_class.items())],
            )
        )
    if report.by_session:
        parts.append(_table("By session", [_row(s, e) for s, e in report.by_session.items()]))
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Turing test results</title>"
        "<link rel='stylesheet' href='/style.css'></head><body data-state='results'><h1>Turing test results</h1>"
        f"{''.join(parts)}<p><a href='/'>Judge more images</a></p></body></html>"
    )
