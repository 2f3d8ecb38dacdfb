"""The diagnostics page in a real browser (Debian's chromium): sign in, read, follow a trace."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pixelrelay.app import create_app
from tests.conftest import ADMIN_TOKEN
from tests.integration.test_diagnostics_http import ADMIN, mix_settings, post_mix
from tests.support import ServerThread, wait_for

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


def test_sign_in_read_the_numbers_and_follow_a_trace(tmp_path: Path,
                                                     emulator: ServerThread) -> None:
    from playwright.sync_api import sync_playwright

    httpx.post(f"{emulator.url}/faults", json={"reject_event": "Contact"})
    with ServerThread(create_app(mix_settings(tmp_path / "b.db", emulator.url))) as gw:
        post_mix(gw.url)

        def settled() -> bool:
            t = httpx.get(f"{gw.url}/v1/diagnostics", headers=ADMIN).json()["totals"]
            return bool(t["pending"] == 0 and t["rejected"] == 4)

        wait_for(settled, timeout=20)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{gw.url}/")
                page.fill("input[name=token]", ADMIN_TOKEN)
                page.click("form[action='/login'] button")
                page.wait_for_selector("[data-metric=delivered]")
                assert page.inner_text("[data-metric=delivered]") == "6"
                assert page.inner_text("[data-metric=received]") == "14"
                assert "Many events are rejected" in page.inner_text("[data-alert=rejection_rate]")
                cookies = {c["name"]: c for c in page.context.cookies()}
                assert cookies["pixelrelay_session"]["httpOnly"] is True
                assert cookies["pixelrelay_session"]["sameSite"] == "Strict"

                page.click("a[data-window='1h']")
                assert page.inner_text("[data-metric=rejected]") == "4"
                page.fill("input[name=q]", "c1")
                page.click("form[action='/'] button")
                page.click("a[href='/v1/events/c1/trace']")
                page.wait_for_selector("[data-state]")
                assert page.inner_text("[data-state]") == "dead"
                text = page.inner_text("main")
                assert "40002" in text and "rejected by fault" in text
                assert '"event_id": "c1"' in page.inner_text("[data-payload]")
            finally:
                browser.close()
