"""The dashboard end to end in headless Chromium (Debian's, driven by Playwright): a real video
is replayed, the live charts fill, the session page plots its history from PostgreSQL.
Screenshots are saved under test-artifacts/, and copied to docs/images/ for docs/QUICKSTART.md
(each run refreshes them)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from infra import assets
from producers.publish import produce
from producers.sources import VideoSource
from sinks.gateway import auth
from sinks.store.db import connect
from sinks.store.tenants import assign_device
from sinks.store.writer import StoreSink

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DOC_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_dashboard_shows_live_and_stored_charts(make_settings, database_url, start_worker, start_gateway):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make browser` installs it"
    ARTIFACTS.mkdir(exist_ok=True)
    s = make_settings(session_gap_s=2.0)
    start_worker(s)
    gw = start_gateway(s, database_url)
    with connect(database_url) as conn:
        read_key, _ = auth.create_key(conn, "dashboard", ("read",))
        ingest_key, _ = auth.create_key(conn, "kiosk")
        assign_device(conn, s.device_id, "dashboard")  # the replayed video's device: the key's tenant
    sink = StoreSink(s, database_url)
    t = threading.Thread(target=sink.run, daemon=True)
    t.start()
    offline: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        # Nothing may come from the network: every request goes to the gateway.
        page.on("request", lambda r: None if r.url.startswith(gw.url) else offline.append(r.url))
        visited: list[str] = []
        page.on("request", lambda r: visited.append(r.url))
        # Not signed in: the dashboard sends the browser to the sign-in page; a key that may not
        # read is refused there; a read key signs in with an HttpOnly, SameSite=Strict cookie.
        page.goto(f"{gw.url}/dashboard")
        assert page.url.endswith("/dashboard/login")
        page.fill("input[name=key]", ingest_key)
        page.click("button[type=submit]")
        assert "needs the read scope" in page.locator(".error").inner_text()
        page.fill("input[name=key]", read_key)
        page.click("button[type=submit]")
        page.wait_for_url(f"{gw.url}/dashboard")
        (cookie,) = page.context.cookies()
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and read_key not in cookie["value"]
        assert not any(read_key in u for u in visited), "the key never appears in a URL"
        sid, stats = produce(VideoSource(assets.media("single_face.mp4")), s, show_progress=False)
        face = page.locator(f'[id="face-{sid}/0"]')
        face.wait_for(timeout=60_000)
        page.wait_for_function(f'document.getElementById("face-{sid}/0").dataset.points >= {stats.face_frames}',
                               timeout=60_000)
        assert face.locator(".emotions .main-svg").count() >= 1 and face.locator(".cues .main-svg").count() >= 1
        assert face.locator(".emotions .scatterlayer .trace").count() == 7, "one line per emotion"
        assert face.locator(".phase").inner_text() in ("idle", "engaging", "engaged", "disengaging")
        assert face.locator(".status").inner_text() in ("idle", "possible", "ready", "in_short_interruption",
                                                        "in_long_interruption")
        page.screenshot(path=str(ARTIFACTS / "dashboard-live.png"), full_page=True)

        deadline = time.monotonic() + 60
        while sink.stats.results_written < stats.face_frames and time.monotonic() < deadline:
            time.sleep(0.2)
        page.goto(f"{gw.url}/dashboard/session/{sid}")
        page.wait_for_function(f'(document.getElementById("face-{sid}/0") || {{dataset: {{}}}}).dataset.points > 0',
                               timeout=30_000)
        assert page.locator(".cues .scatterlayer .trace").count() == 5
        page.screenshot(path=str(ARTIFACTS / "dashboard-session.png"), full_page=True)
        browser.close()
    sink.stop.set()
    t.join(30)
    assert not offline, f"requests left the gateway: {offline[:3]}"
    DOC_IMAGES.mkdir(parents=True, exist_ok=True)
    for name in ("dashboard-live.png", "dashboard-session.png"):
        shutil.copyfile(ARTIFACTS / name, DOC_IMAGES / name)
