"""Server-rendered HTML of the dashboard, the login form and an event's trace."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from pixelrelay.destinations import REGISTRY
from pixelrelay.diagnostics.match_keys import match_key_note
from pixelrelay.diagnostics.report import KEYS, WINDOWS, DestinationFacts, clause
from pixelrelay.event_ids import PURCHASE_ID_NAME, order_event_id
from pixelrelay.model import Channel, DeliveryState
from pixelrelay.store.rows import RecentRow, RecentSearch

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#14171f;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#cfd6e4}header a.on{color:#fff;font-weight:600}header form{margin-left:auto}
main{padding:16px 24px;max-width:1280px}h2{font-size:16px;margin:22px 0 8px}
table{border-collapse:collapse;background:#fff;width:100%}td,th{padding:4px 8px;
border-bottom:1px solid #e3e6eb;text-align:right}th{background:#eef0f4;font-weight:600}
td.l,th.l{text-align:left}.cards{display:flex;gap:10px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #e3e6eb;border-radius:6px;padding:8px 14px;min-width:96px}
.card b{display:block;font-size:22px}.alert{background:#fff1f0;border:1px solid #f3b7b2;
border-radius:6px;padding:8px 12px;margin:6px 0}.ok{color:#1a7f37}.bad{color:#c62828}
.tag{border-radius:4px;padding:1px 6px;background:#eef0f4;font-size:12px}
pre{background:#fff;border:1px solid #e3e6eb;padding:8px;overflow:auto;white-space:pre-wrap}
.bar{display:inline-block;height:8px;background:#4b7bec;vertical-align:middle}
small{color:#5b6472}
"""


def _doc(title: str, body: str, nav: str = "") -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}"
            f"</title><meta name=viewport content='width=device-width'><style>{CSS}</style>"
            f"</head><body><header><b>pixelrelay</b>{nav}</header><main>{body}</main>"
            "</body></html>")


def _e(v: object) -> str:
    return "—" if v is None else escape(str(v))


def pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.0f}%"


