"""Pure diagnostics: percentiles, match-quality score, alert rules, aggregation, sessions, SQL."""

from __future__ import annotations

import re

import pytest

from pixelrelay.destinations import REGISTRY
from pixelrelay.diagnostics.endpoints import session_key
from pixelrelay.diagnostics.report import (
    KEYS,
    Alert,
    DestinationFacts,
    Thresholds,
    alert_changes,
    alerts,
    build,
    facts_of,
    match_score,
    percentile,
)
from pixelrelay.masking import mask_field, mask_reason
from pixelrelay.metrics import code_label, path_label
from pixelrelay.store.rows import QueueRow, RecentRow, RecentSearch, WindowRows

# What the dashboard knows of a destination of each type (its plugin's declarations).
TIKTOK_FACTS = facts_of(REGISTRY["tiktok"], {}, test_events=False)
META_FACTS = facts_of(REGISTRY["meta"], {"web": "100000000000001"}, test_events=False)
WEIGHTS = REGISTRY["tiktok"].match_weights
NOW = 1_776_943_380.0


def queue(name: str = "tiktok", *, pending: int = 0, oldest: float | None = None,
          paused: bool = False) -> QueueRow:
    return QueueRow(name, pending, 0, oldest, paused, "40105 Access token invalid" if paused
                    else None, NOW - 60 if paused else None)


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # unsorted on purpose
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([3.0], 95) == 3.0
    assert percentile([], 50) is None


def test_match_score_weights() -> None:
    assert match_score(dict.fromkeys(WEIGHTS, 1.0), WEIGHTS) == 10.0
    assert match_score({}, WEIGHTS) == 0.0
    assert match_score({"ttclid": 1.0}, WEIGHTS) == 2.2
    assert match_score({"email": 0.5, "phone": 0.5}, WEIGHTS) == 2.0  # 10 * (0.11 + 0.09)
    assert match_score({"first_name": 1.0, "last_name": 1.0, "zip_code": 1.0}, WEIGHTS) == 0.9
    assert set(WEIGHTS) == set(KEYS) - {"fbc", "fbp"}  # TikTok's keys are all counted


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
def test_each_type_declares_weights_over_keys_it_can_be_scored_on(type_name: str) -> None:
    """Every registered type weighs its keys (summing to 1), each a counted key or one of its
    own click and browser ids; its ad click id is one of them and weighs most among its ids."""
    p = REGISTRY[type_name]
    assert sum(p.match_weights.values()) == pytest.approx(1.0)
    own_ids = {p.attribution_click_id, *(key for _cookie, key in p.browser_cookies)}
    assert set(p.match_weights) <= set(KEYS) | own_ids
    assert p.attribution_click_id in p.match_weights
    assert p.match_weights[p.attribution_click_id] == max(
        w for k, w in p.match_weights.items() if k in own_ids)
    # the hashed identifiers matter most everywhere
    assert p.match_weights["email"] == max(p.match_weights.values())


def test_metas_weights_follow_the_practitioners_order() -> None:
    """meta-capi.md 6: em > ph > external_id ~ fbc > fbp > ip + user agent > names/address."""
    w = REGISTRY["meta"].match_weights
    assert w["email"] > w["phone"] > w["external_id"] == w["fbc"] > w["fbp"] >= w["ip_ua"]
    assert w["ip_ua"] > max(w[k] for k in ("first_name", "last_name", "zip_code", "city",
                                          "state", "country"))


def test_alert_rules_fire_only_past_thresholds() -> None:
    t = Thresholds()
    facts = {"tiktok": TIKTOK_FACTS}
    assert alerts([queue()], NOW, received=100, rejected=5, purchases=20,
                  purchases_with={"ttclid": 10}, t=t, facts=facts) == []
    keys = {a.key for a in alerts(
        [queue(paused=True, pending=7), queue("b", oldest=NOW - 901)], NOW, received=100,
        rejected=6, purchases=20, purchases_with={"ttclid": 9}, t=t, facts=facts)}
    assert keys == {"paused:tiktok", "backlog:b", "rejection_rate", "purchase_ttclid"}
    # too few events for a rate to mean anything
    assert alerts([], NOW, received=9, rejected=9, purchases=9, purchases_with={"ttclid": 0},
                  facts=facts) == []


