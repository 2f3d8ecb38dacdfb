"""An emulation of Shopify's lax custom-pixel sandbox, for the pixel in real Chromium.

The shop's page (its own loopback origin) embeds `<iframe sandbox="allow-scripts">`: an
opaque origin, as Shopify's `/wpm@…/sandbox/…` frame is. The frame's small runtime gives the
pixel Shopify's objects: `analytics.subscribe`, `browser.cookie` (get/set carried over
postMessage to the top page, which reads and writes its own first-party cookies), `init`
(the top page's `context`, `data.cart`/`data.customer`, `customerPrivacy`) and
`customerPrivacy.subscribe('visitorConsentCollected', …)` (also as `api.customerPrivacy`).
Event payloads follow the types of @shopify/web-pixels-extension (PixelEvents): `id`,
`clientId`, `name`, `timestamp`, `type`, `context` {document, navigator, window}, `data`.

The consent banner's answer is kept in the shop's own cookie, as Shopify keeps it in
`_tracking_consent`: on later pages `init.customerPrivacy` says what the visitor chose, and
before any answer `marketingAllowed` is false, as in a region that asks first.

In the frame, `ttq` and `fbq` are stand-ins that record their calls (nothing is loaded from
outside loopback), `fetch` is wrapped to record what each hit got (a status, or the CORS/network
error), and touching the frame's own `document.cookie` or `localStorage` is recorded.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

SANDBOX_PATH = "/wpm@0.0.411/custom/web-pixel-1@1/sandbox/modern/"
CONSENT_COOKIE = "shop_consent"  # the shop's record of the banner's answer

_TOP = """<!doctype html><html><head><meta charset=utf-8><title>{title}</title></head><body>
<button id=accept>Accept</button> <button id=decline>Decline</button>
<iframe id=wpm sandbox="allow-scripts" src="{sandbox}" style="display:none"></iframe>
<script>
(function () {{
  var frame = document.getElementById('wpm'), ready = false, queue = [], seq = 0;
  var INIT_DATA = {init_data};
  function readCookie(name) {{
    var parts = document.cookie ? document.cookie.split('; ') : [];
    for (var i = 0; i < parts.length; i++) {{
      var eq = parts[i].indexOf('=');
      if (parts[i].slice(0, eq) === name) {{ return parts[i].slice(eq + 1); }}
    }}
    return '';
  }}
  function privacy() {{
    var yes = readCookie('{consent}') === 'yes';
    return {{analyticsProcessingAllowed: yes, marketingAllowed: yes,
             preferencesProcessingAllowed: yes, saleOfDataAllowed: yes}};
  }}
  function place() {{
    var l = window.location;
    return {{hash: l.hash, host: l.host, hostname: l.hostname, href: l.href,
             origin: l.origin, pathname: l.pathname, port: l.port, protocol: l.protocol,
             search: l.search}};
  }}
  function context() {{
    return {{
      document: {{characterSet: document.characterSet, location: place(),
                  referrer: document.referrer, title: document.title}},
      navigator: {{cookieEnabled: navigator.cookieEnabled, language: navigator.language,
                   languages: Array.prototype.slice.call(navigator.languages),
                   userAgent: navigator.userAgent}},
      window: {{innerHeight: innerHeight, innerWidth: innerWidth, location: place(),
                origin: location.origin, outerHeight: outerHeight, outerWidth: outerWidth,
                pageXOffset: pageXOffset, pageYOffset: pageYOffset, screenX: screenX,
                screenY: screenY, scrollX: scrollX, scrollY: scrollY}}
    }};
  }}
  function send(m) {{
    if (ready) {{ frame.contentWindow.postMessage(m, '*'); }} else {{ queue.push(m); }}
  }}
  window.shop = {{
    publish: function (name, data) {{
      seq += 1;
      var ev = {{id: 'sh-' + seq + '-' + Date.now(), clientId: 'client-7f3a', name: name,
                 type: 'standard', timestamp: new Date().toISOString(), context: context()}};
      if (data) {{ ev.data = data; }}
      send({{type: 'event', event: ev}});
    }},
    answer: function (yes) {{
      document.cookie = '{consent}=' + (yes ? 'yes' : 'no') + '; path=/';
      send({{type: 'consent', customerPrivacy: privacy()}});
    }}
  }};
  document.getElementById('accept').onclick = function () {{ shop.answer(true); }};
  document.getElementById('decline').onclick = function () {{ shop.answer(false); }};
  window.addEventListener('message', function (e) {{
    if (e.source !== frame.contentWindow) {{ return; }}
    var m = e.data || {{}};
    if (m.type === 'hello') {{
      frame.contentWindow.postMessage({{type: 'init', init: {{
        context: context(), data: INIT_DATA, customerPrivacy: privacy()}}}}, '*');
      ready = true;
      for (var i = 0; i < queue.length; i++) {{ frame.contentWindow.postMessage(queue[i], '*'); }}
      queue = [];
    }} else if (m.type === 'cookie') {{
      // The top frame's own cookies, as Shopify's browser.cookie reaches them.
      if (m.op === 'set') {{
        document.cookie = m.args[1] === undefined || m.args[1] === null ?
          String(m.args[0]) : m.args[0] + '=' + m.args[1];
      }}
      var name = m.op === 'get' ? m.args[0] : String(m.args[0]).split('=')[0];
      frame.contentWindow.postMessage({{type: 'reply', id: m.id, value: readCookie(name)}}, '*');
    }}
  }});
}})();
</script>
<script>{script}</script>
</body></html>"""

_SANDBOX = """<!doctype html><html><head><meta charset=utf-8><script>
(function () {
  var top = window.parent, seq = 0, waiting = {}, subs = {}, seen = [], consentSubs = [];
  window.sandboxTouched = [];
  ['cookie'].forEach(function (k) {
    Object.defineProperty(Document.prototype, k, {configurable: true,
      get: function () { sandboxTouched.push('document.' + k); throw new Error('opaque'); },
      set: function () { sandboxTouched.push('document.' + k); throw new Error('opaque'); }});
  });
  ['localStorage', 'sessionStorage'].forEach(function (k) {
    Object.defineProperty(window, k, {configurable: true,
      get: function () { sandboxTouched.push(k); throw new Error('opaque'); }});
  });
  window.pixelHits = [];
  var realFetch = window.fetch.bind(window);
  window.fetch = function (url, opts) {
    var hit = {url: String(url), body: opts && opts.body,
               credentials: opts && opts.credentials};
    pixelHits.push(hit);
    return realFetch(url, opts).then(function (r) {
      hit.status = r.status;
      return r.clone().json().then(function (j) { hit.answer = j; return r; },
                                   function () { return r; });
    }, function (e) { hit.error = String(e); throw e; });
  };
  window.ttqCalls = [];
  window.ttq = {
    track: function (n, p, o) { ttqCalls.push({name: n, props: p, event_id: o && o.event_id}); },
    identify: function (u) { ttqCalls.push({name: 'identify', props: u}); }
  };
  window.fbqCalls = [];
  window.fbq = function () {
    fbqCalls.push(JSON.parse(JSON.stringify(Array.prototype.slice.call(arguments))));
  };
  function call(op, args) {
    return new Promise(function (resolve) {
      seq += 1;
      waiting[seq] = resolve;
      top.postMessage({type: 'cookie', id: seq, op: op, args: args}, '*');
    });
  }
  var browser = {
    cookie: {get: function (n) { return call('get', [n]); },
             set: function (a, b) { return call('set', [a, b]); }},
    localStorage: {getItem: function () { return Promise.resolve(null); },
                   setItem: function () { return Promise.resolve(); }},
    sendBeacon: function () { return Promise.resolve(false); }
  };
  var analytics = {subscribe: function (name, fn) {
    (subs[name] = subs[name] || []).push(fn);
    seen.forEach(function (ev) { if (ev.name === name) { fn(ev); } });
    return Promise.resolve();
  }};
  var privacy = {subscribe: function (name, fn) {
    if (name === 'visitorConsentCollected') { consentSubs.push(fn); }
    return Promise.resolve();
  }};
  window.addEventListener('message', function (e) {
    if (e.source !== top) { return; }
    var m = e.data || {};
    if (m.type === 'reply') {
      waiting[m.id](m.value);
      delete waiting[m.id];
      window.cookieReplies = (window.cookieReplies || 0) + 1;
    } else if (m.type === 'init') {
      window.analytics = analytics;
      window.browser = browser;
      window.init = m.init;
      window.customerPrivacy = privacy;
      window.api = {analytics: analytics, browser: browser, init: m.init,
                    customerPrivacy: privacy};
      runPixel();
    } else if (m.type === 'event') {
      seen.push(m.event);
      (subs[m.event.name] || []).forEach(function (fn) { fn(m.event); });
    } else if (m.type === 'consent') {
      consentSubs.forEach(function (fn) { fn({customerPrivacy: m.customerPrivacy}); });
    }
  });
  top.postMessage({type: 'hello'}, '*');
})();
function runPixel() {
%s
}
</script></head><body></body></html>"""


@dataclasses.dataclass
class Shop:
    """The shop's pages (path -> the script each runs, e.g. `shop.publish(...)`), the
    init data they render with, and the pixel code its sandbox runs."""

    pixel: str = ""
    pages: dict[str, tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=dict)

    def page(self, path: str, script: str, *, cart: dict[str, Any] | None = None,
             customer: dict[str, Any] | None = None) -> str:
        self.pages[path] = (script, {"cart": cart, "customer": customer,
                                     "shop": {"name": "Journey", "countryCode": "DE",
                                              "myshopifyDomain": "journey.myshopify.com",
                                              "paymentSettings": {"currencyCode": "USD"},
                                              "storefrontUrl": None}})
        return path

    def app(self) -> Starlette:
        async def sandbox(request: Request) -> Response:
            return HTMLResponse(_SANDBOX % self.pixel)

        async def serve(request: Request) -> Response:
            found = self.pages.get(request.url.path)
            if found is None:
                return Response(status_code=404)
            script, data = found
            return HTMLResponse(_TOP.format(
                title=request.url.path, sandbox=SANDBOX_PATH, consent=CONSENT_COOKIE,
                init_data=orjson.dumps(data).decode(), script=script))

        return Starlette(routes=[Route(SANDBOX_PATH, sandbox),
                                 Route("/{path:path}", serve)])


def publish(name: str, data: dict[str, Any] | None = None) -> str:
    """A page script line publishing one standard event."""
    args = orjson.dumps(name).decode() + ("" if data is None else
                                          ", " + orjson.dumps(data).decode())
    return f"shop.publish({args});"


def money(amount: float, currency: str = "USD") -> dict[str, Any]:
    return {"amount": amount, "currencyCode": currency}


def variant(item: dict[str, Any], currency: str = "USD") -> dict[str, Any]:
    """A ProductVariant from an orders/create line item (its sku, variant and product ids)."""
    return {"id": str(item["variant_id"]), "sku": item["sku"], "title": "Green",
            "untranslatedTitle": "Green", "image": None,
            "price": money(float(item["price"]), currency),
            "product": {"id": str(item["product_id"]), "title": item["title"],
                        "untranslatedTitle": item["title"], "vendor": "Apple",
                        "type": "Music", "url": f"/products/{item['product_id']}"}}


def checkout(order: dict[str, Any], token: str, *, order_gid: str | None,
             email: str, phone: str | None = None) -> dict[str, Any]:
    """A Checkout as the checkout events carry it, for the same order as `order` (an
    orders/create body): its line items, total, currency and the buyer's contact."""
    currency = order["currency"]
    items = [{"id": f"gid://shopify/CheckoutLineItem/{i}", "quantity": li["quantity"],
              "title": li["title"], "variant": variant(li, currency),
              "discountAllocations": [], "properties": [], "sellingPlanAllocation": None,
              "finalLinePrice": money(float(li["price"]) * li["quantity"], currency)}
             for i, li in enumerate(order["line_items"], 1)]
    customer_id = str(order["customer"]["id"])
    return {
        "attributes": [], "billingAddress": None, "buyerAcceptsEmailMarketing": False,
        "buyerAcceptsSmsMarketing": False, "currencyCode": currency, "delivery": None,
        "discountApplications": [], "discountsAmount": money(0.0, currency),
        "email": email, "phone": phone, "lineItems": items,
        "localization": {"country": {"isoCode": "DE"}, "language": {"isoCode": "de-DE"},
                         "market": {"handle": "de", "id": "gid://shopify/Market/1"}},
        "order": {"id": order_gid, "customer": {"id": customer_id, "isFirstOrder": True}}
        if order_gid else None,
        "shippingAddress": None, "shippingLine": None, "smsMarketingPhone": None,
        "subtotalPrice": money(float(order["subtotal_price"]), currency),
        "token": token, "totalPrice": money(float(order["total_price"]), currency),
        "totalTax": money(float(order["total_tax"]), currency), "transactions": [],
    }


