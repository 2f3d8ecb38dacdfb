"""check's pre-flight: every mistake found at once, with its key; settings shown masked."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pixelrelay.config import Secret, Settings, SourceSettings
from pixelrelay.ops.preflight import Finding, findings, mask_url, show
from tests.conftest import ACCESS_TOKEN, ADMIN_TOKEN, SOURCE_KEY, make_settings


def settings(api_url: str = "https://business-api.tiktok.com", **dest: object) -> Settings:
    return make_settings(Path("x.db"), api_url, **dest)


def by_path(found: list[Finding]) -> dict[str, Finding]:
    return {f.path: f for f in found}


def test_a_good_config_has_no_findings() -> None:
    assert findings(settings(event_map={"Purchase": "CompletePayment", "Lead": "SubmitForm"})
                    ) == []


def test_event_map_targets_that_are_not_standard_names() -> None:
    found = by_path(findings(settings(event_map={
        "Purchase": "Purchse", "Lead": "submitform", "Order Completed": "CompletePayment",
        "Quiz": "QuizFinished", "Sign Up": "Registration",
        "News letter": "SubscribeNewsletter"})))
    typo = found["destinations[0].event_map.Purchase"]
    assert typo.level == "error" and 'did you mean "Purchase"?' in typo.message
    casing = found["destinations[0].event_map.Lead"]
    assert casing.level == "error" and 'did you mean "SubmitForm"?' in casing.message
    custom = found["destinations[0].event_map.Quiz"]
    assert custom.level == "warning" and "custom event" in custom.message
    assert "nearest" not in custom.message  # nothing near: no misleading hint
    near = found['destinations[0].event_map."News letter"']  # the key quoted as in TOML
    assert near.level == "warning" and '(nearest: "Subscribe")' in near.message
    app_only = found['destinations[0].event_map."Sign Up"']
    assert app_only.level == "warning" and "app events only" in app_only.message
    assert len(found) == 5  # "Order Completed" -> CompletePayment is standard: no finding
    with_app = by_path(findings(settings(app_id="7000000000000000001",
                                         event_map={"Sign Up": "Registration"})))
    assert with_app == {}  # an app destination: Registration is standard there


def test_pixel_codes_that_do_not_look_like_tiktoks_are_warned_about_not_refused() -> None:
    for good in ("C9ABC1234567890", "CABCDE1234567890ABCD"):
        assert findings(settings(pixel_code=good)) == []
    for odd in ("C1", "c9abc1234567890", "X9ABC1234567890", "C" + "A" * 25):
        (f,) = findings(settings(pixel_code=odd))
        assert (f.level, f.path) == ("warning", "destinations[0].pixel_code")


def test_sources_and_destinations_missing_and_doubtful() -> None:
    empty = Settings()
    found = by_path(findings(empty))
    assert found["sources"].level == found["destinations"].level == "error"
    assert found["server.admin_token"].level == "warning"

    s = settings(test_event_code="TEST1", api_url="http://tiktok.example")
    shop = SourceSettings(name="shop", kind="shopify", key=Secret(""))
    site = SourceSettings(name="site", kind="browser", key=Secret(SOURCE_KEY))
    s = dataclasses.replace(s, sources=(*s.sources, shop, site))
    found = by_path(findings(s))
    assert found["sources[1].secret"].level == "error"
    assert found["sources[2].allowed_origins"].level == "warning"
    assert found["sources[2].key"].level == "warning"  # the public site key = the server key
    assert found["destinations[0].test_event_code"].level == "warning"
    assert found["destinations[0].api_url"].level == "warning"  # token over plain http
    assert len(found) == 5


def test_plain_http_to_loopback_is_fine() -> None:
    for url in ("http://127.0.0.1:9000", "http://localhost:9000", "http://[::1]:9000"):
        assert findings(settings(api_url=url)) == []


def test_every_section_is_shown_with_secrets_masked() -> None:
    s = settings(event_map={"Order Completed": "CompletePayment"})
    s = dataclasses.replace(s, storage=dataclasses.replace(
        s.storage, url="postgresql://relay:hunter2-secret@db.example/relay"))
    text = "\n".join(show(s))
    for section in ("[server]", "[storage]", "[delivery]", "[consent]", "[sessions]",
                    "[[sources]]", "[[destinations]]"):
        assert section in text
    for secret in (ACCESS_TOKEN, ADMIN_TOKEN, SOURCE_KEY, "hunter2-secret"):
        assert secret not in text
    assert "access_token = ****0001" in text
    assert 'url = "postgresql://relay:****@db.example/relay"' in text
    assert 'event_map = { "Order Completed" = "CompletePayment" }' in text
    assert mask_url("sqlite:///pixelrelay.db") == "sqlite:///pixelrelay.db"