def test_alerts_say_what_to_check() -> None:
    found = {a.key: a for a in alerts([queue(paused=True)], NOW, 0, 0, 10, {"ttclid": 0},
                                      facts={"tiktok": TIKTOK_FACTS})}
    assert "expired" in found["paused:tiktok"].check and "pixel code" in found[
        "paused:tiktok"].check
    assert "40105" in found["paused:tiktok"].detail
    purchase = found["purchase_ttclid"]
    assert purchase.title == "Purchases without ttclid"
    assert purchase.detail == ("Only 0 of 10 purchases carry a ttclid (threshold 50%); TikTok "
                               "cannot tie them to the ad click.")
    assert purchase.check.startswith("Is ttclid lost on a redirect")


def test_the_purchase_click_id_alert_is_each_configured_types_own() -> None:
    """Each type's ad click id is checked when a destination of that type is configured, in
    its words."""
    both = {"tiktok": TIKTOK_FACTS, "meta": META_FACTS}
    found = {a.key: a for a in alerts([], NOW, 0, 0, 10, {"ttclid": 2, "fbc": 8}, facts=both)}
    assert set(found) == {"purchase_ttclid"}  # 8 of 10 purchases carry an fbc
    found = {a.key: a for a in alerts([], NOW, 0, 0, 10, {"ttclid": 2, "fbc": 1},
                                      facts=both)}
    assert set(found) == {"purchase_ttclid", "purchase_fbc"}
    fbc = found["purchase_fbc"]
    assert "Meta cannot tie them" in fbc.detail and fbc.check.startswith("Is fbclid lost")
    # Without a destination of the type, its click id is nobody's business.
    assert alerts([], NOW, 0, 0, 10, {"ttclid": 0}, facts={"meta": META_FACTS}) == []
    assert alerts([], NOW, 0, 0, 10, {"ttclid": 0}) == []


def test_a_reason_that_is_a_whole_sentence_is_not_punctuated_twice() -> None:
    """TikTok's messages end with a full stop; the alert goes on after the reason."""
    q = QueueRow("tiktok", 1, 0, None, True,
                 "40105 Access token is incorrect or has been revoked.", NOW - 60)
    detail = alerts([q], NOW, 0, 0, 0, {})[0].detail
    assert "revoked. 1 events wait" in detail and ".." not in detail


def test_alert_changes_log_once_per_state_change() -> None:
    a = Alert("rejection_rate", "t", "d", "c")
    raised, cleared = alert_changes(set(), [a])
    assert raised == [a] and cleared == set()
    raised, cleared = alert_changes({"rejection_rate"}, [a])
    assert raised == [] and cleared == set()
    raised, cleared = alert_changes({"rejection_rate"}, [])
    assert raised == [] and cleared == {"rejection_rate"}


def test_build_counts_a_known_mix() -> None:
    rows = WindowRows(
        accepted=[("Purchase", 4), ("Search", 1)],
        duplicates=[("Purchase", 2, 1)],
        ingest_rejections=[("Purchase", "user.ip", "is not a valid IPv4 or IPv6 address", 3)],
        deliveries=[("tiktok", "Purchase", "CompletePayment", "delivered", None, 2),
                    ("tiktok", "Purchase", "CompletePayment", "in_flight", None, 1),
                    ("tiktok", "Purchase", "CompletePayment", "dead", "rejected", 1),
                    ("tiktok", "Search", "Search", "dead", "expired", 1)],
        dead=[("tiktok", "Purchase", "rejected", 40002, "data.0.event: bad", 1),
              ("tiktok", "Search", "expired", None, None, 1)],
        coverage=[("Purchase", "CompletePayment", 3, 3, 0, 0, 1, 0, 3, 2, 2, 1, 0, 0, 3, 0, 0)],
        notices=[("Purchase", "user.shoe_size", "unknown_field", 4),
                 ("Purchase", "user.phone", "unverified", 2),
                 ("Search", "user.shoe_size", "unknown_field", 1)],
        dedup=[("Purchase", 6, 3)], enrichment=[("Purchase", 4, 1)],
        latencies=[("tiktok", 1.0), ("tiktok", 3.0)],
        trend_received=[(0, 2), (23, 3), (99, 1)], trend_delivered=[(23, 2)])
    facts = {"tiktok": facts_of(REGISTRY["tiktok"], {"web": "C9ABC1234567890", "crm": "7312"},
                                test_events=True)}
    r = build(rows, [queue(pending=1, oldest=NOW - 30)], facts, "24h", NOW)
    assert r["totals"] == {"received": 10, "accepted": 5, "duplicates": 2, "merged": 1,
                           "rejected": 4,
                           "delivered": 2, "suppressed": 0, "filtered": 0, "pending": 1,
                           "gave_up": 1}
    p = r["events"][0]
    assert (p["event"], p["received"], p["rejected"]) == ("Purchase", 9, 4)
    assert {x["reason"]: x["count"] for x in r["rejections"]} == {
        "is not a valid IPv4 or IPv6 address": 3, "data.0.event: bad": 1, "expired": 1}
    mk = r["match_keys"]
    assert mk["coverage"]["email"] == 1.0 and mk["coverage"]["ttclid"] == pytest.approx(0.3333)
    assert (mk["purchases"], mk["purchases_with_click_id"]) == (3, {"ttclid": 1, "fbc": 0})
    assert mk["purchases_with_ttclid"] == 1  # the old key, an alias for one release
    # over every counted key: 0 for those TikTok does not weigh (Meta's fbc and fbp)
    assert mk["weights"] == {**dict.fromkeys(KEYS, 0.0), **WEIGHTS}
    assert mk["score"] == match_score(mk["coverage"], WEIGHTS)
    assert mk["by_destination"] == [{"destination": "tiktok", "weights": dict(WEIGHTS),
                                     "score": mk["score"]}]
    assert mk["coverage"]["first_name"] == pytest.approx(0.6667)
    assert mk["coverage"]["country"] == 1.0 and mk["counts"]["zip_code"] == 1
    assert r["ingest_notices"] == {"dropped_fields": [{"field": "user.shoe_size", "count": 5}],
                                   "unknown_fields": 5, "dropped_values": 0,
                                   "unverified_phones": 2}
    assert r["dedup_readiness"]["share"] == 0.5 and r["enrichment"]["rate"] == 0.25
    assert r["latency_s"] == {"delivered": 2, "p50": 1.0, "p95": 3.0}
    assert len(r["trend"]["received"]) == 24 and r["trend"]["received"][23] == 4
    d = r["destinations"][0]
    assert (d["test_events"], d["queue_depth"], d["oldest_pending_age_s"]) == (True, 1, 30.0)
    assert d["source_ids"] == {"web": "C9ABC1234567890", "crm": "7312"}
    assert [a["key"] for a in r["alerts"]] == ["rejection_rate"]  # 4 of 10; purchases < 10


