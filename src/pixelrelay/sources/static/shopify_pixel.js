/* pixelrelay for Shopify Customer Events: runs in Shopify's custom-pixel sandbox (an
   opaque-origin frame) with its `analytics`, `browser`, `init` and customerPrivacy objects.
   Its state lives in the shop's own cookies through browser.cookie; the sandbox's own
   document.cookie and storage are never touched. */
(function () {
  'use strict';
  // Filled by `pixelrelay shopify-pixel`: endpoint, site key, content_id choice, the first
  // destination's names of the events, the Pixels to load (type -> pixel id) and their
  // bridges' name tables, the destination types' cookies ([[cookie, user key]]) and
  // landing click ids ([[URL parameter, user key]]), cookie lifetimes.
  var CONFIG = /*__PIXELRELAY_CONFIG__*/{};
  var G = typeof self !== 'undefined' ? self : this;
  var CLICKS = CONFIG.clicks || [];
  var HOLD_MAX = 100;
  var S = {
    consent: 'unknown', // 'granted' | 'denied' | 'unknown' (not answered yet: events held)
    sale: true, // saleOfDataAllowed; false -> limited data use
    ready: false, // the shop's cookies have been read
    held: [], // [work, workWhenDenied] waiting for the cookies or the visitor's answer
    sid: null, // prx_sid: the session, kept in the shop's cookie once marketing is allowed
    pageSid: null, // a session for this page load only (a visitor who said no)
    clicks: {}, // user key -> the landing click id kept in the shop's cookie prx_<param>
    landing: {}, // user key -> the click id this page's URL carries
    ids: {}, // user key -> the value of a Pixel's cookie the destination types declare
    remembered: null, // prx_consent: the visitor's last explicit answer
    cart: null, // the cart token, linked with the first hit of a page load
    cartLinked: false,
    page: null,
    origin: null,
    untold: false, // an answer given on this page the gateway has not heard yet
    loaded: {} // type -> its Pixel has been loaded in this sandbox
  };
  // The page as Shopify saw it at render: the top frame's, never this sandbox's own.
  var I = typeof init !== 'undefined' ? obj(init) : {};
  var D = obj(obj(I.context).document), L = obj(D.location);

  function own(o, k) { return o && Object.prototype.hasOwnProperty.call(o, k); }
  function obj(v) { return v && typeof v === 'object' ? v : {}; }

  // The destination's name for each event, as the server maps it (filled in above).
  function mapName(name) { return own(CONFIG.names, name) ? CONFIG.names[name] : name; }

  // The server's mapping.snake_case, as in tag.js: one event_id for the Pixel and the server.
  function snake(name) {
    var out = '';
    for (var i = 0; i < name.length; i++) {
      var c = name.charAt(i), prev = name.charAt(i - 1), next = name.charAt(i + 1);
      var up = /[A-Z]/.test(c);
      if (i > 0 && up && (/[a-z0-9]/.test(prev) || (/[A-Z]/.test(prev) && /[a-z]/.test(next)))) {
        out += '_';
      }
      out += c;
    }
    return out.replace(/[^A-Za-z0-9]+/g, '_').replace(/^_+|_+$/g, '').toLowerCase();
  }

  function hex(n) {
    var b = new Uint8Array(n), h = '';
    G.crypto.getRandomValues(b);
    for (var i = 0; i < n; i++) { h += (b[i] + 256).toString(16).slice(1); }
    return h;
  }

  function uuid() {
    var h = hex(16);
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-4' + h.slice(13, 16) + '-' +
      ((parseInt(h.charAt(16), 16) & 3) | 8).toString(16) + h.slice(17, 20) + '-' + h.slice(20);
  }

  // The server's session id format (browser_rules._SESSION_ID).
  function newSid() { return 's_' + hex(16); }

  // gid://shopify/OrderIdentity/5633837583468 -> 5633837583468; gid://shopify/Cart/T?key=K
  // -> T: the ids the webhooks use, so every copy of an order derives one event_id.
  function plain(v) {
    if (v === null || v === undefined || v === '') { return null; }
    return String(v).replace(/^gid:\/\/shopify\/[A-Za-z]+\//, '').replace(/\?.*$/, '') || null;
  }

  function param(url, name) {
    var m = /[?&]([^=&#]+)=([^&#]*)/g, found = null, r;
    while ((r = m.exec(url || '')) !== null) {
      if (r[1] === name && r[2]) {
        try { found = decodeURIComponent(r[2].replace(/\+/g, ' ')); } catch (e) { found = r[2]; }
        break;
      }
    }
    return found;
  }

  // --- the shop's first-party cookies, through the sandbox's browser.cookie -------------

  function getCookie(name) {
    try {
      return Promise.resolve(browser.cookie.get(name)).then(function (v) {
        if (!v) { return null; }
        try { return decodeURIComponent(String(v)); } catch (e) { return String(v); }
      }, function () { return null; });
    } catch (e) {
      return Promise.resolve(null);
    }
  }

  function setCookie(name, value, days) {
    var secure = S.origin && S.origin.indexOf('https:') === 0 ? '; secure' : '';
    try {
      Promise.resolve(browser.cookie.set(name + '=' + encodeURIComponent(value) +
        '; path=/; max-age=' + Math.round(days * 86400) + '; samesite=lax' + secure))
        ['catch'](function () {});
    } catch (e) { /* a cookie the shop refuses costs only this page's state */ }
  }

  // --- consent ------------------------------------------------------------------------

  // Shopify's booleans: marketingAllowed true is a yes. At page load false means "no answer
  // yet" as well as "no"; only the visitor's own answer (visitorConsentCollected, or one
  // remembered from an earlier page) is taken as a no.
  function answered(privacy, explicit) {
    privacy = obj(privacy);
    if (own(privacy, 'saleOfDataAllowed')) { S.sale = privacy.saleOfDataAllowed !== false; }
    if (privacy.marketingAllowed === true) { return 'granted'; }
    return explicit ? 'denied' : null;
  }

  function consentBody() {
    if (S.consent === 'granted') {
      return S.sale ? {marketing: 'granted'} : {marketing: 'granted', ad_personalization: 'denied'};
    }
    return {marketing: 'denied', ad_user_data: 'denied', ad_personalization: 'denied'};
  }

  function decide(state, explicit) {
    if (explicit) {
      setCookie('prx_consent', state, CONFIG.consentDays || 180);
      if (state !== S.consent) { S.untold = true; }
    }
    S.consent = state;
    if (!S.ready) { return; }
    if (state === 'granted') { keepSession(); } else { forget(); }
    // The gateway learns an answer given here even when no event carries it: an order
    // reported later by the webhook follows the session's answer.
    if (S.untold) {
      S.untold = false;
      if (!(state === 'granted' && S.held.length)) { tell(); }
    }
    flush();
  }

  function keepSession() {
    S.sid = S.sid || newSid();
    setCookie('prx_sid', S.sid, CONFIG.sessionDays || 1); // rolling, as the gateway's was
    for (var i = 0; i < CLICKS.length; i++) {
      var key = CLICKS[i][1], landed = S.landing[key];
      if (landed && landed !== S.clicks[key]) {
        S.clicks[key] = landed; // the window runs from the ad click
        setCookie('prx_' + CLICKS[i][0], landed, CONFIG.clickDays || 30);
      }
    }
  }

  function forget() {
    S.sid = null;
    S.clicks = {};
    setCookie('prx_sid', '', 0);
    for (var i = 0; i < CLICKS.length; i++) { setCookie('prx_' + CLICKS[i][0], '', 0); }
  }

  function tell() {
    if (S.consent === 'granted') { post({page: S.page}); } else { denial(null); }
  }

  // --- sending ------------------------------------------------------------------------

  function run(work, whenDenied) {
    if (!S.ready || S.consent === 'unknown') {
      if (S.held.length < HOLD_MAX) { S.held.push([work, whenDenied]); }
    } else if (S.consent === 'granted') {
      work();
    } else if (whenDenied) {
      whenDenied();
    }
  }

  function flush() {
    if (!S.ready || S.consent === 'unknown') { return; }
    var todo = S.held;
    S.held = [];
    for (var i = 0; i < todo.length; i++) { run(todo[i][0], todo[i][1]); }
  }

  // text/plain keeps it a CORS "simple request" (no preflight); credentials are omitted, so
  // the gateway answers "*" and the session travels in the body as `sid`.
  function post(body) {
    body.k = CONFIG.key;
    body.origin = S.origin || undefined;
    body.consent = consentBody();
    body.consent_source = 'shopify_privacy';
    if (S.consent === 'granted') {
      body.sid = S.sid;
      var u = body.user = body.user || {};
      for (var c in S.clicks) {
        if (own(S.clicks, c) && S.clicks[c] && !u[c]) { u[c] = S.clicks[c]; }
      }
      for (var key in S.ids) {
        if (own(S.ids, key) && S.ids[key] && !u[key]) { u[key] = S.ids[key]; }
      }
      if (!S.sale && body.event) { body.limited_data_use = true; }
      if (S.cart && !S.cartLinked) {
        body.link = body.link || {};
        body.link.cart_token = S.cart;
        S.cartLinked = true;
      }
    } else {
      body.sid = S.pageSid = S.pageSid || newSid();
    }
    var data = JSON.stringify(body);
    try {
      G.fetch(CONFIG.endpoint + '/v1/collect', {
        method: 'POST', keepalive: true, credentials: 'omit',
        headers: {'Content-Type': 'text/plain;charset=UTF-8'}, body: data
      })['catch'](function () {});
    } catch (e) { /* offline: this hit is lost, not the next */ }
  }

  // A visitor who said no: the answer and the cart/checkout tokens, nothing of the visitor.
  function denial(link) {
    var body = {};
    if (link) { body.link = link; }
    if (S.cart && !S.cartLinked) {
      body.link = body.link || {};
      body.link.cart_token = S.cart;
      S.cartLinked = true;
    }
    post(body);
  }

  // --- the platforms' Pixels, inside this sandbox ---------------------------------------

  // The bridges of the configured destination types (destinations/<type>/bridge.js), put in
  // here by the generator; each loads its platform's Pixel once the visitor has said yes.
  var BRIDGES = [];
  var LIB = {mapName: function (table, name) {
    var m = table.map || {}, keys = table.keys || {};
    var k = name.replace(/[\s_\-.:\/]+/g, '').toLowerCase();
    if (own(m, name) && m[name]) { return m[name]; }
    return own(keys, k) && keys[k] ? keys[k] : name;
  }};

  function bridge(type, make) {
    var tables = obj(CONFIG.bridges), pixels = obj(CONFIG.pixels);
    if (!own(tables, type) || !pixels[type]) { return; }
    try {
      var b = make(G, tables[type] || {}, LIB);
      if (b) { BRIDGES.push({type: type, pixel: pixels[type], b: b}); }
    } catch (e) { /* a broken bridge costs its own Pixel only */ }
  }

  /*__PIXELRELAY_BRIDGES__*/

  // Each Pixel on its own: one that fails costs nothing of the others or the server copy.
  function fire(name, props, id, who) {
    for (var i = 0; i < BRIDGES.length; i++) {
      var x = BRIDGES[i];
      try {
        if (!S.loaded[x.type]) { S.loaded[x.type] = true; x.b.load(x.pixel); }
        if (who) { x.b.identify(who); }
        x.b.track(name, props, id);
      } catch (e) { /* the Pixel's failure is not the server copy's */ }
    }
  }

  // --- Shopify's events -> events -------------------------------------------------------

  function here(ev) {
    var doc = obj(obj(ev && ev.context).document), loc = obj(doc.location);
    return loc.href ? {url: String(loc.href), referrer: doc.referrer || undefined} : S.page;
  }

  function content(variant, quantity, title) {
    var v = obj(variant), p = obj(v.product), c = {};
    var ids = {sku: v.sku || null, variant_id: plain(v.id), product_id: plain(p.id)};
    var order = [CONFIG.contentId || 'sku', 'variant_id', 'product_id'];
    for (var i = 0; i < order.length; i++) {
      if (ids[order[i]]) { c.content_id = String(ids[order[i]]); break; }
    }
    var name = title || p.title;
    if (!c.content_id && name) { c.content_id = String(name); }
    if (name) { c.content_name = String(name); }
    if (typeof quantity === 'number') { c.quantity = quantity; }
    var price = obj(v.price).amount;
    if (typeof price === 'number') { c.price = price; }
    return c;
  }

  function money(props, m, currency) {
    m = obj(m);
    if (typeof m.amount === 'number') { props.value = m.amount; }
    if (currency || m.currencyCode) { props.currency = currency || m.currencyCode; }
    return props;
  }

  function checkoutProps(checkout) {
    var items = checkout.lineItems || [], contents = [], n = 0;
    for (var i = 0; i < items.length; i++) {
      var it = obj(items[i]);
      contents.push(content(it.variant, it.quantity, it.title));
      if (typeof it.quantity === 'number') { n += it.quantity; }
    }
    var props = money({content_type: 'product'}, checkout.totalPrice, checkout.currencyCode);
    if (contents.length) { props.contents = contents; props.num_items = n; }
    return props;
  }

  function buyer(checkout) {
    var who = {}, order = obj(checkout.order), customer = obj(obj(I.data).customer);
    if (checkout.email) { who.email = String(checkout.email); }
    if (checkout.phone) { who.phone = String(checkout.phone); }
    var id = plain(obj(order.customer).id) || plain(customer.id);
    if (id) { who.external_id = id; }
    return who.email || who.phone || who.external_id ? who : null;
  }

  function track(name, props, ev, extra) {
    extra = extra || {};
    var mapped = mapName(name);
    // Derived as the server and the webhooks derive them (event_ids.py): an order's from its
    // id, a checkout's from its token (checkout_started fires on every visit to checkout);
    // others are new.
    var id = props.order_id ? 'ord_' + props.order_id + '_' + snake(mapped) :
      extra.checkout ? 'chk_' + extra.checkout + '_' + snake(mapped) : uuid();
    var page = here(ev), stamp = Date.parse(ev && ev.timestamp);
    var at = Math.floor((isNaN(stamp) ? Date.now() : stamp) / 1000);
    run(function () {
      fire(name, props, id, extra.who);
      var body = {event: name, event_id: id, timestamp: at, page: page, properties: props,
                  user: {}};
      var who = extra.who || {};
      for (var k in who) { if (own(who, k)) { body.user[k] = who[k]; } }
      if (extra.link) { body.link = extra.link; }
      post(body);
    }, function () {
      if (extra.link || (S.cart && !S.cartLinked)) { denial(extra.link || null); }
    });
    return id;
  }

  function onCheckout(shopifyName, name) {
    subscribe(shopifyName, function (ev) {
      var checkout = obj(obj(ev.data).checkout), props = checkoutProps(checkout);
      var orderId = plain(obj(checkout.order).id);
      if (name === 'Purchase') {
        if (!orderId) { return; }
        props.order_id = orderId;
      }
      var token = checkout.token ? String(checkout.token) : null;
      track(name, props, ev, {who: buyer(checkout), checkout: token,
                              link: token ? {checkout_token: token} : null});
    });
  }

  function subscribe(name, handler) {
    try {
      analytics.subscribe(name, function (ev) {
        try { handler(obj(ev)); } catch (e) { /* one bad payload loses one event */ }
      });
    } catch (e) { /* an event this sandbox does not know */ }
  }

  subscribe('page_viewed', function (ev) { track('PageView', {}, ev); });
  subscribe('product_viewed', function (ev) {
    var v = obj(obj(ev.data).productVariant);
    track('ViewContent', money({content_type: 'product', contents: [content(v, 1)]},
                               v.price), ev);
  });
  subscribe('search_submitted', function (ev) {
    var r = obj(obj(ev.data).searchResult);
    track('Search', r.query ? {query: String(r.query)} : {}, ev);
  });
  subscribe('product_added_to_cart', function (ev) {
    var line = obj(obj(ev.data).cartLine);
    track('AddToCart', money({content_type: 'product', contents: [
      content(line.merchandise, line.quantity)]}, obj(line.cost).totalAmount), ev);
    // The cart exists now if it did not at page load: its token, for the next hit.
    getCookie('cart').then(function (t) {
      var token = plain(t);
      if (token && token !== S.cart) { S.cart = token; S.cartLinked = false; }
    });
  });
  onCheckout('checkout_started', 'InitiateCheckout');
  onCheckout('payment_info_submitted', 'AddPaymentInfo');
  onCheckout('checkout_completed', 'Purchase');

  // --- start: the page, the visitor's answer so far, the shop's cookies -----------------

  S.page = L.href ? {url: String(L.href), referrer: D.referrer || undefined} : null;
  S.origin = L.origin || null;
  for (var c = 0; c < CLICKS.length; c++) { S.landing[CLICKS[c][1]] = param(L.href, CLICKS[c][0]); }
  S.cart = plain(obj(obj(I.data).cart).id);
  var initial = answered(I.customerPrivacy, false);
  var privacy = (typeof customerPrivacy !== 'undefined' && customerPrivacy) ||
    (typeof api !== 'undefined' && api && api.customerPrivacy) || null;
  if (privacy && typeof privacy.subscribe === 'function') {
    privacy.subscribe('visitorConsentCollected', function (e) {
      decide(answered(obj(e).customerPrivacy, true), true);
    });
  }
  function id(v) { return v && /^[A-Za-z0-9._~-]{1,512}$/.test(v) ? v : null; }
  var declared = CONFIG.cookies || [], n = CLICKS.length;
  Promise.all(['prx_sid', 'prx_consent', 'cart']
    .concat(CLICKS.map(function (c) { return 'prx_' + c[0]; }))
    .concat(declared.map(function (c) { return c[0]; })).map(getCookie)).then(function (v) {
      S.sid = /^s_[0-9a-f]{32}$/.test(v[0] || '') ? v[0] : null;
      S.remembered = v[1];
      S.cart = S.cart || plain(v[2]);
      for (var i = 0; i < n; i++) { S.clicks[CLICKS[i][1]] = id(v[3 + i]); }
      for (var j = 0; j < declared.length; j++) { S.ids[declared[j][1]] = id(v[3 + n + j]); }
      S.ready = true;
      var state = S.consent !== 'unknown' ? S.consent :
        initial || (S.remembered === 'denied' ? 'denied' : 'unknown');
      if (state !== 'unknown') { decide(state, false); }
    });
})();
