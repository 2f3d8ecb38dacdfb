"""Click and browser ids as each destination type declares them (issues 26/27): the
declarations, the bridges' name tables, what the tag is served with, Meta's session ids
(fbclid -> fbc, _fbp), and how a session keeps and restores them."""

from __future__ import annotations

import orjson

from pixelrelay.config import Secret
from pixelrelay.destinations import REGISTRY
from pixelrelay.destinations.meta import names as meta_names
from pixelrelay.destinations.meta.clickids import session_ids
from pixelrelay.destinations.meta.settings import meta_destination
from pixelrelay.destinations.plugin import BrowserHit
from pixelrelay.destinations.tiktok.settings import tiktok_destination
from pixelrelay.model import Event, User
from pixelrelay.pipeline.enrich import EnrichedFrom, SessionContext, enrich, merge_context
from pixelrelay.sources import browser_rules as r
from pixelrelay.store.session_codec import click_ids_from, click_ids_to_text

TT = tiktok_destination(name="tt", pixel_code="C9ABC1234567890", access_token=Secret("t"),
                        event_map={"Lead": "Contact"})
TT2 = tiktok_destination(name="tt2", pixel_code="C9ABC1234567891", access_token=Secret("t"),
                         event_map={"Purchase": "Purchase"})
META = meta_destination(name="fb", pixel_id="123456789012345", access_token=Secret("m"),
                        event_map={"Signup": "Subscribe"})
NOW_MS = 1_800_000_000_123


def hit(url: str | None = None, cookies: dict[str, str] | None = None,
        user: dict[str, object] | None = None, previous: dict[str, str] | None = None
        ) -> BrowserHit:
    return BrowserHit(url=url, referrer=None, cookies=cookies or {}, user=user or {},
                      now_ms=NOW_MS, previous=previous or {})


def test_each_type_declares_its_click_params_cookies_and_bridge() -> None:
    tiktok, meta = REGISTRY["tiktok"], REGISTRY["meta"]
    assert (tiktok.click_params, tiktok.browser_cookies) == (("ttclid",), (("_ttp", "ttp"),))
    assert (meta.click_params, meta.browser_cookies) == (
        ("fbclid",), (("_fbp", "fbp"), ("_fbc", "fbc")))
    assert tiktok.session_ids is None and meta.session_ids is session_ids
    assert tiktok.bridge is not None and meta.bridge is not None
    assert "bridge('tiktok'" in tiktok.bridge.script and "w.ttq" in tiktok.bridge.script
    assert "bridge('meta'" in meta.bridge.script and "eventID: id" in meta.bridge.script
    assert "fbq" not in tiktok.bridge.script and "ttq" not in meta.bridge.script


def test_metas_bridge_table_names_as_the_server_does_and_lists_the_standard_names() -> None:
    table = meta_names.bridge_table({"Signup": "Subscribe", "Order": "MyOrder"})
    exact, keys = table["map"], table["keys"]
    assert isinstance(exact, dict) and isinstance(keys, dict)
    assert exact == {"Signup": "Subscribe", "Order": "MyOrder"}
    # The server's names for the tag's lookups (name_key -> name), overrides over defaults.
    assert keys["completepayment"] == "Purchase" and keys["purchase"] == "Purchase"
    assert keys["signup"] == "Subscribe" and keys["pageview"] == "PageView"
    server = meta_names.EventNames({"Signup": "Subscribe"})
    for key, name in keys.items():
        if key != "order":
            assert server(key) == name
    assert table["standard"] == sorted(meta_names.STANDARD_EVENTS)


def test_the_tag_gets_the_first_destinations_ids_and_a_table_per_configured_type() -> None:
    cfg = r.tag_config((TT, META, TT2))
    # Derived event_ids follow the first destination's names (ingest.id_names).
    assert cfg["keys"]["purchase"] == "CompletePayment"  # type: ignore[index]
    assert cfg["map"] == {"Lead": "Contact"}
    assert cfg["cookies"] == [["_ttp", "ttp"], ["_fbp", "fbp"], ["_fbc", "fbc"]]
    assert cfg["given"] == ["ttclid", "fbclid"]
    bridges = cfg["bridges"]
    assert isinstance(bridges, dict) and list(bridges) == ["tiktok", "meta"]
    # Each type's bridge follows the first destination of that type (tt, not tt2).
    assert bridges["tiktok"]["map"] == {"Lead": "Contact"}
    assert bridges["meta"]["keys"]["signup"] == "Subscribe"
    orjson.dumps(cfg)  # it is embedded as JSON