def test_the_store_keeps_a_token_keyed_hash_of_the_session_id() -> None:
    key = session_key("admin", "sid-1")
    assert len(key) == 64 and "sid-1" not in key and "admin" not in key
    assert key == session_key("admin", "sid-1")
    assert key != session_key("admin", "sid-2")
    assert key != session_key("other", "sid-1")  # a new token finds no session


def test_labels_stay_bounded() -> None:
    # Our own reasons are kept as written (what varies is in Problem.detail, never stored);
    # anything shaped like a value is masked, should one ever reach a reason.
    for own in ("is older than the 7-day window (max_age_days)", "must be an ISO 4217 code",
                "must be a number such as 129.95", "at most 300 s ahead"):
        assert mask_reason(own) == own
    assert mask_reason("bad: jane@example.com") == "bad: <email>"
    assert mask_reason("bad: +49 170 1234567") == "bad: <number>"
    assert mask_field("user.email.3") == "user.email.N"
    assert mask_field("properties.jane@example.com") == "properties.<key>"
    assert mask_field("user.4915112345678.x") == "user.N.x"
    assert path_label("/v1/webhooks/shopify/shop1") == "/v1/webhooks/shopify/{source}"
    assert path_label("/v1/events/abc/trace") == "/v1/events/{event_id}/trace"
    assert path_label("/wp-admin/x.php") == "other"
    assert (code_label(40002, 200), code_label(None, 503), code_label(None, None)) == (
        "40002", "http_503", "network")


def test_page_escapes_whatever_a_client_sent() -> None:
    from pixelrelay.diagnostics.page import diagnostics_page, trace_page

    evil = "<script>alert(1)</script>"
    rows = WindowRows(accepted=[(evil, 1)],
                      ingest_rejections=[(evil, "user.<u>", "unknown field <i>", 1)],
                      deliveries=[("tiktok", evil, evil, "pending", None, 1)])
    r = build(rows, [queue()], {}, "1h", NOW)
    recent = [RecentRow(f"id'\"{evil}", evil, NOW - 5, "server", "tiktok:pending")]
    html = diagnostics_page(r, recent, RecentSearch(q=f"'\"{evil}", destination=evil),
                            csrf=evil)
    assert "<script>" not in html and "<u>" not in html and "<i>" not in html
    assert "&lt;script&gt;" in html
    assert "/v1/events/id%27%22%3Cscript%3E" in html  # the trace link is URL-quoted
    t = trace_page({"event_id": evil, "event": None, "event_text": None, "deliveries": []})
    assert "<script>" not in t


