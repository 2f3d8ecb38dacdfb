/* pixelrelay tag: one event name and event_id for the TikTok Pixel and the server. */
(function (w, d) {
  'use strict';
  // Filled by the server: the event map it sends with, the source's defaults.
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
    hint: null
  };
  var MAX_PENDING = 100;
  var CONSENT_KEYS = ['marketing', 'ad_user_data', 'ad_personalization'];

  function own(o, k) { return Object.prototype.hasOwnProperty.call(o, k); }

  // The server's mapping.name_key: known names match whatever their case and separators.
  function nameKey(name) { return name.replace(/[\s_\-.:\/]+/g, '').toLowerCase(); }

  function mapName(name) {
    var m = CONFIG.map || {}, keys = CONFIG.keys || {}, k = nameKey(name);
    if (own(m, name) && m[name]) { return m[name]; }
    return own(keys, k) && keys[k] ? keys[k] : name;
  }

  function isUpper(c) { return c >= 'A' && c <= 'Z'; }
  function isLower(c) { return c >= 'a' && c <= 'z'; }
  function isDigit(c) { return c >= '0' && c <= '9'; }

  // The same rule as mapping.snake_case on the server (CompletePayment -> complete_payment),
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
    if (g === 'send') { work(); } else if (g === 'hold' && S.pending.length < MAX_PENDING) {
      S.pending.push([work, always]);
    }
  }

  function flush() {
    var todo = S.pending;
    S.pending = [];
    for (var i = 0; i < todo.length; i++) { run(todo[i][0], todo[i][1]); }
    tell();
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

  function readCookie(name) {
    var parts = d.cookie ? d.cookie.split('; ') : [];
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
      // A denial goes with its tokens only: not even the page URL, which has the ttclid.
      if (c.decided && c.marketing === 'denied') { delete body.page; }
      delete c.decided;
      body.consent = c;
      body.consent_source = S.consent ? 'explicit' : 'consent_mode';
    }
    body.sid = S.hint = S.hint || 's_' + uuid().replace(/-/g, '');
    var url = S.endpoint + '/v1/collect', data = JSON.stringify(body);
    if (!w.fetch) { beacon(url, data); return; }
    try {
      w.fetch(url, {method: 'POST', keepalive: true, credentials: 'include',
                    headers: {'Content-Type': 'text/plain;charset=UTF-8'}, body: data})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (j) { if (j && j.session_id) { api.sessionId = j.session_id; } })
        ['catch'](function () { beacon(url, data); });
    } catch (e) {
      beacon(url, data);
    }
  }

  function here() { return {url: w.location.href, referrer: d.referrer || undefined}; }

  function ttq() { return w.ttq && typeof w.ttq.track === 'function' ? w.ttq : null; }

  function track(name, props, opts) {
    if (typeof name !== 'string' || !name) { return null; }
    props = props || {};
    var mapped = mapName(name), id = eventId(mapped, props, opts);
    var at = Math.floor(Date.now() / 1000), page = here();
    run(function () {
      var t = ttq();
      if (t) { t.track(mapped, props, {event_id: id}); }
      var user = {}, u = S.user, ttp = readCookie('_ttp');
      for (var k in u) { if (own(u, k) && u[k]) { user[k] = u[k]; } }
      if (ttp) { user.ttp = ttp; }
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
      var t = ttq();
      if (t && typeof t.identify === 'function') {
        var pixel = {}, u = S.user;
        if (u.email) { pixel.email = u.email; }
        if (u.phone) { pixel.phone_number = u.phone; }
        if (u.external_id) { pixel.external_id = u.external_id; }
        t.identify(pixel);
      }
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
    var t = w.ttq;
    if (t && S.consent.marketing === 'granted' && t.grantConsent) { t.grantConsent(); }
    if (t && S.consent.marketing === 'denied' && t.revokeConsent) { t.revokeConsent(); }
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

  function init(opts) {
    opts = opts || {};
    S.key = opts.key || S.key;
    if (opts.endpoint) { S.endpoint = String(opts.endpoint).replace(/\/+$/, ''); }
    if (opts.consentRequired !== undefined) { S.consentRequired = !!opts.consentRequired; }
    if (opts.pageViews !== undefined) { S.pageViews = !!opts.pageViews; }
    watchDataLayer();
    if (S.pageViews && !S.watching) { S.watching = true; pageView(); watchHistory(); }
    flush();
  }

  // A Consent Mode update is a dataLayer push: re-decide what is held.
  function watchDataLayer() {
    var dl = w.dataLayer;
    if (dl && typeof dl.push === 'function' && !dl.pixelrelayWatched) {
      var push = dl.push;
      dl.push = function () { var r = push.apply(dl, arguments); flush(); return r; };
      dl.pixelrelayWatched = true;
    }
  }

  function settle() {
    if (S.settled) { return; }
    S.settled = true;
    watchDataLayer();
    flush();
  }

  var commands = {init: init, track: track, identify: identify, consent: consent, link: link};

  function api(cmd) {
    var f = own(commands, cmd) ? commands[cmd] : null;
    return f ? f.apply(null, Array.prototype.slice.call(arguments, 1)) : undefined;
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