def test_only_the_configured_types_bridges_are_served() -> None:
    template = "core;" + r.BRIDGES_MARK + ";end"
    both = r.with_bridges(template, (META, TT))
    assert both.index("bridge('meta'") < both.index("bridge('tiktok'") < both.index(";end")
    only = r.with_bridges(template, (TT,))
    assert "bridge('tiktok'" in only and "bridge('meta'" not in only
    assert r.with_bridges(template, ()) == "core;;end"
    assert r.tag_config(())["bridges"] == {} and r.tag_config(())["cookies"] == []


def test_an_fbclid_in_the_landing_url_becomes_an_fbc_with_its_time_in_ms() -> None:
    got = session_ids(hit("https://shop.example/?fbclid=AbC-x_Y&utm=1"))
    assert got == {"fbc": f"fb.1.{NOW_MS}.AbC-x_Y"}  # case kept, milliseconds
    assert session_ids(hit("https://shop.example/?utm=1")) == {}  # never invented


def test_the_cookie_or_the_sessions_fbc_stays_for_the_same_click_and_yields_to_a_new_one() -> None:
    old = "fb.1.1700000000000.AbC"
    url = "https://shop.example/?fbclid=AbC"
    assert session_ids(hit(url, cookies={"_fbc": old})) == {"fbc": old}
    assert session_ids(hit(url, user={"fbc": old})) == {"fbc": old}
    assert session_ids(hit(url, previous={"fbc": old})) == {"fbc": old}  # a reload
    assert session_ids(hit("https://shop.example/?fbclid=New",
                           previous={"fbc": old})) == {"fbc": f"fb.1.{NOW_MS}.New"}
    assert session_ids(hit(None, cookies={"_fbc": old})) == {"fbc": old}
    # A host that knows the landing better may hand the fbclid in.
    assert session_ids(hit(None, user={"fbclid": "Hz"})) == {"fbc": f"fb.1.{NOW_MS}.Hz"}


def test_fbp_comes_from_its_cookie_and_malformed_values_are_left_out() -> None:
    fbp = "fb.1.1596403881668.1116446470"
    assert session_ids(hit(cookies={"_fbp": fbp})) == {"fbp": fbp}
    assert session_ids(hit(user={"fbp": fbp})) == {"fbp": fbp}
    assert session_ids(hit(cookies={"_fbp": "junk", "_fbc": "fb.x.1.A"})) == {}
    assert session_ids(hit(user={"fbp": "fb.1.1.2 3", "fbc": 5})) == {}
    # Parameter Builder's 5th segment passes untouched.
    assert session_ids(hit(cookies={"_fbc": "fb.1.1.AbC.AQIAAQMC"})) == {
        "fbc": "fb.1.1.AbC.AQIAAQMC"}


def test_a_session_keeps_the_newest_of_each_id_and_restores_only_what_is_missing() -> None:
    first = SessionContext("s_1", click_ids={"fbc": "fb.1.1.A", "fbp": "fb.1.1.9"},
                           first_seen=1, last_seen=1)
    merged = merge_context(first, SessionContext("s_1", click_ids={"fbc": "fb.1.2.B"},
                                                 first_seen=2, last_seen=2))
    assert merged.click_ids == {"fbc": "fb.1.2.B", "fbp": "fb.1.1.9"}
    assert merge_context(merged, SessionContext("s_1", last_seen=3)).click_ids == \
        merged.click_ids

    event = Event(name="Purchase", event_id="e", event_time=1,
                  user=User(ip="192.0.2.1", user_agent="UA",
                            click_ids=(("fbp", "fb.1.5.own"), ("ttclid", "t"), ("ttp", "p"))))
    out = enrich(event, merged, EnrichedFrom.SESSION)
    assert (out.user.click_id("fbc"), out.user.click_id("fbp")) == ("fb.1.2.B", "fb.1.5.own")
    assert out.enriched_from == "session"
    full = Event(name="Purchase", event_id="e", event_time=1,
                 user=User(ip="192.0.2.1", user_agent="UA",
                           click_ids=(("fbc", "fb.1.5.c"), ("fbp", "fb.1.5.p"), ("ttclid", "t"),
                                      ("ttp", "p"))))
    assert enrich(full, merged, EnrichedFrom.SESSION) is full  # nothing copied
    # A key no destination type declares restores nothing.
    odd = SessionContext("s_1", click_ids={"nope": "x"})
    assert enrich(full, odd, EnrichedFrom.SESSION) is full


def test_the_stored_map_round_trips_and_reads_leniently() -> None:
    ctx = SessionContext("s_1", click_ids={"fbc": "fb.1.1.A"})
    assert click_ids_from(click_ids_to_text(ctx)) == {"fbc": "fb.1.1.A"}
    assert click_ids_to_text(SessionContext("s_1")) is None
    assert click_ids_from(None) == {} and click_ids_from({"fbc": "x", "n": 1}) == {"fbc": "x"}
