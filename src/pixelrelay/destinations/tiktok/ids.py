"""TikTok's click and browser ids, as the gateway carries them (user.ttclid, user.ttp)."""

from __future__ import annotations

from pixelrelay.model import IdKey

CLICK_PARAM = "ttclid"  # the landing URL's query parameter an ad click adds
TTP_COOKIE = "_ttp"  # set by the TikTok Pixel on the shop's domain

IDS = (
    IdKey("ttclid", "TikTok's click id; taken from page.url's ?ttclid= when missing.",
          max_len=512, url_param=CLICK_PARAM, ad_callback=True, match_key_bit=3),
    IdKey("ttp", "The _ttp cookie of the TikTok Pixel.", max_len=512, match_key_bit=4),
)
OWN_KEYS = frozenset(k.key for k in IDS)
