"""The diagnostics page in a real browser (Debian's chromium): sign in, read, follow a trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from pixelrelay.app import create_app
from tests.conftest import ADMIN_TOKEN, PIXEL, SOURCE_KEY, emu_state, make_settings
from tests.integration.test_diagnostics_http import ADMIN, mix_settings, post_mix
from tests.support import ServerThread, wait_for

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

SERVER = {"Authorization": f"Bearer {SOURCE_KEY}"}

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
                # Its batch was refused and halved until c1 stood alone: every request that
                # carried it counts, not the one attempt the retry counter saw.
                requests = page.locator("main table tr").count() - 1
                assert requests >= 2
                assert page.inner_text("[data-attempts]") == str(requests)

                # Search by state and channel; the window links keep the search.
                page.goto(f"{gw.url}/?window=1h")
                page.select_option("select[name=state]", "dead")
                page.click("form[data-search] button")
                assert listed(page) == ["c1"]
                page.select_option("select[name=state]", "")
                page.select_option("select[name=channel]", "browser")
                page.click("form[data-search] button")
                assert listed(page) == ["b1"]
                page.click("a[data-window='24h']")
                assert "channel=browser" in page.url and listed(page) == ["b1"]
                assert page.input_value("select[name=channel]") == "browser"
            finally:
                browser.close()


def listed(page: Any) -> list[str]:
    """The event_ids in the recent-events table, newest first."""
    return list(page.locator("form[data-search] + table a").all_inner_texts())


def test_act_from_the_page_resume_a_paused_destination(tmp_path: Path, emulator: ServerThread,
                                                        context: Any) -> None:
    """A token error pauses the destination; the page names its pixel, the trace says the
    event waits for the pause, a forged form from another origin changes nothing, and the
    Resume button sends what waited."""
    httpx.post(f"{emulator.url}/faults", json={"setup_error_code": 40105})
    with ServerThread(create_app(make_settings(tmp_path / "r.db", emulator.url))) as gw:
        answer = httpx.post(f"{gw.url}/v1/events", headers=SERVER, json={
            "event": "Purchase", "user": {"email": "a@example.com"},
            "properties": {"order_id": "7001", "value": 5, "currency": "EUR"}})
        assert answer.status_code == 202

        def state() -> str:
            d = httpx.get(f"{gw.url}/v1/diagnostics", headers=ADMIN).json()["destinations"]
            return str(d[0]["state"])

        wait_for(lambda: state() == "paused", timeout=10)
        page = context.new_page()
        page.goto(f"{gw.url}/")
        page.fill("input[name=token]", ADMIN_TOKEN)
        page.click("form[action='/login'] button")
        assert page.inner_text("code[data-pixel]") == PIXEL
        # The app calls this page what the README does; the reason (TikTok's sentence) is
        # followed by the alert's next sentence without a second full stop.
        assert page.title() == "pixelrelay · dashboard"
        assert page.inner_text("header a[data-home]") == "dashboard"
        alert = page.inner_text("[data-alert='paused:tiktok']")
        assert "40105 Access token is incorrect or has been revoked. 1 events" in alert
        assert ".." not in alert
        assert page.locator("text[data-tick]").count() >= 4  # the trend's time axis
        assert page.locator("th[data-group]").all_inner_texts() == [
            "hashed identifiers", "click and browser", "name and address"]
        assert "same event_id" in page.inner_text("[data-guidance]")

        page.fill("input[name=q]", "7001")
        page.click("form[action='/'] button")
        page.click("a[href='/v1/events/ord_7001_complete_payment/trace']")
        assert page.inner_text("[data-state]") == "pending"
        assert "tiktok is paused" in page.inner_text("[data-paused]")
        # The summary names the code of the request that was refused, as its table does.
        assert "last code 40105 ·" in page.inner_text("main")
        assert "revoked; it is sent once the destination is resumed (dashboard)" in \
            page.inner_text("h2:has([data-paused])")
        assert page.inner_text("main p a[href='/']") == "← dashboard"

        # Same host, another port: the same site for SameSite, so the cookie goes along;
        # only the Origin check and the CSRF token stop this form.
        forged = context.new_page()
        forged.goto(f"{emulator.url}/stats")
        forged.evaluate("""url => { const f = document.createElement('form');
            f.method = 'post'; f.action = url; const i = document.createElement('input');
            i.name = 'csrf'; i.value = 'guessed'; f.appendChild(i);
            document.body.appendChild(f); f.submit(); }""",
                        f"{gw.url}/destinations/tiktok/resume")
        forged.wait_for_load_state()
        assert "another site" in forged.inner_text("main")
        assert state() == "paused"

        httpx.post(f"{emulator.url}/faults", json={"setup_error_code": None})
        page.goto(f"{gw.url}/")
        with page.expect_navigation():
            page.click("button[data-resume=tiktok]")
        assert page.url == f"{gw.url}/"
        assert page.locator("button[data-resume]").count() == 0
        wait_for(lambda: bool(emu_state(emulator).events), timeout=10)
        page.goto(f"{gw.url}/v1/events/ord_7001_complete_payment/trace")
        assert page.inner_text("[data-state]") == "delivered"
        # One request refused (the pause), one delivered: both counted.
        assert page.inner_text("[data-attempts]") == "2"


def test_a_trace_says_the_event_went_without_match_keys_and_which_latency_is_which(
        tmp_path: Path, emulator: ServerThread, context: Any) -> None:
    """An event whose email and phone were both invalid reaches TikTok with no match key: the
    trace says so (and why) above the raw JSON, and labels its two latencies."""
    with ServerThread(create_app(make_settings(tmp_path / "k.db", emulator.url))) as gw:
        for event_id, user in (("nk1", {"email": "not-an-email", "phone": "12"}),
                               ("nk2", {"email": "a@example.com", "phone": "12"})):
            answer = httpx.post(f"{gw.url}/v1/events", headers=SERVER, json={
                "event": "Purchase", "event_id": event_id, "user": user,
                "properties": {"value": 5, "currency": "EUR"}})
            assert answer.status_code == 202

        def delivered() -> bool:
            return all(httpx.get(f"{gw.url}/v1/events/{e}/trace", headers=ADMIN).json()[
                "deliveries"][0]["state"] == "delivered" for e in ("nk1", "nk2"))

        wait_for(delivered, timeout=10)
        page = context.new_page()
        page.goto(f"{gw.url}/")
        page.fill("input[name=token]", ADMIN_TOKEN)
        page.click("form[action='/login'] button")
        page.goto(f"{gw.url}/v1/events/nk1/trace")
        note = page.inner_text("[data-match-keys]")
        assert note.startswith("Sent without match keys: email dropped: not a valid email "
                               "address; phone dropped: not a valid phone number")
        assert "12" not in note and "not-an-email" not in note  # reasons, never the values
        assert page.inner_text("[data-latency]").startswith("accepted → delivered ")
        assert "Request took" in page.locator("main table th").all_inner_texts()
        assert page.inner_text("main table td:nth-child(6)").endswith(" ms")

        # Kept its email: no "without match keys", but the dropped phone is still named.
        page.goto(f"{gw.url}/v1/events/nk2/trace")
        note = page.inner_text("[data-match-keys]")
        assert note.startswith("Match keys dropped at ingest: phone dropped: not a valid phone")
        assert "without" not in note
