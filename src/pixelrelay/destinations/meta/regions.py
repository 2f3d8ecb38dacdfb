"""Reference data for Meta's place keys: ISO 3166-1 alpha-2 codes, US state names -> codes."""

from __future__ import annotations

from collections.abc import Mapping

# ISO 3166-1 alpha-2, lower case, as Meta wants `country` (249 codes; the test compares them
# with pycountry's list). "uk" is not one: the United Kingdom is "gb".
_ISO_ALPHA_2 = """
ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm bn bo bq
br bs bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm
do dz ec ee eg eh er es et fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs
gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km kn
kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp mq
mr ms mt mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm
pn pr ps pt pw py qa re ro rs ru rw sa sb sc sd se sg sh si sj sk sl sm sn so sr ss st sv
sx sy sz tc td tf tg th tj tk tl tm tn to tr tt tv tw tz ua ug um us uy uz va vc ve vg vi
vn vu wf ws ye yt za zm zw
"""
ISO_COUNTRIES: frozenset[str] = frozenset(_ISO_ALPHA_2.split())

_US_STATE_CODES: Mapping[str, str] = {
    "Alabama": "al", "Alaska": "ak", "Arizona": "az", "Arkansas": "ar", "California": "ca",
    "Colorado": "co", "Connecticut": "ct", "Delaware": "de", "Florida": "fl", "Georgia": "ga",
    "Hawaii": "hi", "Idaho": "id", "Illinois": "il", "Indiana": "in", "Iowa": "ia",
    "Kansas": "ks", "Kentucky": "ky", "Louisiana": "la", "Maine": "me", "Maryland": "md",
    "Massachusetts": "ma", "Michigan": "mi", "Minnesota": "mn", "Mississippi": "ms",
    "Missouri": "mo", "Montana": "mt", "Nebraska": "ne", "Nevada": "nv",
    "New Hampshire": "nh", "New Jersey": "nj", "New Mexico": "nm", "New York": "ny",
    "North Carolina": "nc", "North Dakota": "nd", "Ohio": "oh", "Oklahoma": "ok",
    "Oregon": "or", "Pennsylvania": "pa", "Rhode Island": "ri", "South Carolina": "sc",
    "South Dakota": "sd", "Tennessee": "tn", "Texas": "tx", "Utah": "ut", "Vermont": "vt",
    "Virginia": "va", "Washington": "wa", "West Virginia": "wv", "Wisconsin": "wi",
    "Wyoming": "wy",
    # The district and the territories with their own USPS codes.
    "District of Columbia": "dc", "Washington DC": "dc", "Washington D.C.": "dc",
    "American Samoa": "as", "Guam": "gu", "Northern Mariana Islands": "mp",
    "Puerto Rico": "pr", "United States Virgin Islands": "vi", "US Virgin Islands": "vi",
    "U.S. Virgin Islands": "vi", "Virgin Islands": "vi",
}

# Keyed by the letters-only lower-case form that normalize_state compares ("newyork").
US_STATES: Mapping[str, str] = {
    "".join(c for c in name.lower() if c.isalpha()): code
    for name, code in _US_STATE_CODES.items()
}