def test_the_page_groups_every_match_key_once() -> None:
    from pixelrelay.diagnostics.page import MATCH_KEY_GROUPS

    grouped = [k for _group, keys in MATCH_KEY_GROUPS for k, _label in keys]
    assert sorted(grouped) == sorted(KEYS)


def test_the_trend_axis_labels_bucket_starts_in_utc() -> None:
    from pixelrelay.diagnostics.page import trend_svg

    since = 1_764_590_400.0  # 2025-12-01 12:00:00 UTC
    svg = trend_svg([0] * 24, [0] * 24, 3600.0, since)
    ticks = re.findall(r"data-tick>([^<]*)</text>", svg)
    assert ticks == ["12:00", "18:00", "00:00", "06:00", "12:00"]
    week = trend_svg([0] * 28, [0] * 28, 6 * 3600.0, since)
    assert "Mon 01 Dec" in week and "Mon 08 Dec" in week


def _two_destination_report() -> dict[str, object]:
    rows = WindowRows(
        accepted=[("Purchase", 2)],
        deliveries=[("tiktok", "Purchase", "Purchased", "delivered", None, 2),
                    ("meta", "Purchase", "Purchased", "delivered", None, 2)],
        # 2 purchases: both with email and IP + user agent, one with a ttclid, one with an fbc
        # and both with an fbp
        coverage=[("Purchase", "CompletePayment", 2, 2, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 1, 2)])
    facts = {"tiktok": TIKTOK_FACTS, "meta": META_FACTS}
    return build(rows, [queue("tiktok"), queue("meta")], facts, "1h", NOW)


def test_build_scores_each_destination_with_its_types_weights() -> None:
    r = _two_destination_report()
    mk = r["match_keys"]
    assert isinstance(mk, dict)
    meta = REGISTRY["meta"].match_weights
    # email 1.0, ip_ua 1.0, ttclid 0.5, fbc 0.5, fbp 1.0: TikTok 10 x (0.22 + 0.10 + 0.11),
    # Meta 10 x (0.25 + 0.10 + 0.065 + 0.10)
    assert [(d["destination"], d["score"]) for d in mk["by_destination"]] == [
        ("tiktok", 4.3), ("meta", 5.2)]
    assert mk["by_destination"][1]["weights"] == dict(meta)
    assert mk["score"] == 4.3  # the first destination's
    assert mk["purchases_with_click_id"] == {"ttclid": 1, "fbc": 1}
    # A look-alike custom name is flagged by the destination type that declares the hint.
    per = {d["destination"]: d for d in r["events"][0]["destinations"]}  # type: ignore[index]
    assert per["tiktok"]["looks_like"] == "Purchase" and per["meta"]["looks_like"] is None


def test_the_page_says_each_destinations_platform_and_pixel_call() -> None:
    from pixelrelay.diagnostics.page import _dedup_guidance, diagnostics_page

    html = diagnostics_page(_two_destination_report(), [], RecentSearch(),
                            facts={"tiktok": TIKTOK_FACTS, "meta": META_FACTS})
    assert "data-dest-score='meta'>5.2</span>" in html
    assert "not counted yet" not in html  # every key of both types is counted
    advice = _dedup_guidance(0.1, 10, {"tiktok": TIKTOK_FACTS, "meta": META_FACTS})
    assert "if the TikTok or Meta Pixel sends them too" in advice
    assert "it fires ttq.track and fbq(&#x27;track&#x27;) with its event_id" in advice
    assert "ord_&lt;order id&gt;_complete_payment" in advice
    assert "the platform Pixel" not in _dedup_guidance(0.1, 10, {"meta": META_FACTS})
    assert "ttq" not in _dedup_guidance(0.1, 10, {"meta": META_FACTS})


def test_the_click_and_browser_labels_are_the_registered_types_ids() -> None:
    from pixelrelay.diagnostics.page import MATCH_KEY_GROUPS

    groups = dict(MATCH_KEY_GROUPS)
    declared = {k for p in REGISTRY.values()
                for k in (p.attribution_click_id, *(key for _c, key in p.browser_cookies))}
    click = [k for k, _label in groups["click and browser"]]
    assert click[-1] == "ip_ua" and set(click[:-1]) == declared & set(KEYS)
    assert dict(groups["click and browser"])["ip_ua"] == "ip + user_agent"


def test_facts_name_what_the_type_declares() -> None:
    f = META_FACTS
    assert isinstance(f, DestinationFacts)
    assert (f.platform, f.click_id, f.click_param) == ("Meta", "fbc", "fbclid")
    assert f.source_ids == {"web": "100000000000001"} and f.pixel_call == "fbq('track')"
