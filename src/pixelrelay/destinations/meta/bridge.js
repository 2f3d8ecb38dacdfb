  /* Meta's bridge: the page's Meta Pixel (`fbq`) gets each event under Meta's name (the
     first Meta destination's, as the server sends it), its parameters in Meta's names, and
     the shared event_id as eventID, the key Meta deduplicates a Pixel event and a
     Conversions API event on (with the event name). */
  bridge('meta', function (w, table, lib) {
    var standard = {};
    for (var i = 0; i < (table.standard || []).length; i++) { standard[table.standard[i]] = 1; }
    function fbq() { return typeof w.fbq === 'function' ? w.fbq : null; }
    function put(o, k, v) { if (v !== undefined && v !== null && v !== '') { o[k] = v; } }
    // pixelrelay's properties (TikTok's names) -> Meta's: contents [{id, quantity,
    // item_price}], content_ids, search_string; the rest keep their names.
    function params(p) {
      var out = {}, items = p.contents, ids = [];
      var keys = ['value', 'currency', 'content_type', 'num_items', 'order_id', 'content_name',
        'content_category'];
      for (var k = 0; k < keys.length; k++) { put(out, keys[k], p[keys[k]]); }
      put(out, 'search_string', p.search_string || p.query);
      if (items && typeof items.length === 'number' && items.length) {
        out.contents = [];
        for (var j = 0; j < items.length; j++) {
          var c = items[j] || {}, m = {};
          put(m, 'id', c.content_id === undefined ? c.id : c.content_id);
          put(m, 'quantity', c.quantity);
          put(m, 'item_price', c.price === undefined ? c.item_price : c.price);
          if (m.id !== undefined) { m.id = String(m.id); ids.push(m.id); }
          out.contents.push(m);
        }
      }
      if (p.content_ids && typeof p.content_ids.length === 'number') {
        ids = Array.prototype.slice.call(p.content_ids);
      }
      if (ids.length) { out.content_ids = ids; }
      return out;
    }
    return {
      // For a Shopify custom pixel: Meta's base code, inside the sandbox, for a pixel id.
      load: function (pixelId) {
        var d = w.document;
        if (fbq()) { return; } // already there
        var n = w.fbq = function () {
          if (n.callMethod) { n.callMethod.apply(n, arguments); } else { n.queue.push(arguments); }
        };
        if (!w._fbq) { w._fbq = n; }
        n.push = n; n.loaded = true; n.version = '2.0'; n.queue = [];
        var s = d.createElement('script');
        s.async = true;
        s.src = 'https://connect.facebook.net/en_US/fbevents.js';
        (d.head || d.documentElement).appendChild(s);
        n('init', pixelId);
      },
      track: function (name, props, id) {
        var f = fbq(), mapped = lib.mapName(table, name);
        if (f) {
          f(own(standard, mapped) ? 'track' : 'trackCustom', mapped, params(props || {}),
            {eventID: id});
        }
      },
      // Meta's Pixel takes who the visitor is at fbq('init') (advanced matching), which the
      // page does with its pixel id: the server copy carries the identity instead.
      identify: function () {},
      consent: function (granted) {
        var f = fbq();
        if (f) { f('consent', granted ? 'grant' : 'revoke'); }
      }
    };
    function own(o, k) { return Object.prototype.hasOwnProperty.call(o, k); }
  });