def age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _table(head: Sequence[str], rows: Iterable[Sequence[object]], left: int = 1) -> str:
    th = "".join(f"<th class={'l' if i < left else 'r'}>{escape(h)}</th>"
                 for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f"<td class={'l' if i < left else 'r'}>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body or '<tr><td class=l>none</td></tr>'}</table>"


def login_page(error: str = "", status_note: str = "") -> str:
    msg = f"<p class=bad>{escape(error)}</p>" if error else ""
    note = f"<p>{escape(status_note)}</p>" if status_note else ""
    return _doc("pixelrelay · sign in", f"""<h2>Sign in</h2>{note}{msg}
<form method=post action=/login><label>Admin token <input type=password name=token
 autocomplete=current-password autofocus required></label> <button>Sign in</button></form>
<p><small>Scripts send the token as <code>Authorization: Bearer …</code> or
<code>X-Admin-Token</code>, e.g. to <code>/v1/diagnostics</code>.</small></p>""")


def message_page(title: str, text: str) -> str:
    return _doc(f"pixelrelay · {title}", f"<h2>{escape(title)}</h2><p>{escape(text)}</p>"
                "<p><a href=/>← dashboard</a></p>", "<a href=/>dashboard</a>")


def _nav(window: str, search: RecentSearch) -> str:
    links = " ".join(
        f"<a href='/?{escape(urlencode({'window': w, **search_params(search)}))}' "
        f"class={'on' if w == window else 'off'}"
        f" data-window={w}>{w}</a>" for w in WINDOWS)
    return (f"<a href=/ class=on data-home>dashboard</a><span>Window: {links}</span>"
            f"<a href='/v1/diagnostics?window={window}'>JSON</a>"
            "<a href=/metrics>metrics</a><form method=post action=/logout>"
            "<button>Sign out</button></form>")


# Axis labels every this many buckets: 15 min in 1 h, 6 h in 24 h, a day in 7 d.
_TICK_EVERY = {300.0: 3, 3600.0: 6, 6 * 3600.0: 4}


def trend_svg(received: Sequence[int], delivered: Sequence[int], bucket_s: float,
              since: float) -> str:
    """Received (grey) and delivered (blue) per bucket as paired bars over a UTC time axis;
    bucket i covers [since + i * bucket_s, since + (i + 1) * bucket_s). No script needed."""
    top = max([*received, *delivered, 1])
    w, h, n = 720, 90, max(len(received), 1)
    step = w / n
    every = _TICK_EVERY.get(bucket_s, max(1, n // 6))
    fmt = "%H:%M" if n * bucket_s <= 86400 else "%a %d %b"
    bars = []
    for i in range(0, n + 1, every):
        x = min(i * step, w - 1)
        label = datetime.fromtimestamp(since + i * bucket_s, UTC).strftime(fmt)
        anchor = "start" if i == 0 else "end" if i == n else "middle"
        bars.append(f"<line x1={x:.1f} y1={h + 1} x2={x:.1f} y2={h + 5} stroke='#5b6472'/>"
                    f"<text x={x:.1f} y={h + 16} font-size=10 fill='#5b6472' "
                    f"text-anchor={anchor} data-tick>{label}</text>")
    for i, (r, d) in enumerate(zip(received, delivered, strict=True)):
        x = i * step
        for off, v, colour in ((0.1, r, "#b8c0cc"), (0.5, d, "#4b7bec")):
            bh = h * v / top
            bars.append(f"<rect x='{x + step * off:.1f}' y='{h - bh:.1f}' width='{step * 0.4:.1f}'"
                        f" height='{bh:.1f}' fill='{colour}'><title>{v}</title></rect>")
    bars.append(f"<line x1=0 y1={h + 1} x2={w} y2={h + 1} stroke='#5b6472'/>")
    return (f"<svg width={w} height={h + 20} role=img aria-label='received and delivered per "
            f"{age(bucket_s)}'>{''.join(bars)}</svg><br><small>per {age(bucket_s)} (UTC) · grey "
            f"received, blue delivered · peak {top}</small>")


_HASHED = ("email", "phone", "external_id")
_NAME_ADDRESS = ("first_name", "last_name", "zip_code", "city", "state", "country")
# The click and browser ids the registered types declare (their ad click id and their Pixel's
# cookies), as the user object carries them.
_DECLARED_IDS = frozenset(
    k for p in REGISTRY.values()
    for k in (p.attribution_click_id, *(key for _cookie, key in p.browser_cookies)) if k)


def _labelled(keys: Iterable[str]) -> tuple[tuple[str, str], ...]:
    return tuple((k, "ip + user_agent" if k == "ip_ua" else k) for k in keys)


# The report's match keys under the names of the `user` object, grouped by how platforms use
# them; ip_ua is the share with both `ip` and `user_agent`. Every counted key is in one group.
MATCH_KEY_GROUPS = (
    ("hashed identifiers", _labelled(k for k in KEYS if k in _HASHED)),
    ("click and browser", _labelled(
        [k for k in KEYS if k in _DECLARED_IDS]
        + [k for k in KEYS if k not in _DECLARED_IDS and k not in (*_HASHED, *_NAME_ADDRESS)])),
    ("name and address", _labelled(k for k in KEYS if k in _NAME_ADDRESS)),
)


def _coverage_table(rows: Iterable[Sequence[object]]) -> str:
    groups = "".join(f"<th colspan={len(names)} class=l data-group>{escape(g)}</th>"
                     for g, names in MATCH_KEY_GROUPS)
    names = "".join(f"<th><code>{escape(label)}</code></th>"
                    for _g, pairs in MATCH_KEY_GROUPS for _k, label in pairs)
    body = "".join("<tr>" + "".join(f"<td class={'l' if i == 0 else 'r'}>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return (f"<table><tr><th rowspan=2 class=l>Event</th><th rowspan=2>Events</th>{groups}"
            f"<th rowspan=2>Score</th></tr><tr>{names}</tr>{body}</table>")


def _source_ids(ids: dict[str, str]) -> str:
    return "<br>".join(f"<small>{escape(source)}</small> <code data-pixel>{escape(ident)}</code>"
                       for source, ident in ids.items())


def _resume_form(name: str, csrf: str) -> str:
    """A paused destination's Resume button: a same-origin form carrying the session's CSRF
    token (the session cookie alone is not enough to act)."""
    return (f"<form method=post action='/destinations/{quote(name, safe='')}/resume'>"
            f"<input type=hidden name=csrf value='{escape(csrf)}'>"
            f"<button data-resume='{escape(name)}'>Resume</button></form>")


def search_params(search: RecentSearch) -> dict[str, str]:
    """The search as query parameters, the empty ones left out."""
    return {k: v for k, v in (("q", search.q), ("state", search.state),
                              ("destination", search.destination),
                              ("channel", search.channel)) if v}


def _choice(name: str, label: str, options: Iterable[str], chosen: str) -> str:
    opts = "".join(f"<option{' selected' if o == chosen else ''}>{escape(o)}</option>"
                   for o in options)
    return (f"<label>{label} <select name={name}><option value=''>any</option>{opts}"
            "</select></label>")


def _search_form(window: str, search: RecentSearch, destinations: Sequence[str]) -> str:
    return (f"<form method=get action=/ data-search><input type=hidden name=window "
            f"value={window}><input name=q value=\"{escape(search.q)}\" "
            "placeholder='event_id prefix, order id or event name'> "
            + _choice("state", "state", [s.value for s in DeliveryState], search.state) + " "
            + _choice("destination", "destination", destinations, search.destination) + " "
            + _choice("channel", "channel", [c.value for c in Channel], search.channel)
            + " <button>Search</button></form>")


def diagnostics_page(r: dict[str, Any], recent: Sequence[RecentRow], search: RecentSearch,
                     refused: Sequence[dict[str, Any]] = (), csrf: str = "",
                     pixels: Sequence[tuple[str, str]] = (),
                     facts: Mapping[str, DestinationFacts] | None = None) -> str:
    """The dashboard of report `r`; `facts` (by destination) say what its destinations'
    types declare (their platform, their Pixel's call, their match-key weights)."""
    facts = facts or {}
    window = r["window"]
    alerts = "".join(f"<div class=alert data-alert='{escape(a['key'])}'><b>{escape(a['title'])}"
                     f"</b> — {escape(a['detail'])}<br><small>Check: {escape(a['check'])}"
                     "</small></div>" for a in r["alerts"]) or "<p class=ok>No alerts.</p>"
    dests = _table(["Destination", "Sends to", "State", "Test events", "Queue", "In flight",
                    "Oldest pending"], [
        (escape(d["name"]), _source_ids(d["source_ids"]),
         "<span class=ok>active</span>" if d["state"] == "active" else
         f"<span class=bad>paused</span> <small>{_e(d['paused_reason'])}</small>"
         + _resume_form(d["name"], csrf),
         "yes" if d["test_events"] else "no",
         f"<span data-queue='{escape(d['name'])}'>{d['queue_depth']}</span>", d["in_flight"],
         age(d["oldest_pending_age_s"])) for d in r["destinations"]], left=3)
    t = r["totals"]
    cards = "".join(f"<div class=card><small>{label}</small><b data-metric={key}>{t[key]}</b>"
                    "</div>" for key, label in (
                        ("received", "received"), ("delivered", "delivered"),
                        ("rejected", "rejected"), ("suppressed", "suppressed (consent)"),
                        ("filtered", "filtered"), ("duplicates", "duplicates"),
                        ("merged", "merged copies"),
                        ("pending", "pending"), ("gave_up", "expired / gave up")))
    rows = []
    for e in r["events"]:
        dl = e["destinations"] or [{"destination": "—", "dest_event": "—", **dict.fromkeys(
            ("delivered", "rejected", "gave_up", "suppressed", "filtered", "pending"), 0)}]
        for i, d in enumerate(dl):
            head = [escape(e["event"]), e["received"], e["duplicates"], e["rejected_ingest"]]
            name = escape(d["dest_event"])
            if d.get("looks_like"):
                name += (f" <span class=tag data-lookalike title='a custom event: the "
                         f"platform optimises only on standard names'>custom; meant "
                         f"{escape(d['looks_like'])}?</span>")
            rows.append([*(head if i == 0 else ["", "", "", ""]), escape(d["destination"]),
                         name, d["delivered"], d["rejected"], d["gave_up"],
                         d["suppressed"], d["filtered"], d["pending"]])
    events = _table(["Event", "Received", "Duplicates", "Rejected at ingest", "Destination",
                     "Name sent", "Delivered", "Rejected by it", "Expired / gave up",
                     "Suppressed", "Filtered", "Pending"], rows, left=1)
    reasons = _table(["Event", "Where", "Field / code", "Reason", "Count"], [
        (escape(x["event"]), escape(x["stage"]), _e(x["field"] or x["code"]),
         _e(x["reason"]), x["count"]) for x in r["rejections"]], left=4)
    mk = r["match_keys"]
    keys = [k for _group, names in MATCH_KEY_GROUPS for k, _label in names]

    def cov_cells(c: dict[str, float]) -> list[str]:
        return [f"<span class=bar style='width:{c[k] * 40:.0f}px'></span> {pct(c[k])}"
                for k in keys]

    coverage = _coverage_table([
        *[(escape(b["event"]), b["events"], *cov_cells(b["coverage"]), b["score"])
          for b in mk["by_event"]],
        ("<b>all</b>", mk["events"], *cov_cells(mk["coverage"]),
         f"<b data-metric=score>{mk['score']}</b>")])
    weights = _weights_note(mk, facts)
    notes = r["ingest_notices"]
    refused_hits = _table(["Reason", "Origin", "Count"], [
        (escape(x["reason"]), _e(x["origin"]), x["count"]) for x in r["collect_refused"]],
        left=2)
    dropped = _table(["Field (dropped, event kept)", "Count"], [
        (f"<code>{escape(x['field'])}</code>", x["count"]) for x in notes["dropped_fields"]])
    dd, en, lat = r["dedup_readiness"], r["enrichment"], r["latency_s"]
    recent_rows = [(f"<a href='/v1/events/{quote(x.event_id, safe='')}/trace'>"
                    f"{escape(x.event_id)}</a>", escape(x.name), escape(x.channel),
                    escape(x.states), age(r["generated_at"] - x.received_at) + " ago")
                   for x in recent]
    body = f"""<h2>Alerts</h2>{alerts}
<h2>Destinations</h2>{dests}
<h2>Last {window} <small>computed {when(r["generated_at"])}</small></h2>
<div class=cards>{cards}</div>
<p>{trend_svg(r["trend"]["received"], r["trend"]["delivered"], r["trend"]["bucket_s"],
              r["since"])}</p>
<h2>Per event</h2>{events}
<p><small>Received = accepted + duplicates + rejected at ingest. Duplicates are repeats of an
event_id within the platforms' 48 h window, absorbed (never stored twice) and counted in a table;
merged copies are the duplicates whose match keys (and, from a server copy, values) were
folded into a first copy not yet sent. Pending includes in-flight.</small></p>
<h2>Rejected, by reason</h2>{reasons}
<h2>Fields dropped at ingest</h2>{dropped}
<h2>Browser tag hits refused</h2>{refused_hits}
<p><small>Unknown keys are dropped and the event is kept. Unusable values dropped (e.g. an
invalid email): <b data-metric=dropped_values>{notes["dropped_values"]}</b>. Phones hashed
though phonenumbers could not confirm the range (new numbering): <b
data-metric=unverified_phones>{notes["unverified_phones"]}</b>.</small></p>
<h2>Match keys (delivered and pending events)</h2>{coverage}
<p><small>Estimated match quality, 0-10 = 10 x the sum of weight x share of events carrying the key,
with each destination type's weights: {weights}. ip_ua counts events with both IP and user
agent. An estimate from the keys present, not the platform's own score.</small></p>
<div class=cards>
<div class=card><small>dedup readiness</small><b data-metric=dedup>{pct(dd["share"])}</b>
<small>{dd["also_from_browser"]} of {dd["server_events"]} server events also from the tag</small>
<p data-guidance><small>{_dedup_guidance(dd["share"], dd["server_events"], facts)}</small></p>
</div><div class=card><small>enrichment rate</small><b data-metric=enrichment>{pct(en["rate"])}
</b><small>{en["enriched"]} of {en["server_events"]} server events</small></div>
<div class=card><small>latency p50 / p95</small><b data-metric=latency>{age(lat["p50"])} /
{age(lat["p95"])}</b><small>accepted → delivered, {lat["delivered"]} events</small></div></div>
<h2>Recent events</h2>{_search_form(window, search, [d["name"] for d in r["destinations"]])}
{_table(["event_id", "Event", "Channel", "Deliveries", "Received"], recent_rows, left=4)}
{_refused(refused, r["generated_at"])}{_pixels(pixels)}"""
    return _doc("pixelrelay · dashboard", body, _nav(window, search))


def _pixels(pixels: Sequence[tuple[str, str]]) -> str:
    """Each browser source's Shopify custom pixel, to copy (the page runs no script)."""
    if not pixels:
        return ""
    boxes = "".join(f"<details data-pixel='{escape(name)}'><summary>browser source "
                    f"<b>{escape(name)}</b></summary><textarea readonly rows=14 "
                    f"style='width:100%;font:12px monospace'>{escape(code)}</textarea>"
                    "</details>" for name, code in pixels)
    return (f"<h2>Shopify custom pixel</h2>{boxes}<p><small>Paste in Shopify admin: Settings "
            "&gt; Customer events &gt; Add custom pixel. It posts to the address of this page; if "
            "shoppers reach the gateway elsewhere, print it with <code>pixelrelay "
            "shopify-pixel --url</code>.</small></p>")


def _weights_note(mk: dict[str, Any], facts: Mapping[str, DestinationFacts]) -> str:
    """The weights behind the scores: the overall one's, then each destination's own score
    where its type weighs otherwise (naming the keys it weighs that are not counted)."""
    def listed(w: Mapping[str, float]) -> str:
        return ", ".join(f"{escape(k)} {v:.2f}" for k, v in w.items() if v)

    out = [f"overall {listed(mk['weights'])}"]
    for d in mk.get("by_destination", ()):
        if dict(d["weights"]) == {k: v for k, v in mk["weights"].items() if v}:
            continue
        f = facts.get(d["destination"])
        uncounted = [k for k in d["weights"] if k not in KEYS]
        out.append(f"<b>{escape(d['destination'])}</b>"
                   + (f" ({escape(f.platform)})" if f else "")
                   + f" <span data-dest-score='{escape(d['destination'])}'>{d['score']}</span>"
                   f" from {listed(d['weights'])}"
                   + (f" ({escape(', '.join(uncounted))} not counted yet)" if uncounted else ""))
    return "; ".join(out)


def _dedup_guidance(share: float | None, server_events: int,
                    facts: Mapping[str, DestinationFacts] | None = None) -> str:
    """What to do about the dedup readiness share, next to it, for the platforms of the
    configured destinations that have a browser Pixel."""
    pixels = {f.platform: f.pixel_call for f in (facts or {}).values() if f.pixel_call}
    names = " or ".join(escape(p) for p in pixels) or "the platform"
    if not server_events:
        return "No server-side events yet in this window."
    if share is not None and share >= 0.8:
        return (f"The tag and the server send most events under one event_id: {names} "
                "counts each once.")
    calls = " and ".join(escape(c) for c in pixels.values()) or "the Pixel's own call"
    example = escape(order_event_id("<order id>", PURCHASE_ID_NAME))
    return (f"Server events whose event_id the tag never sent: if the {names} Pixel sends "
            f"them too, {names} counts them twice unless both carry the same event_id. Send "
            f"browser events with pixelrelay('track', ...) (it fires {calls} with its "
            "event_id), or pass the Pixel's event_id to your backend; purchases use "
            f"{example} on both sides when the tag is given the order_id. Server-only events "
            "(no Pixel copy) need nothing.")


def _refused(rows: Sequence[dict[str, Any]], now: float) -> str:
    """Events of the searched id or order refused at ingest: never stored, so only here."""
    if not rows:
        return ""
    return "<h2>Refused at ingest</h2>" + _table(
        ["event_id", "Order", "Event", "Channel", "Problems", "When"],
        [(_e(x["event_id"]), _e(x["order_id"]), escape(x["event"]), escape(x["channel"]),
          "<br>".join(f"<code>{escape(p['field'])}</code>: {escape(p['reason'])}"
                      for p in x["problems"]), age(now - x["at"]) + " ago")
         for x in rows], left=5)


def trace_page(t: dict[str, Any]) -> str:
    parts = [f"<p><a href=/>← dashboard</a></p><h2>Trace of <code>{escape(t['event_id'])}"
             "</code></h2>"]
    if not t["deliveries"]:
        parts.append("<p>No delivery of this event_id is known (never received, rejected at "
                     "ingest, or older than 48 h).</p>")
    if t.get("copies"):
        parts.append("<p data-copies>Sent by: " + ", ".join(
            f"{escape(str(c['channel']))} ({escape(c['outcome'])}, {when(c['at'])})"
            for c in t["copies"] if c["at"] is not None) + ". A later copy merges its match "
            "keys into a pending first copy (a server copy's values win over the tag's); once "
            "sent, a later copy is a duplicate.</p>")
    note = None if t.get("event") is None else match_key_note(
        t["event"], sent=any(d["attempts"] for d in t["deliveries"]))
    if note:
        parts.append(f"<p class=bad data-match-keys>{escape(note)}</p>")
    for d in t["deliveries"]:
        paused = ""
        if d["destination_paused"] and d["state"] in ("pending", "in_flight"):
            paused = (f" <span class=bad data-paused>waiting: {escape(d['destination'])} is "
                      f"paused</span> <small>{escape(clause(d['paused_reason']))}; it is "
                      "sent once the destination is resumed (dashboard)</small>")
        parts.append(
            f"<h2>{escape(d['destination'])} → {escape(d['dest_event'])}: "
            f"<span data-state>{escape(d['state'])}</span>{paused}</h2><p>"
            f"<span data-attempts>{d['attempts']}</span> "
            f"request{'' if d['attempts'] == 1 else 's'} made · "
            f"last code {_e(d['last_code'])} · message {_e(d['last_message'])} · request_id "
            f"{_e(d['last_request_id'])} · {_e(d['dead_reason'] or d['reason'])}"
            + ("" if d["latency_s"] is None else
               f" · <span data-latency>accepted → delivered {age(d['latency_s'])}</span>")
            + "</p>")
        parts.append(_table(["At", "HTTP", "Code", "Message", "request_id", "Request took",
                             "Outcome", "Batch"], [
            (when(a["at"]), _e(a["http_status"]), _e(a["code"]), _e(a["message"]),
             _e(a["request_id"]), f"{a['latency_ms']:.1f} ms", escape(a["outcome"]),
             a["batch_size"]) for a in d["log"]], left=1))
        parts.append(f"<p><small>Accepted {when(d['accepted_at'])}. Accepted → delivered: "
                     "from the gateway's acceptance to the answer that delivered it (queue, "
                     "batching and retries included); request took: from sending one request "
                     "to its answer. Batch: how many events the request carried; a refused "
                     "batch is halved until the bad event stands alone.</small></p>")
        parts.append(f"<p>Payload as sent (hashed):</p><pre data-payload>{_e(d['payload_text'])}"
                     "</pre>")
    if t.get("event_text"):
        parts.append(f"<p>Stored event (hashed):</p><pre>{escape(t['event_text'])}</pre>")
    return _doc(f"pixelrelay · trace {t['event_id']}", "".join(parts),
                "<a href=/>dashboard</a>")
