"""The live dashboard, served by the gateway.

``/dashboard``: every face seen in the last two minutes, each with live timelines of the 7
emotions and the Mojo cues, its engagement phase and interaction status, refreshed every second
from ``/api/live``. ``/dashboard/session/<id>``: one session's history, per second, from
PostgreSQL (``/api/sessions/<id>/series``). Charts are Plotly's, served from the installed
``plotly`` package: nothing is loaded from the network.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from infra.settings import Settings
from schemas import FaceResult
from schemas.vocabulary import CUES, EMOTIONS
from sinks.gateway.auth import DASHBOARD_COOKIE as COOKIE
from sinks.gateway.auth import ApiKey, AuthError, issue_dashboard_session
from sinks.store import queries
from sinks.store.db import connect

KEEP_S = 120.0
POINTS = 1800  # per face: a minute at 30 Hz


class LiveBuffer:
    """Recent results per face, as compact points for the charts."""

    def __init__(self) -> None:
        self.faces: dict[str, dict[str, Any]] = {}

    def add(self, r: FaceResult) -> None:
        face = self.faces.get(r.face_key)
        if face is None:
            face = self.faces[r.face_key] = {"face_key": r.face_key, "session_id": r.session_id,
                                              "device_id": r.device_id, "points": deque(maxlen=POINTS)}
        face["seen"] = time.monotonic()
        face["points"].append({"t": r.capture_ms, **{c: round(getattr(r, c), 3) for c in CUES},
                               **{e: round(p, 3) for e, p in zip(EMOTIONS, r.emotions)},
                               "phase": r.engagement_phase, "status": r.interaction_status})

    def devices_of(self, session_id: str) -> set[str]:
        """The devices of the faces of ``session_id`` held here (empty if none)."""
        return {f["device_id"] for f in self.faces.values() if f["session_id"] == session_id}

    def snapshot(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        for key in [k for k, f in self.faces.items() if now - f["seen"] > KEEP_S]:
            del self.faces[key]
        return [{**{k: v for k, v in f.items() if k not in ("points", "seen")}, "points": list(f["points"])}
                for f in self.faces.values()]


def _series(url: str, session_id: str, tenant: str | None) -> list[dict[str, Any]]:
    with connect(url) as conn:
        return queries.series(conn, session_id, tenant=tenant)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>facestream: {title}</title>
<script src="/dashboard/static/plotly.min.js"></script>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
 .face {{ border: 1px solid #ddd; border-radius: 8px; padding: .8rem; margin-bottom: 1rem; }}
 .state {{ font-size: 1.1rem; margin: .3rem 0; }} .state b {{ color: #0a58ca; }}
 .chart {{ height: 260px; }} .empty {{ color: #777; }}
</style></head><body>
<h1>{heading}</h1><p class="empty" id="status">waiting for data...</p><div id="faces"></div>
<script>
const EMOTIONS = {emotions}, CUES = {cues}, SOURCE = "{source}", LIVE = {live};
function box(f) {{
  let el = document.getElementById("face-" + f.face_key);
  if (!el) {{
    el = document.createElement("div"); el.className = "face"; el.id = "face-" + f.face_key;
    el.innerHTML = `<h2>${{f.face_key}} <small>${{f.device_id || ""}}</small>
      <a href="/dashboard/session/${{encodeURIComponent(f.session_id)}}">history</a></h2>
      <div class="state"></div><div class="chart emotions"></div><div class="chart cues"></div>`;
    document.getElementById("faces").appendChild(el);
  }}
  return el;
}}
function draw(f) {{
  const el = box(f), p = f.points, x = p.map(q => new Date(q.t)), last = p[p.length - 1];
  el.querySelector(".state").innerHTML = `engagement phase <b class="phase">${{last.phase}}</b>,
    interaction status <b class="status">${{last.status}}</b>, ${{p.length}} points`;
  const layout = (t) => ({{title: t, margin: {{t: 30, b: 30, l: 40, r: 10}}, yaxis: {{range: [0, 1]}}}});
  Plotly.react(el.querySelector(".emotions"), EMOTIONS.map(e => ({{x, y: p.map(q => q[e]), name: e, mode: "lines"}})),
               layout("7 emotions"), {{displayModeBar: false}});
  Plotly.react(el.querySelector(".cues"), CUES.map(c => ({{x, y: p.map(q => q[c]), name: c, mode: "lines"}})),
               layout("Mojo cues"), {{displayModeBar: false}});
  el.dataset.points = p.length;
}}
async function refresh() {{
  try {{
    const data = await (await fetch(SOURCE)).json();
    const faces = LIVE ? data : Object.values(data.reduce((m, r) => {{
      (m[r.face_key] = m[r.face_key] || {{face_key: r.face_key, session_id: "{title}", points: []}}).points.push(r);
      return m; }}, {{}}));
    document.getElementById("status").textContent = faces.length ? `${{faces.length}} face(s)` : "no faces yet";
    faces.forEach(draw);
  }} catch (e) {{ document.getElementById("status").textContent = "error: " + e; }}
  if (LIVE) setTimeout(refresh, 1000);
}}
refresh();
</script></body></html>"""


