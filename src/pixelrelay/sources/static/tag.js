/* pixelrelay tag: one event_id for every ad platform's Pixel on the page and the server.
   The server serves it with its config and, after this core, one bridge per configured
   destination type (destinations/<type>/bridge.js), each calling its platform's Pixel. */
(function (w, d) {
  'use strict';
  // Filled by the server: the names derived event_ids follow (the first destination's),
  // the source's defaults, the cookies and click ids its destination types declare
  // (cookies: [[cookie, user key]], given: the user keys a host may hand in) and each
  // bridge's name table.
  var CONFIG = /*__PIXELRELAY_CONFIG__*/{};
  var prior = w.pixelrelay;
  if (prior && prior.loaded) { return; }
  var script = d.currentScript;
  var S = {
    key: null,
    endpoint: script && script.src ? new URL(script.src, d.baseURI).origin : '',
    consentRequired: !!CONFIG.consentRequired,
    pageViews: !!CONFIG.pageViews,
    consent: null, // explicit pixelrelay('consent', ...) state; wins over Consent Mode
    user: {},
    pending: [], // [work, goesWhenDenied] held back until init / consent / settled
    // False until the page's own commands (queued or inline) have run, so a consent call
    // made after init in the same page load still comes before the first hit.
    settled: false,
    told: null, // the decided consent this page load has told the server (see tell())
    watching: false, // page views: history watched
    lastPage: null,
    // Proposed session id for this page load: hits sent together before the first answer
    // has set the cookie would otherwise each start a session of their own.
    hint: null,
    // What a host hands in through init (url, referrer, the declared cookies' and click
    // ids): a sandboxed frame cannot read the shop's cookies or URL, a single-page app
    // knows them better.
    given: {},
    ga4: null, // GA4 event name -> tracked name, while dataLayer: true
    scanned: null // the dataLayer array whose earlier pushes have been read
  };
  var MAX_PENDING = 100;
  // An opaque-origin frame (a sandbox, such as Shopify's custom pixels) has no cookies to
  // send, and is answered without credentials (Access-Control-Allow-Origin: *), which a
  // credentialed request could not read: it would be sent again by sendBeacon.
  var OPAQUE = w.origin === 'null';
  var CONSENT_KEYS = ['marketing', 'ad_user_data', 'ad_personalization'];

  function own(o, k) { return Object.prototype.hasOwnProperty.call(o, k); }

  function put(o, k, v) { if (v !== undefined) { o[k] = v; } }

  function warn(e) {
    try {
      if (w.console && w.console.warn) { w.console.warn('pixelrelay:', e); }
    } catch (x) { /* nowhere left to say it */ }
  }

  // Every command, held piece of work and Pixel call runs on its own: one that throws (a
  // cookie jar an opaque-origin sandbox refuses, a broken Pixel, a page's odd value) must
  // not take the commands after it along.
  function safely(f, args) {
    try { return f.apply(null, args || []); } catch (e) { warn(e); return undefined; }
  }

  // The server's mapping.name_key: known names match whatever their case and separators.
  function nameKey(name) { return name.replace(/[\s_\-.:\/]+/g, '').toLowerCase(); }

  // A name under a table {map: exact overrides, keys: nameKey -> name}, as the server maps.
  function mapWith(table, name) {
    var m = table.map || {}, keys = table.keys || {}, k = nameKey(name);
    if (own(m, name) && m[name]) { return m[name]; }
    return own(keys, k) && keys[k] ? keys[k] : name;
  }

  function mapName(name) { return mapWith(CONFIG, name); }

  function isUpper(c) { return c >= 'A' && c <= 'Z'; }
  function isLower(c) { return c >= 'a' && c <= 'z'; }
  function isDigit(c) { return c >= '0' && c <= '9'; }

  // The same rule as mapping.snake_case on the server (AddToCart -> add_to_cart),
  // written without regex lookbehind, which older Safari lacks.
  function snake(name) {
    var out = '';
    for (var i = 0; i < name.length; i++) {
      var c = name.charAt(i), prev = name.charAt(i - 1), next = name.charAt(i + 1);
      if (i > 0 && isUpper(c) && (isLower(prev) || isDigit(prev) ||
          (isUpper(prev) && isLower(next)))) { out += '_'; }
      out += c;
    }
    return out.replace(/[^A-Za-z0-9]+/g, '_').replace(/^_+|_+$/g, '').toLowerCase();
  }

  function uuid() {
    var c = w.crypto;
    if (c && c.randomUUID) { return c.randomUUID(); }
    var b = new Uint8Array(16);
    c.getRandomValues(b);
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = '';
    for (var i = 0; i < 16; i++) {
      h += (b[i] + 256).toString(16).slice(1);
      if (i === 3 || i === 5 || i === 7 || i === 9) { h += '-'; }
    }
    return h;
  }

  function eventId(mapped, props, opts) {
    if (opts && opts.event_id) { return String(opts.event_id); }
    // Same derivation as the server and the Shopify webhook, so all copies deduplicate.
    if (props && props.order_id) { return 'ord_' + props.order_id + '_' + snake(mapped); }
    return uuid();
  }

  function state(v) {
    if (v === true || v === 'granted') { return 'granted'; }
    if (v === false || v === 'denied') { return 'denied'; }
    return undefined;
  }

  // Google Consent Mode: the last consent default/update command in dataLayer, per key.
  // `decided` tells an update (the visitor chose) from a default (not asked yet).
  function consentMode() {
    var dl = w.dataLayer, found = null;
    if (!dl || !dl.length) { return null; }
    for (var i = 0; i < dl.length; i++) {
      var e = dl[i];
      if (e && e[0] === 'consent' && (e[1] === 'default' || e[1] === 'update') &&
          e[2] && typeof e[2] === 'object') {
        found = found || {};
        if (e[1] === 'update') { found.decided = true; }
        if (e[2].ad_storage) { found.marketing = state(e[2].ad_storage); }
        if (e[2].ad_user_data) { found.ad_user_data = state(e[2].ad_user_data); }
        if (e[2].ad_personalization) {
          found.ad_personalization = state(e[2].ad_personalization);
        }
      }
    }
    return found;
  }

  function currentConsent() {
    var c = S.consent || consentMode();
    if (!c) { return null; }
    var out = {decided: S.consent ? true : !!c.decided}, any = false;
    for (var i = 0; i < CONSENT_KEYS.length; i++) {
      var v = state(c[CONSENT_KEYS[i]]);
      if (v) { out[CONSENT_KEYS[i]] = v; any = true; }
    }
    if (any && typeof c.region === 'string' && c.region) { out.region = c.region; }
    return any ? out : null;
  }

  // 'send' | 'hold' | 'drop'. A visitor who said no: only `always` work goes (link and
  // consent hits, which tell the server the answer and nothing else). Not answered yet:
  // held where consent is required, or where Consent Mode's default is "denied" (not asked
  // yet), so the landing is not lost; otherwise sent, and the server applies what it carries.
  function gate(always) {
    if (!S.key || !S.settled) { return 'hold'; }
    var c = currentConsent();
    if (c && c.decided && c.marketing === 'denied') { return always ? 'send' : 'drop'; }
    if (c && c.marketing === 'granted') { return 'send'; }
    return S.consentRequired || (c && c.marketing === 'denied') ? 'hold' : 'send';
  }

  function run(work, always) {
    var g = gate(always);
    if (g === 'send') {
      safely(work);
    } else if (g === 'hold' && S.pending.length < MAX_PENDING) {
      S.pending.push([work, always]);
    }
  }

  function flush() {
    var todo = S.pending;
    S.pending = [];
    for (var i = 0; i < todo.length; i++) { safely(run, todo[i]); }
    safely(tell);
  }

  function consentKey(c) {
    return c.marketing + ',' + c.ad_user_data + ',' + c.ad_personalization + ',' + c.region;
  }

  // Once per page load and on every change, the server learns the visitor's answer, granted
  // or denied, so an order reported later for this session or cart carries it. Any hit
  // carries it; a consent-only hit is sent only when none did. Never held: every change
  // that could let it go (init, settling, an answer) flushes, and so calls this again.
  function tell() {
    var c = currentConsent();
    if (c && c.decided && consentKey(c) !== S.told && gate(true) === 'send') {
      post({page: here()});
    }
  }

  // In an opaque-origin frame reading document.cookie throws a SecurityError: no value.
  function readCookie(name) {
    var jar = '';
    try { jar = d.cookie || ''; } catch (e) { return null; }
    var parts = jar ? jar.split('; ') : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf('=');
      if (parts[i].slice(0, eq) === name) { return decodeURIComponent(parts[i].slice(eq + 1)); }
    }
    return null;
  }

  function beacon(url, data) {
    if (w.navigator && w.navigator.sendBeacon) {
      w.navigator.sendBeacon(url, data);
    }
  }

  // keepalive lets the request outlive the page; text/plain keeps it a CORS "simple
  // request" (no preflight), so the key travels in the body.
  function post(body) {
    body.k = S.key;
    var c = currentConsent();
    if (c) {
      if (c.decided) { S.told = consentKey(c); }
      // A denial goes with its tokens only: not even the page URL, which has click ids.
      if (c.decided && c.marketing === 'denied') { delete body.page; delete body.user; }
      delete c.decided;
      body.consent = c;
      body.consent_source = S.consent ? 'explicit' : 'consent_mode';
    }
    if (body.page) { withContext(body); }
    // A null Origin names no site: the shop's origin (never its URL, which a denial omits).
    if (OPAQUE && S.given.url) { put(body, 'origin', originOf(S.given.url)); }
    body.sid = S.hint = S.hint || 's_' + uuid().replace(/-/g, '');
    var url = S.endpoint + '/v1/collect', data = JSON.stringify(body);
    if (!w.fetch) { beacon(url, data); return; }
    try {
      w.fetch(url, {method: 'POST', keepalive: true,
                    credentials: OPAQUE ? 'omit' : 'include',
                    headers: {'Content-Type': 'text/plain;charset=UTF-8'}, body: data})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (j) {
          // Later hits of this page load propose the server's session: without a cookie (a
          // sandbox) each would otherwise depend on the hint alone.
          if (j && typeof j.session_id === 'string') { api.sessionId = S.hint = j.session_id; }
        })
        ['catch'](function () { beacon(url, data); });
    } catch (e) {
      beacon(url, data);
    }
  }

  // The page as the host says it is (a sandbox's own URL is not the shop's), else as seen.
  function here() {
    var g = S.given;
    if (g.url) { return {url: g.url, referrer: g.referrer || undefined}; }
    return {url: w.location.href, referrer: g.referrer || d.referrer || undefined};
  }

  function originOf(url) {
    try { return new URL(url).origin; } catch (e) { return undefined; }
  }

  // The visitor's context on every hit that may carry it (not a denial's): the cookies the
  // configured Pixels set (each as its user key) and the ids a host handed in. The server
  // keeps them on the session, as its cookies.
  function withContext(body) {
    var user = body.user || {}, cookies = CONFIG.cookies || [], given = CONFIG.given || [];
    for (var i = 0; i < cookies.length; i++) {
      var key = cookies[i][1], v = S.given[key] || readCookie(cookies[i][0]);
      if (v && !user[key]) { user[key] = v; }
    }
    for (var j = 0; j < given.length; j++) {
      if (S.given[given[j]] && !user[given[j]]) { user[given[j]] = S.given[given[j]]; }
    }
    for (var k in user) { if (own(user, k)) { body.user = user; break; } }
  }

  // The bridges (appended by the server): each gets its own name table and calls its
  // platform's Pixel; every call on its own, so one broken Pixel costs no other.
  var BRIDGES = [];
  var LIB = {mapName: mapWith, nameKey: nameKey};

  function bridge(type, make) {
    var tables = CONFIG.bridges || {};
    if (!own(tables, type)) { return; }
    var b = safely(make, [w, tables[type] || {}, LIB]);
    if (b) { BRIDGES.push(b); }
  }

  function each(method, args) {
    for (var i = 0; i < BRIDGES.length; i++) {
      var f = BRIDGES[i][method];
      if (typeof f === 'function') { safely(f, args); }
    }
  }

  function track(name, props, opts) {
    if (typeof name !== 'string' || !name) { return null; }
    props = props || {};
    var mapped = mapName(name), id = eventId(mapped, props, opts);
    var at = Math.floor(Date.now() / 1000), page = here();
    run(function () {
      each('track', [name, props, id]);
      var user = {}, u = S.user;
      for (var k in u) { if (own(u, k) && u[k]) { user[k] = u[k]; } }
      post({event: name, event_id: id, timestamp: at, page: page, properties: props,
            user: user});
    });
    return id;
  }

  // Kept for later track calls, and posted now: the server hashes it and links it to the
  // session, so a server event with the same email finds this visitor's context.
  function identify(who) {
    who = who || {};
    var keys = ['email', 'phone', 'external_id'], given = {}, any = false, page = here();
    for (var i = 0; i < keys.length; i++) {
      if (who[keys[i]]) { S.user[keys[i]] = given[keys[i]] = String(who[keys[i]]); any = true; }
    }
    if (!any) { return; }
    run(function () {
      var who = {}, u = S.user;
      for (var k in u) { if (own(u, k)) { who[k] = u[k]; } }
      each('identify', [who]);
      post({identify: given, page: page});
    });
  }

  function consent(c) {
    S.consent = S.consent || {};
    for (var i = 0; i < CONSENT_KEYS.length; i++) {
      var v = state(c && c[CONSENT_KEYS[i]]);
      if (v) { S.consent[CONSENT_KEYS[i]] = v; }
    }
    if (c && typeof c.region === 'string' && c.region) { S.consent.region = c.region; }
    if (S.consent.marketing === 'granted') { each('consent', [true]); }
    if (S.consent.marketing === 'denied') { each('consent', [false]); }
    flush();
  }

  function link(tokens) {
    var l = {};
    if (tokens && tokens.cart_token) { l.cart_token = String(tokens.cart_token); }
    if (tokens && tokens.checkout_token) { l.checkout_token = String(tokens.checkout_token); }
    if (!l.cart_token && !l.checkout_token) { return; }
    var page = here();
    run(function () { post({link: l, page: page}); }, true);
  }

  function pageView() {
    var path = w.location.pathname + w.location.search;
    if (path === S.lastPage) { return; }
    S.lastPage = path;
    track('PageView', {});
  }

  // Single-page apps change pages through the History API without a load.
  function watchHistory() {
    var h = w.history;
    ['pushState', 'replaceState'].forEach(function (m) {
      var orig = h[m];
      h[m] = function () {
        var r = orig.apply(this, arguments);
        pageView();
        return r;
      };
    });
    w.addEventListener('popstate', pageView);
  }

  var GIVEN_KEYS = ['url', 'referrer'].concat(
    (CONFIG.cookies || []).map(function (c) { return c[1]; }), CONFIG.given || []);

  function init(opts) {
    opts = opts || {};
    S.key = opts.key || S.key;
    if (opts.endpoint) { S.endpoint = String(opts.endpoint).replace(/\/+$/, ''); }
    if (opts.consentRequired !== undefined) { S.consentRequired = !!opts.consentRequired; }
    if (opts.pageViews !== undefined) { S.pageViews = !!opts.pageViews; }
    // init may be called again (a single-page app's next page): only what it names changes.
    for (var i = 0; i < GIVEN_KEYS.length; i++) {
      var v = opts[GIVEN_KEYS[i]];
      if (typeof v === 'string' && v) { S.given[GIVEN_KEYS[i]] = v; }
    }
    if (typeof opts.sessionId === 'string' && opts.sessionId) { S.hint = opts.sessionId; }
    if (opts.dataLayer) { S.ga4 = ga4Names(opts.dataLayer); }
    watchDataLayer();
    if (S.pageViews && !S.watching) { S.watching = true; pageView(); watchHistory(); }
    flush();
  }

  // GA4's recommended events (as GTM and gtag.js push them) -> the name the tag tracks,
  // then mapped like any track call (by the first destination's names and its event_map). Not sent: page_view (see pageViews),
  // view_item_list, select_item, view_cart, remove_from_cart, add_shipping_info, refund and
  // the rest: no TikTok standard event means them. `dataLayer: {events: {...}}` adds to or
  // (with null) removes from this table.
  var GA4_EVENTS = {
    view_item: 'ViewContent', add_to_cart: 'AddToCart', add_to_wishlist: 'AddToWishlist',
    begin_checkout: 'InitiateCheckout', add_payment_info: 'AddPaymentInfo',
    purchase: 'Purchase', search: 'Search', sign_up: 'CompleteRegistration',
    generate_lead: 'Lead'
  };
  var MAX_ITEMS = 1000; // the server's limit on contents

  function ga4Names(opt) {
    var names = {}, extra = opt && typeof opt === 'object' ? opt.events : null, k;
    for (k in GA4_EVENTS) { if (own(GA4_EVENTS, k)) { names[k] = GA4_EVENTS[k]; } }
    if (extra && typeof extra === 'object') {
      for (k in extra) { if (own(extra, k)) { names[k] = extra[k] ? String(extra[k]) : null; } }
    }
    return names;
  }

  function num(v) {
    var n = typeof v === 'string' && v.trim() ? Number(v) : v;
    return typeof n === 'number' && isFinite(n) && n >= 0 ? n : undefined;
  }

  function text(v) {
    return (typeof v === 'string' && v) || (typeof v === 'number' && isFinite(v)) ?
      String(v) : undefined;
  }

  // ecommerce.items -> contents, in the names TikTok reads.
  function contents(items) {
    var out = [];
    if (!items || typeof items.length !== 'number') { return out; }
    for (var i = 0; i < items.length && out.length < MAX_ITEMS; i++) {
      var it = items[i], c = {}, qty = num(it && it.quantity), any = false;
      if (!it || typeof it !== 'object') { continue; }
      put(c, 'content_id', text(it.item_id));
      put(c, 'content_name', text(it.item_name));
      put(c, 'content_category', text(it.item_category));
      put(c, 'brand', text(it.item_brand));
      put(c, 'price', num(it.price));
      put(c, 'quantity', qty !== undefined && qty % 1 === 0 ? qty : undefined);
      for (var k in c) { if (own(c, k)) { any = true; break; } }
      if (any) { out.push(c); }
    }
    return out;
  }

  // The event's properties from its ecommerce object (the dataLayer form) or its params
  // (the gtag form); `top` is the push itself, where GTM setups put search_term and value.
  function ga4Props(ec, top) {
    function pick(k) { return ec[k] !== undefined && ec[k] !== null ? ec[k] : top[k]; }
    var p = {}, items = contents(ec.items), cur = pick('currency');
    if (items.length) { p.contents = items; p.content_type = 'product'; }
    put(p, 'value', num(pick('value')));
    if (typeof cur === 'string' && /^[A-Za-z]{3}$/.test(cur)) {
      p.currency = cur.toUpperCase();
    }
    // The order id: the tag derives the order's event_id from it, as the webhook does.
    put(p, 'order_id', text(pick('transaction_id')));
    put(p, 'query', text(pick('search_term')));
    return p;
  }

  function first(v) { return v && typeof v === 'object' && v.length ? v[0] : v; }

  // GA4's user-provided data (enhanced conversions) and user_id, as identify would take
  // them; a pre-hashed sha256_* value passes as it is (the server keeps 64-hex as hashed).
  function ga4User(data, userId) {
    var who = {}, changed = false, u = data && typeof data === 'object' ? data : {};
    put(who, 'email', text(first(u.email)) || text(first(u.email_address)) ||
        text(first(u.sha256_email_address)));
    put(who, 'phone', text(first(u.phone_number)) || text(first(u.phone)) ||
        text(first(u.sha256_phone_number)));
    put(who, 'external_id', text(userId));
    for (var k in who) { if (own(who, k) && who[k] !== S.user[k]) { changed = true; } }
    if (changed) { identify(who); } // once per new value, not per push
  }

  // One dataLayer message: {event, ecommerce, user_data, user_id} or a gtag() arguments
  // object ('event', name, params) / ('set', ...) / ('config', id, params). Consent
  // commands are Consent Mode's, read by consentMode(); an {ecommerce: null} clear and
  // GTM's own gtm.* events map to nothing.
  function ga4(m) {
    var name, params, top;
    if (!m || typeof m !== 'object') { return; }
    if (typeof m.length === 'number' && typeof m[0] === 'string') {
      var a = m[1], b = m[2];
      if (m[0] === 'set' && a === 'user_data') { ga4User(b); return; }
      if (m[0] === 'set' && a === 'user_id') { ga4User(null, b); return; }
      if (m[0] === 'set' && a && typeof a === 'object') { ga4User(a.user_data, a.user_id); }
      if (m[0] === 'config' && b && typeof b === 'object') { ga4User(b.user_data, b.user_id); }
      if (m[0] !== 'event' || typeof a !== 'string') { return; }
      name = a;
      params = top = b && typeof b === 'object' ? b : {};
    } else {
      name = m.event;
      top = m;
      params = m.ecommerce && typeof m.ecommerce === 'object' ? m.ecommerce : {};
    }
    // Who it is, from any message (GTM setups push user_id on its own): before the event,
    // so the event carries it.
    if (top.user_data || top.user_id) { ga4User(top.user_data, top.user_id); }
    if (typeof name !== 'string' || !own(S.ga4, name) || !S.ga4[name]) { return; }
    track(S.ga4[name], ga4Props(params, top));
  }

  // A Consent Mode update is a dataLayer push: re-decide what is held. With dataLayer: true
  // the pushes made before the tag loaded are read first, then each new one as it comes.
  function watchDataLayer() {
    var dl = w.dataLayer, i;
    if (!dl && S.ga4) { dl = w.dataLayer = []; }
    if (!dl || typeof dl.push !== 'function') { return; }
    if (S.ga4 && S.scanned !== dl) {
      S.scanned = dl;
      for (i = 0; i < dl.length; i++) { safely(ga4, [dl[i]]); }
    }
    if (!dl.pixelrelayWatched) {
      var push = dl.push;
      dl.push = function () {
        var r = push.apply(dl, arguments);
        if (S.ga4 && S.scanned === dl) {
          for (var j = 0; j < arguments.length; j++) { safely(ga4, [arguments[j]]); }
        }
        safely(flush);
        return r;
      };
      dl.pixelrelayWatched = true;
    }
  }

  function settle() {
    if (S.settled) { return; }
    S.settled = true;
    watchDataLayer();
    flush();
  }

  /*__PIXELRELAY_BRIDGES__*/

  var commands = {init: init, track: track, identify: identify, consent: consent, link: link};

  function api(cmd) {
    var f = own(commands, cmd) ? commands[cmd] : null;
    return f ? safely(f, Array.prototype.slice.call(arguments, 1)) : undefined;
  }
  api.loaded = true;
  api.sessionId = null;
  api.snake = snake;
  api.mapName = mapName;
  w.pixelrelay = api;
  var q = (prior && prior.q) || [];
  for (var i = 0; i < q.length; i++) { api.apply(null, q[i]); }
  // Settled once the page's inline scripts have run too (a consent call may follow init in
  // a later script), or at once if the page is leaving.
  if (d.readyState === 'loading') {
    d.addEventListener('DOMContentLoaded', function () { setTimeout(settle, 0); });
  } else {
    setTimeout(settle, 0);
  }
  w.addEventListener('pagehide', settle);
})(window, document);
