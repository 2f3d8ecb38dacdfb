  /* TikTok's bridge: the page's TikTok Pixel (`ttq`) gets each event under TikTok's name
     (the first TikTok destination's, as the server sends it) with the shared event_id. */
  bridge('tiktok', function (w, table, lib) {
    function ttq() { return w.ttq && typeof w.ttq.track === 'function' ? w.ttq : null; }
    return {
      // For a Shopify custom pixel: TikTok's loader, inside the sandbox, for a pixel code.
      load: function (code) {
        var d = w.document;
        if (ttq()) { return; } // already there
        var q = w.ttq = [], src = 'https://analytics.tiktok.com/i18n/pixel/events.js';
        w.TiktokAnalyticsObject = 'ttq';
        q.methods = ['page', 'track', 'identify', 'instances', 'debug', 'on', 'off', 'once',
          'ready', 'alias', 'group', 'enableCookie', 'disableCookie', 'holdConsent',
          'revokeConsent', 'grantConsent'];
        q.methods.forEach(function (m) {
          q[m] = function () { q.push([m].concat(Array.prototype.slice.call(arguments))); };
        });
        q.load = function (id) {
          q._i = q._i || {}; q._i[id] = []; q._i[id]._u = src;
          q._t = q._t || {}; q._t[id] = +new Date();
          q._o = q._o || {}; q._o[id] = {};
          var s = d.createElement('script');
          s.async = true;
          s.src = src + '?sdkid=' + encodeURIComponent(id) + '&lib=ttq';
          (d.head || d.documentElement).appendChild(s);
        };
        q.load(code);
      },
      // pixelrelay's properties are TikTok's own names (contents[{content_id, price}]).
      track: function (name, props, id) {
        var t = ttq();
        if (t) { t.track(lib.mapName(table, name), props, {event_id: id}); }
      },
      identify: function (who) {
        var t = ttq(), p = {};
        if (!t || typeof t.identify !== 'function') { return; }
        if (who.email) { p.email = who.email; }
        if (who.phone) { p.phone_number = who.phone; }
        if (who.external_id) { p.external_id = who.external_id; }
        t.identify(p);
      },
      consent: function (granted) {
        var t = w.ttq, f = t && (granted ? t.grantConsent : t.revokeConsent);
        if (typeof f === 'function') { f.call(t); }
      }
    };
  });