LOGIN = """<!doctype html><html><head><meta charset="utf-8"><title>facestream: sign in</title>
<style>body{{font-family:sans-serif;margin:4em auto;max-width:28em}} input{{width:100%;padding:.4em}}
.error{{color:#b00}}</style></head><body>
<h1>facestream dashboard</h1>
<p>The dashboard shows people's expressions: sign in with an API key that may read
(<code>facestream keys create NAME --scope read</code>).</p>
<form method="post" action="/dashboard/login">
<label>API key <input name="key" type="password" autocomplete="off" autofocus></label>
<p><button type="submit">Sign in</button></p></form>
<p class="error">{error}</p></body></html>"""


def make_router(database_url: str, live: Callable[[ApiKey], Awaitable[list[dict[str, Any]]]],
                viewer: Callable[[Request], Awaitable[ApiKey]], sign_in: Callable[[Request, str], Awaitable[ApiKey]],
                settings: Settings) -> APIRouter:
    """The dashboard and the live and history APIs. Every route but the sign-in page needs
    ``viewer(request)`` to accept the caller (a ``read`` key, or the session cookie the sign-in
    sets); pages redirect to the sign-in page, APIs answer 401/403. Each key sees only its
    tenant's faces (``key.sees``): ``live(key)`` gives them from the live buffer, the history
    filters the store; another tenant's session is answered 404, as an unknown one.
    ``sign_in(request, key)`` returns the key typed into the sign-in form, or raises AuthError."""
    router = APIRouter()
    import json

    plotly_js = resources.files("plotly").joinpath("package_data", "plotly.min.js")

    async def signed_in(request: Request) -> bool:
        try:
            await viewer(request)
            return True
        except AuthError:
            return False

    def to_login() -> RedirectResponse:
        return RedirectResponse("/dashboard/login", status_code=303)

    @router.get("/dashboard/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_page(failed: str | None = None) -> HTMLResponse:
        error = {"missing": "Enter an API key.", "forbidden": "That key may not read: it needs the read scope."}.get(
            failed or "", "That key was not accepted (unknown, revoked or expired)." if failed else "")
        return HTMLResponse(LOGIN.format(error=error), status_code=401 if failed else 200)

    @router.post("/dashboard/login", include_in_schema=False)
    async def login(request: Request) -> RedirectResponse:
        form = await request.form()
        key_text = str(form.get("key") or "")
        try:
            key = await sign_in(request, key_text)
        except AuthError as exc:  # the reason goes in the URL, never the key
            return RedirectResponse(f"/dashboard/login?failed={exc.reason}", status_code=303)
        response = RedirectResponse("/dashboard", status_code=303)
        response.set_cookie(COOKIE, issue_dashboard_session(settings, key, settings.dashboard_session_s),
                            max_age=settings.dashboard_session_s, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
        return response

    @router.post("/dashboard/logout", include_in_schema=False)
    async def logout() -> RedirectResponse:
        response = to_login()
        response.delete_cookie(COOKIE, path="/")
        return response

    @router.get("/dashboard/static/plotly.min.js", include_in_schema=False)
    async def plotly() -> FileResponse:
        return FileResponse(str(plotly_js), media_type="text/javascript")

    @router.get("/dashboard", response_class=HTMLResponse, summary="Live dashboard (signed in)")
    async def dashboard(request: Request) -> Response:
        if not await signed_in(request):
            return to_login()
        return HTMLResponse(PAGE.format(title="live", heading="Live faces", source="/api/live", live="true",
                                        emotions=json.dumps(EMOTIONS), cues=json.dumps(CUES)))

    @router.get("/dashboard/session/{session_id}", response_class=HTMLResponse,
                summary="A session's history (signed in)")
    async def session_page(session_id: str, request: Request) -> Response:
        if not await signed_in(request):
            return to_login()
        safe = json.dumps(session_id)[1:-1].replace("<", "").replace('"', "")
        return HTMLResponse(PAGE.format(title=safe, heading=f"Session {safe}",
                                        source=f"/api/sessions/{safe}/series", live="false",
                                        emotions=json.dumps(EMOTIONS), cues=json.dumps(CUES)))

    @router.get("/api/live", summary="Recent results of every face (last two minutes); a read key",
                responses={401: {"description": "no valid key or session"}, 403: {"description": "no read scope"}})
    async def api_live(request: Request) -> list[dict[str, Any]]:
        return await live(await viewer(request))

    @router.get("/api/sessions/{session_id}/series", summary="A session's per-second history; a read key",
                responses={401: {"description": "no valid key or session"}, 403: {"description": "no read scope"}})
    async def api_series(session_id: str, request: Request) -> list[dict[str, Any]]:
        key = await viewer(request)
        rows = await run_in_threadpool(_series, database_url, session_id, key.sees)
        if not rows:
            raise HTTPException(404, f"no stored results for session {session_id!r} visible to this key "
                                     "(is `facestream sink` running? is the session's device your tenant's?)")
        return rows

    return router