def hits(page: Any) -> list[dict[str, Any]]:
    """What the pixel posted from the sandbox, with what each got."""
    frame = sandbox_frame(page)
    found: list[dict[str, Any]] = frame.evaluate("window.pixelHits || []")
    for hit in found:
        hit["body"] = orjson.loads(hit["body"]) if hit.get("body") else None
    return found


def ttq_calls(page: Any) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = sandbox_frame(page).evaluate("window.ttqCalls || []")
    return calls


def fbq_calls(page: Any) -> list[list[Any]]:
    calls: list[list[Any]] = sandbox_frame(page).evaluate("window.fbqCalls || []")
    return calls


def settled_unsent(page: Any, replies: int) -> bool:
    """Whether the pixel has had `replies` cookie answers and an event, and sent nothing:
    what it does with them runs in the same task, before this is evaluated."""
    return bool(sandbox_frame(page).evaluate(
        f"(window.cookieReplies || 0) >= {replies} && window.pixelHits.length === 0"))


def touched(page: Any) -> list[str]:
    """What the pixel tried of the sandbox's own cookie and storage (should be nothing)."""
    found: list[str] = sandbox_frame(page).evaluate("window.sandboxTouched || []")
    return found


def sandbox_frame(page: Any) -> Any:
    for frame in page.frames:
        if SANDBOX_PATH in frame.url:
            return frame
    raise AssertionError("no sandbox frame on the page")
